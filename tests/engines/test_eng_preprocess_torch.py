"""engines.preprocess_torch: the torch-on-the-device preprocessing equals the reference (dali_pipes.reference),
on the CPU exactly; on a GPU through pinned buffers and non-blocking copies (gpu marker)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.core.roi import as_roi
from semiostream.dali_pipes.intensity import intensity_window
from semiostream.dali_pipes.reference import preprocess
from semiostream.engines.preprocess_torch import (
    PARALLEL_COPY_BYTES,
    TorchPreprocessor,
    device_intensity_window,
    uint16_bits_to_float,
)

SPECS = {
    "percentile": PreprocessSpec(),
    "fixed": PreprocessSpec(intensity_mode="fixed", intensity_lo=2500.0, intensity_hi=60000.0),
}


def _windows(make_ir):
    hot = make_ir(12, 96, 128, seed=3).astype(np.int64) * 14  # values above 32767: the sign bit of int16
    return [make_ir(9, 120, 160), np.clip(hot, 0, 65535).astype(np.uint16), make_ir(16, 70, 50, seed=5)]


def test_uint16_bits_cover_the_whole_range():
    every = np.arange(65536, dtype=np.uint16)
    got = uint16_bits_to_float(torch.from_numpy(every.view(np.int16)))
    assert got.dtype == torch.float32 and torch.equal(got, torch.arange(65536, dtype=torch.float32))


def test_device_percentiles_are_the_references(make_ir):
    spec = SPECS["percentile"]
    flat = np.full((9, 20, 30), 4321, np.uint16)
    for w, roi in [(make_ir(9, 120, 160), None), (_windows(make_ir)[1], (10, 5, 120, 90)), (flat, None),
                   (make_ir(12, 64, 80, seed=9), (0, 0, 1, 1))]:
        r = as_roi(roi, w.shape[2], w.shape[1])
        crop = torch.from_numpy(w[:, r.y0:r.y1, r.x0:r.x1].astype(np.float32))
        lo, hi = device_intensity_window(crop, spec)
        assert lo.dtype == torch.float64 and (float(lo), float(hi)) == intensity_window(w, roi, spec)


def test_large_crops_are_staged_by_threads(make_ir):
    big = np.tile(make_ir(30, 120, 160), (1, 3, 3))  # [30, 360, 480]: above the parallel-copy size
    assert big.nbytes > PARALLEL_COPY_BYTES
    out = TorchPreprocessor(SPECS["percentile"], "cpu")([big], [(7, 3, 470, 351)])[0]
    assert torch.equal(out, preprocess(big, (7, 3, 470, 351), SPECS["percentile"]))


@pytest.mark.parametrize("mode", sorted(SPECS))
def test_equals_the_reference_on_cpu(make_ir, mode):
    spec = SPECS[mode]
    windows = _windows(make_ir)
    rois = [None, (10, 5, 120, 90), (3, 0, 50, 61)]
    held = [None, None, (3000.0, 4500.0)]
    pre = TorchPreprocessor(spec, "cpu")
    outs = pre(windows, rois, intensities=held)
    for out, w, r, iw in zip(outs, windows, rois, held, strict=True):
        ref = preprocess(w, r, spec, window=iw)
        assert out.shape == ref.shape == (1, w.shape[0], 224, 224) and out.dtype == torch.float32
        assert torch.equal(out, ref)
    # a torch tensor input (cropped where it lies) gives the same
    assert torch.equal(pre.one(torch.from_numpy(windows[1]), rois[1]), preprocess(windows[1], rois[1], spec))


def test_bad_calls_say_what_is_wrong(make_ir):
    pre = TorchPreprocessor(PreprocessSpec(), "cpu")
    with pytest.raises(ValueError, match=r"\[T, H, W\]"):
        pre([np.zeros((4, 4), np.uint16)])
    with pytest.raises(ValueError, match="2 windows need 2 ROIs"):
        pre([make_ir(9), make_ir(9)], [None])


def test_scorer_torch_preprocessing_scores_as_the_reference(eng_bundle, make_ir):
    from semiostream.engines.scorer import Scorer

    windows, rois = [make_ir(9), make_ir(9, seed=2)], [None, (20, 10, 150, 110)]
    with Scorer(eng_bundle, "torch-cpu-fp32", preprocessing="torch", engine_options={"compile": False}) as s:
        assert s.preprocessing == "torch"
        p = s.score_windows(windows, rois)
    with Scorer(eng_bundle, "torch-cpu-fp32", preprocessing="reference", engine_options={"compile": False}) as s:
        p_ref = s.score_windows(windows, rois)
    np.testing.assert_array_equal(p, p_ref)


@pytest.mark.gpu
def test_pinned_device_path_equals_the_reference(make_ir):
    spec = dataclasses.replace(SPECS["percentile"])
    windows = _windows(make_ir) * 3  # more windows than the pinned ring holds: buffers are reused
    rois = [None, (10, 5, 120, 90), (3, 0, 50, 61)] * 3
    pre = TorchPreprocessor(spec, "cuda")
    assert pre.pinned
    stream = torch.cuda.Stream()
    outs = pre(windows, rois, stream=stream)
    stream.synchronize()
    for out, w, r in zip(outs, windows, rois, strict=True):
        assert out.is_cuda
        err = float((out.cpu() - preprocess(w, r, spec)).abs().max())
        assert err <= 1e-5, err  # bilinear on the GPU: float rounding only
