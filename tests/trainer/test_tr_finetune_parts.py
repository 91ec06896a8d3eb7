"""I3D fine-tuning, part by part: augmentation against the reference preprocessing, window draws, the
trainable network against the I3D's own feature extraction, checkpoints, and the CLI's one-line errors."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
import torch

from semiostream.cli import main
from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.dali_pipes.reference import preprocess
from semiostream.trainer import checkpoint as ckpt
from semiostream.trainer.augment import MIN_CROP, Augment, Draw, jitter_roi, shift_range, window_input
from semiostream.trainer.finetune import WindowRef, draw_of, epoch_windows, minibatches


def _frames(t=9, h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(20000, 40000, (t, h, w)).astype(np.uint16)


def test_an_unaugmented_window_is_the_reference_preprocessing():
    spec = PreprocessSpec(window=9, min_frames=9)  # percentiles of the window's first frames
    frames, roi = _frames(), (10, 5, 150, 110)
    want = preprocess(frames, roi, spec)
    assert torch.equal(window_input(frames, roi, spec, None, None), want)
    assert torch.equal(window_input(frames, roi, spec, None, Draw()), want)  # a draw that changes nothing
    held = (21000.0, 39000.0)
    assert torch.equal(window_input(frames, None, spec, held, None), preprocess(frames, None, spec, window=held))
    assert torch.equal(window_input(frames, roi, spec, None, Draw(flip=True)), want.flip(-1))


def test_gain_offset_and_noise_act_on_the_normalised_data():
    # 224 x 224 frames and no crop: the resize is the identity, so the output is the intensity window itself
    spec = PreprocessSpec(window=9, min_frames=9, intensity_mode="fixed", intensity_lo=0, intensity_hi=65535)
    frames = _frames(h=224, w=224)
    z = (preprocess(frames, None, spec) + 1) / 2  # [0, 1]
    g, o = 1.08, -0.03
    z2 = (window_input(frames, None, spec, (0.0, 65535.0), Draw(gain=g, offset=o)) + 1) / 2
    torch.testing.assert_close(z2, (g * z + o).clamp(0, 1), atol=2e-6, rtol=0)
    noisy = window_input(frames, None, spec, (0.0, 65535.0), Draw(noise=0.01, noise_seed=5))
    resid = ((noisy + 1) / 2 - z).flatten()
    assert abs(float(resid.std()) - 0.01) < 0.0005 and abs(float(resid.mean())) < 0.0005
    again = window_input(frames, None, spec, (0.0, 65535.0), Draw(noise=0.01, noise_seed=5))
    assert torch.equal(noisy, again)  # the noise is a function of the draw's seed


def test_crop_and_time_jitter_stay_inside_the_frame_and_the_segment():
    rng = np.random.default_rng(1)
    aug = Augment(crop=0.5)
    for _ in range(200):
        d = aug.draw(rng)
        x0, y0, x1, y1 = jitter_roi((30, 20, 150, 100), 160, 120, d.edges)
        assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 120
        assert x1 - x0 >= max(MIN_CROP, 60) and y1 - y0 >= MIN_CROP
        a, b = shift_range(40, 49, 30, 60, d.shift)
        assert 30 <= a and b <= 60 and b - a == 9
    assert jitter_roi(None, 160, 120, (0, 0, 0, 0)) is None
    assert jitter_roi(None, 160, 120, (0.1, 0, 0, 0)) == (16, 0, 160, 120)
    assert shift_range(40, 49, 38, 49, 0.5) == (40, 49)  # no room: unchanged
    with pytest.raises(ValueError, match="noise"):
        Augment(noise=0.9)


def test_epoch_windows_and_draws_depend_on_seed_epoch_and_position_only():
    by = [[WindowRef(s, 10 * k, 10 * k + 9) for k in range(n)] for s, n in enumerate((5, 1, 3))]
    e1 = epoch_windows(by, 1, 0, 2)
    assert epoch_windows(by, 1, 0, 2) == e1 and epoch_windows(by, 2, 0, 2) != e1
    assert sorted(r.seizure for r in e1) == [0, 0, 1, 2, 2]
    assert len(epoch_windows(by, 1, 0, None)) == 9
    assert draw_of(Augment(), 0, 3, 7) == draw_of(Augment(), 0, 3, 7) != draw_of(Augment(), 0, 3, 8)
    assert draw_of(Augment.off(), 0, 3, 7) is None
    assert minibatches(9, 4) == [(0, 4), (4, 9)] and minibatches(8, 4) == [(0, 4), (4, 8)]


@pytest.mark.slow  # I3D forward and backward passes on the CPU: ~15 s alone, more on a loaded runner
def test_the_trainable_network_computes_the_i3ds_features_and_trains_only_the_top(i3d_model):
    from semiostream.models.classifier import SeizureClassifier, pad_features
    from semiostream.trainer.finetune_model import FinetuneModel

    i3d = copy.deepcopy(i3d_model)
    torch.manual_seed(0)
    model = FinetuneModel(i3d, SeizureClassifier().eval(), "Mixed_5b", grad_checkpointing=True)
    x = torch.rand(1, 1, 9, 224, 224) * 2 - 1
    with torch.no_grad():
        want = i3d.extract_features(x)
    model.train()
    assert not i3d.training and model.classifier.training  # BatchNorm statistics of the I3D stay frozen
    feats = model.features(x)  # with gradients: the trained endpoints run under torch.utils.checkpoint
    torch.testing.assert_close(feats, want, atol=1e-5, rtol=1e-5)
    model.classifier.eval()
    x12 = torch.cat([x[0], x[0, :, :3].flip(-1)], dim=1)  # [1, 12, 224, 224]: another length, its own I3D call
    logits = model.logits([x[0], x12, x[0]], torch.device("cpu"))  # grouped by length, put back in input order
    with torch.no_grad():
        f12 = i3d.extract_features(x12[None])
        want_logits = model.classifier.logits(pad_features(torch.cat([want, f12, want])))
    torch.testing.assert_close(logits, want_logits, atol=1e-5, rtol=1e-5)
    logits.sum().backward()
    grads = {n: p.grad is not None for n, p in i3d.named_parameters()}
    assert all(grads[n] for n in grads if n.startswith(("Mixed_5b.", "Mixed_5c.")))
    assert not any(grads[n] for n in grads if not n.startswith(("Mixed_5b.", "Mixed_5c.")))
    assert set(model.trainable_state()) == {k for k in i3d.state_dict() if k.startswith(("Mixed_5b.", "Mixed_5c."))}


def test_a_checkpoint_holds_plain_data_only(tmp_path):
    p = ckpt.save(tmp_path / "c.pt", {"settings": {"a": 1}, "w": torch.ones(2)})
    assert ckpt.load(p)["settings"] == {"a": 1}
    torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, "x": Augment()}, tmp_path / "obj.pt")
    with pytest.raises(ckpt.CheckpointError, match="not a readable fine-tuning checkpoint"):
        ckpt.load(tmp_path / "obj.pt")  # an object would be unpickled: refused
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ckpt.CheckpointError, match="not a readable"):
        ckpt.load(tmp_path / "junk.pt")
    assert ckpt.settings_differences({"a": 1, "b": 2}, {"a": 1, "b": 3}) == ["b: 2 -> 3"]


@pytest.mark.parametrize("extra, message", [
    (["--amp", "on", "--device", "cpu"], "--amp on needs a CUDA GPU"),
    (["--search", "3"], "--search tunes the frozen-feature recipe"),
    (["--resume"], "holds no fine-tuning checkpoint"),
    (["--finetune-from", "Mixed_9z"], "--finetune-from Mixed_9z: use one of Mixed_3b"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--i3d-lr", "0"], "cuda" if not
     torch.cuda.is_available() else "--i3d-lr 0"),
])
def test_finetune_user_errors_are_one_line_before_any_slow_work(tmp_path, capsys, extra, message):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,patient_id,seizure_id,label\nnone.npy,p1,s1,FLE\n")
    t0 = time.perf_counter()
    assert main(["train", str(manifest), "--finetune", "--out", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert time.perf_counter() - t0 < 20  # no I3D loaded, no video read


def test_finetune_options_need_finetune_and_a_manifest(tmp_path, capsys):
    assert main(["train", str(tmp_path / "m.csv"), "--amp", "off", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--amp, --resume belong(s) to I3D fine-tuning: add --finetune" in err and len(err.splitlines()) == 1
    assert main(["train", str(tmp_path / "missing.csv"), "--finetune", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.csv does not exist" in err and len(err.splitlines()) == 1
