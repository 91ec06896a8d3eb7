"""Preprocessing: the torch reference (the oracle) and the DALI pipelines computing the same function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semiostream.bench.preprocess import naive_preprocess
from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.dali_pipes.geometry import fit_size, pad_offsets
from semiostream.dali_pipes.intensity import intensity_window, spec_for_bit_depth, to_uint8
from semiostream.dali_pipes.reference import preprocess

SPEC = PreprocessSpec()
FIXED = PreprocessSpec(intensity_mode="fixed", intensity_lo=1000, intensity_hi=5000)
TOL = 1.0 / 255  # the bound; we reach ~3e-4 (asserted below as 1e-3)


def _rand(t, h, w, seed=0, hi=65536):
    return np.random.default_rng(seed).integers(0, hi, (t, h, w), dtype=np.uint16)


def test_geometry_rule():
    assert fit_size(576, 640) == (202, 224)
    assert fit_size(640, 576) == (224, 202)
    assert fit_size(1, 1000) == (1, 224)  # at least 1
    assert fit_size(100, 100) == (224, 224)
    assert pad_offsets(202, 224) == (11, 0)
    assert pad_offsets(224, 201) == (0, 11)


def test_percentiles_equal_numpy_inside_roi():
    fr = _rand(12, 50, 70, hi=4000)
    spec = PreprocessSpec(percentile_lo=2.5, percentile_hi=97.3, percentile_frames=5)
    lo, hi = intensity_window(fr, (3, 4, 61, 33), spec)
    want = np.percentile(fr[:5, 4:33, 3:61], [2.5, 97.3])
    assert (lo, hi) == pytest.approx(tuple(want), abs=1e-9)
    assert intensity_window(fr, None, FIXED) == (1000.0, 5000.0)
    flat = np.full((3, 5, 5), 7, np.uint16)
    assert intensity_window(flat, None, SPEC) == (7.0, 8.0)


def test_reference_values_fixed_window_landscape():
    fr = np.full((9, 60, 100), 3000, np.uint16)  # (3000 - 1000) / 4000 = 0.5 -> 0.0
    fr[:, :, :50] = 500  # below lo -> 0 -> -1
    out = preprocess(fr, None, FIXED)
    assert out.shape == (1, 9, 224, 224) and out.dtype == torch.float32
    oh, ow = fit_size(60, 100)  # (134, 224)
    top, _ = pad_offsets(oh, ow)
    assert torch.all(out[0, :, :top] == -1) and torch.all(out[0, :, top + oh :] == -1)
    body = out[0, :, top : top + oh]
    assert torch.allclose(body[:, :, :100], torch.tensor(-1.0))
    assert torch.allclose(body[:, :, 124:], torch.tensor(0.0))
    assert out.min() >= -1 and out.max() <= 1


def test_reference_portrait_crop_is_centred():
    fr = np.full((9, 300, 200), 5000, np.uint16)
    out = preprocess(fr, (10, 20, 60, 220), FIXED)  # 50 x 200 crop: portrait
    oh, ow = fit_size(200, 50)
    top, left = pad_offsets(oh, ow)
    assert (oh, ow, top, left) == (224, 56, 0, 84)
    assert torch.all(out[0, :, :, :left] == -1) and torch.all(out[0, :, :, left + ow :] == -1)
    assert torch.all(out[0, :, :, left : left + ow] == 1)


def test_reference_matches_independent_numpy_loop():
    fr = _rand(10, 97, 131, seed=3)
    for roi in [(5, 7, 120, 86), None, (0, 0, 1, 97), (130, 96, 131, 97)]:
        ref = preprocess(fr, roi, SPEC).numpy()
        naive = naive_preprocess(fr, roi, SPEC)
        assert np.abs(ref - naive).max() < 1e-4, roi


def test_reference_half_and_8bit_spec():
    fr = _rand(9, 40, 40, hi=256)
    out = preprocess(fr, None, spec_for_bit_depth(FIXED, 8), dtype=torch.float16)
    assert out.dtype == torch.float16
    ref = preprocess(fr, None, PreprocessSpec(intensity_mode="fixed", intensity_lo=0, intensity_hi=255))
    assert torch.allclose(out.float(), ref, atol=1e-3)
    assert spec_for_bit_depth(SPEC, 8) is SPEC


def test_reference_rejects_bad_roi():
    with pytest.raises(ValueError, match=r"ROI \(600, 0, 700, 424\) lies outside the 512x424 frame"):
        preprocess(np.zeros((9, 424, 512), np.uint16), (600, 0, 700, 424), SPEC)


def test_to_uint8_for_detectors():
    fr = np.linspace(0, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)
    u8 = to_uint8(fr, PreprocessSpec(percentile_lo=0, percentile_hi=100))
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255


# ---------------------------------------------------------------- DALI
CASES = [
    # (H, W, roi): odd ROIs, portrait and landscape crops, ROIs at frame edges, 1-pixel strips
    (576, 640, None),
    (576, 640, (13, 7, 333, 571)),  # portrait, odd
    (576, 640, (600, 0, 640, 576)),  # right edge strip, portrait
    (424, 512, (0, 423, 512, 424)),  # bottom edge, 1 row
    (480, 640, (17, 23, 618, 301)),  # landscape, odd
    (97, 131, (1, 1, 130, 96)),  # upscaling
    (300, 200, (0, 0, 1, 1)),  # single pixel
]


@pytest.fixture(scope="module")
def dali_cpu():
    from semiostream.dali_pipes.pipeline import DaliPreprocessor

    return DaliPreprocessor(SPEC, device="cpu", max_batch=4)


def test_dali_cpu_equals_reference_mixed_batch(dali_cpu):
    windows = [_rand(9 + i, h, w, seed=i) for i, (h, w, _) in enumerate(CASES)]
    rois = [r for _, _, r in CASES]
    outs = dali_cpu(windows, rois)  # 7 windows > max_batch: two runs, mixed sizes and lengths
    worst = 0.0
    for out, fr, roi in zip(outs, windows, rois, strict=True):
        ref = preprocess(fr, roi, SPEC)
        assert out.shape == ref.shape and out.dtype == torch.float32
        worst = max(worst, float((out - ref).abs().max()))
    assert worst < 1e-3 < TOL, worst  # reached: ~3e-4 on full-range noise


@pytest.mark.parametrize("host_prepare", [True, False])
def test_dali_held_intensity_windows_equal_reference(host_prepare):
    """A held (lo, hi) per window (a video's or event's, not the window's own percentiles) reaches both
    DALI CPU graphs exactly as the reference applies it; None keeps the spec's rule for that window."""
    from semiostream.dali_pipes.pipeline import DaliPreprocessor

    pre = DaliPreprocessor(SPEC, device="cpu", max_batch=4, host_prepare=host_prepare)
    windows = [_rand(12, 97, 131, seed=s) for s in range(3)]
    held = [(200.0, 3000.0), None, (1000.0, 1500.0)]
    outs = pre(windows, [None, (1, 1, 130, 96), None], intensities=held)
    for out, fr, roi, w in zip(outs, windows, [None, (1, 1, 130, 96), None], held, strict=True):
        ref = preprocess(fr, roi, SPEC, window=w)
        assert float((out - ref).abs().max()) < 1e-3
    own = preprocess(windows[0], None, SPEC)
    assert float((outs[0] - own).abs().max()) > 0.05  # the held window really replaced the window's own


def test_dali_cpu_batches_of_different_prepared_dtypes(dali_cpu):
    # integer intensity limits keep the host-prepared crop in uint16, fractional ones make it float32;
    # consecutive calls alternate and every one must still equal the reference
    two_level = np.full((9, 32, 40), 1000, np.uint16)
    two_level[:, :, 20:] = 3000  # percentiles 1 and 99 are exactly 1000 and 3000
    noisy = _rand(9, 32, 40, seed=5)
    for frames in (two_level, noisy, two_level, noisy):
        out = dali_cpu([frames], [None])[0]
        assert float((out - preprocess(frames, None, SPEC)).abs().max()) < 1e-3


def test_dali_outputs_survive_the_next_run(dali_cpu):
    a, b = _rand(9, 64, 80, seed=1), _rand(9, 64, 80, seed=2)
    out_a = dali_cpu([a], [None])[0]
    keep = out_a.clone()
    dali_cpu([b], [None])
    assert torch.equal(out_a, keep)


def test_dali_fixed_window_half_and_windows(tmp_path: Path):
    from semiostream.dali_pipes.pipeline import DaliPreprocessor, stack
    from semiostream.sources.readers import open_source
    from semiostream.sources.windows import iter_windows
    from semiostream.sources.writers import write_npy

    fr = _rand(70, 60, 90, seed=5, hi=6000)
    src = open_source(write_npy(tmp_path / "a.npy", fr))
    wins = list(iter_windows(src))
    pre = DaliPreprocessor(FIXED, device="cpu", half=True)
    outs = pre(wins, [(10, 5, 80, 55)] * len(wins))
    assert [o.shape for o in outs] == [(1, 60, 224, 224), (1, 10, 224, 224)]
    assert outs[0].dtype == torch.float16
    ref = preprocess(wins[0].frames, (10, 5, 80, 55), FIXED)
    assert float((outs[0].float() - ref).abs().max()) < 2e-3  # float16 rounding
    assert stack(outs[:1]).shape == (1, 1, 60, 224, 224)
    with pytest.raises(ValueError, match="different lengths"):
        stack(outs)


def test_dali_decodes_png_frames_in_graph(tmp_path: Path):
    from semiostream.dali_pipes.pipeline import DaliImageWindowPreprocessor
    from semiostream.sources.readers import open_source
    from semiostream.sources.writers import write_image_folder

    fr = _rand(14, 50, 70, seed=7, hi=5000)
    src = open_source(write_image_folder(tmp_path / "png", fr))
    out = DaliImageWindowPreprocessor(SPEC, device="cpu", max_frames=8)(src, 1, 14, (3, 4, 61, 33))
    ref = preprocess(fr[1:14], (3, 4, 61, 33), SPEC)
    assert out.shape == (1, 13, 224, 224)
    assert float((out - ref).abs().max()) < 1e-3


@pytest.mark.gpu
def test_dali_gpu_equals_reference_and_stays_on_device():
    from semiostream.dali_pipes.pipeline import DaliPreprocessor

    pre = DaliPreprocessor(SPEC, device="gpu", max_batch=4)
    windows = [_rand(9 + i, h, w, seed=i) for i, (h, w, _) in enumerate(CASES)]
    rois = [r for _, _, r in CASES]
    for out, fr, roi in zip(pre(windows, rois), windows, rois, strict=True):
        assert out.is_cuda  # DLPack from DALI's GPU buffer, no host copy
        assert float((out.cpu() - preprocess(fr, roi, SPEC)).abs().max()) < 1e-3
    cuda_windows = [torch.from_numpy(w).cuda() for w in windows[:4]]  # frames already on the GPU
    for out, fr, roi in zip(pre(cuda_windows, rois[:4]), windows, rois, strict=False):
        assert out.is_cuda
        assert float((out.cpu() - preprocess(fr, roi, SPEC)).abs().max()) < 1e-3


def test_reference_imports_without_dali():
    import subprocess
    import sys

    code = (
        "import sys; import semiostream.dali_pipes.reference, semiostream.sources.readers, "
        "semiostream.sources.windows, semiostream.core.roi, semiostream.detectors.registry; "
        "assert not any(m.startswith('nvidia.dali') for m in sys.modules), 'DALI imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
