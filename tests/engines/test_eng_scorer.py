"""Scorer end to end on a real clip and on synthetic IR, against the plain-torch oracle:
reference preprocessing -> the bundle's I3D (eager fp32) -> pre-pad with -1 -> the bundle's classifier."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from semiostream.dali_pipes.reference import preprocess
from semiostream.engines.registry import get_backend
from semiostream.engines.scorer import Scorer
from semiostream.models.classifier import pad_features


def needs(backend: str) -> None:
    ok, why = get_backend(backend).available()
    if not ok:
        pytest.skip(f"{backend} cannot run on this machine: {why}")


def oracle(bundle, windows, rois):
    feats = []
    with torch.inference_mode():
        for w, r in zip(windows, rois, strict=True):
            x = preprocess(w, r, bundle.spec)[None]  # [1, 1, T, 224, 224]
            feats.append(pad_features(bundle.i3d.extract_features(x))[0])
        f = torch.stack(feats)
        return f.numpy(), bundle.classifier(f).numpy()


@pytest.fixture(scope="module")
def clip_windows(kinetics_ckpt):
    """Real video: windows of 24, 16 and 9 frames of mmaction2's demo clip (8-bit values as uint16)."""
    from semiostream.sources.readers import open_source

    path = Path(__file__).resolve().parents[3] / "shared" / "assets" / "mmaction2_demo.mp4"
    if not path.is_file():
        pytest.skip(f"real asset {path} is absent")
    src = open_source(path)
    try:
        frames = np.asarray(src.read(0, 49))
    finally:
        src.close()
    assert frames.dtype == np.uint16 and frames.shape[0] == 49
    return [frames[0:24], frames[24:40], frames[40:49]]


@pytest.fixture(scope="module")
def ref_scorer(eng_bundle):
    with Scorer(eng_bundle, "torch-cpu-fp32", preprocessing="reference") as s:
        yield s


def test_real_clip_matches_the_oracle(ref_scorer, eng_bundle, clip_windows):
    h, w = clip_windows[0].shape[1:]
    rois = [None, (20, 10, w - 30, h - 5), None]
    f_ref, p_ref = oracle(eng_bundle, clip_windows, rois)
    feats = ref_scorer.features(clip_windows, rois)
    assert feats.shape == (3, 7, 1024) and feats.dtype == np.float32
    assert np.all(feats[1, :6] == -1) and not np.all(feats[1, 6] == -1)  # 16 frames: 1 step, pre-padded
    assert np.all(feats[2, :6] == -1)  # 9 frames: 1 step
    assert np.all(feats[0, :5] == -1) and not np.any(np.all(feats[0, 5:] == -1, axis=-1))  # 24 frames: 2 steps
    assert np.abs(feats - f_ref).max() / np.abs(f_ref).max() <= 1e-4
    p = ref_scorer.score_features(feats)
    assert p.shape == (3,) and p.dtype == np.float32
    np.testing.assert_allclose(p, p_ref, rtol=0, atol=1e-4)
    ev = ref_scorer.score_event(clip_windows[1:], rois[1:])
    p = p[1:]
    assert ev.p_tle == pytest.approx(float(p.mean()), abs=1e-6) and ev.windows == 2
    assert ev.label == eng_bundle.labels[int(ev.p_tle >= 0.5)]
    assert set(ref_scorer.timings) >= {"preprocess_s", "features_s", "classifier_s"}


@pytest.mark.slow
def test_real_clip_full_window_with_the_fast_cpu_backend(eng_bundle, kinetics_ckpt):
    """A standard 60-frame window through torch-cpu-bf16 (compiled) and DALI: same decision as the oracle."""
    needs("torch-cpu-bf16")
    from semiostream.sources.readers import open_source

    path = Path(__file__).resolve().parents[3] / "shared" / "assets" / "mmaction2_demo.mp4"
    if not path.is_file():
        pytest.skip(f"real asset {path} is absent")
    with open_source(path) as src:
        window = np.asarray(src.read(100, 160))
    f_ref, p_ref = oracle(eng_bundle, [window], [None])
    with Scorer(eng_bundle, "torch-cpu-bf16") as s:
        feats = s.features([window])
        p = s.score_features(feats)
    cos = float((feats * f_ref).sum() / np.linalg.norm(feats) / np.linalg.norm(f_ref))
    assert cos >= 0.999 and np.array_equal(p >= 0.5, p_ref >= 0.5)


def test_dali_preprocessing_and_onnxruntime_agree(eng_bundle, eng_onnx, clip_windows):
    _, p_ref = oracle(eng_bundle, clip_windows[1:], [None, None])
    with Scorer(eng_bundle, "onnxruntime-cpu-fp32", preprocessing="auto") as s:
        assert s.preprocessing == "dali"
        p = s.score_windows(clip_windows[1:])
    np.testing.assert_allclose(p, p_ref, atol=2e-3)
    assert np.array_equal(p >= 0.5, p_ref >= 0.5)


def test_synthetic_ir_mixed_lengths_keep_their_order(eng_bundle, make_ir):
    needs("torch-cpu-bf16")
    windows = [make_ir(16, seed=1), make_ir(9, seed=2), make_ir(16, seed=3), make_ir(12, 96, 128, seed=4)]
    rois = [(10, 10, 150, 110), None, (0, 20, 160, 100), (8, 8, 120, 90)]
    _, p_ref = oracle(eng_bundle, windows, rois)
    with Scorer(eng_bundle, "torch-cpu-bf16", preprocessing="reference", max_batch=2,
                engine_options={"compile": False}) as s:
        p = s.score_windows(windows, rois)
        singles = np.array([s.score_windows([w], [r])[0] for w, r in zip(windows, rois, strict=True)])
    np.testing.assert_allclose(p, singles, atol=1e-5)  # batching/grouping does not change results
    np.testing.assert_allclose(p, p_ref, atol=5e-2)  # bf16
    assert np.array_equal(p >= 0.5, p_ref >= 0.5)
    assert len({round(float(v), 3) for v in p}) > 1  # different windows, different scores


@pytest.mark.parametrize(
    "window, roi, msg",
    [
        (np.zeros((5, 64, 64), np.uint16), None, "window 0: window has 5 frames; the bundle needs at least 9"),
        (np.zeros((65, 64, 64), np.uint16), None, "takes at most 64"),
        (np.zeros((9, 64, 64), np.float32), None, "must be uint16"),
        (np.zeros((9, 64), np.uint16), None, r"must be \[T, H, W\]"),
        (np.zeros((9, 64, 64), np.uint16), (0, 0, 80, 30), "lies outside the 64x64 frame"),
        ("frames", None, "must be a [T, H, W] uint16 array"),
    ],
)
def test_bad_windows_are_named(ref_scorer, window, roi, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]") if "\\" not in msg else msg):
        ref_scorer.score_windows([window], [roi])


def test_rois_must_match_windows(ref_scorer, make_ir):
    with pytest.raises(ValueError, match="2 windows but 1 ROIs"):
        ref_scorer.score_windows([make_ir(9), make_ir(9)], [None])


def test_batcher_serves_concurrent_beds_and_isolates_a_bad_window(ref_scorer, make_ir):
    windows = [make_ir(9, seed=s) for s in range(5)]
    expected = ref_scorer.score_windows(windows)
    with ref_scorer.batcher(max_batch=4, max_wait_ms=30) as b:
        with ThreadPoolExecutor(6) as pool:
            futs = list(pool.map(lambda w: b.submit((w, None)), windows + [np.zeros((4, 32, 32), np.uint16)]))
        got = [f.result(timeout=60) for f in futs[:5]]
        with pytest.raises(ValueError, match="4 frames"):
            futs[5].result(timeout=60)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert b.stats.max_batch_seen > 1


def test_scorer_picks_the_verified_backend(eng_bundle_dir, tmp_path):
    needs("torch-cpu-bf16")
    import shutil

    from semiostream.engines.select import record_verdicts
    from semiostream.models.bundle import load_bundle

    dst = tmp_path / "b"
    shutil.copytree(eng_bundle_dir, dst, ignore=shutil.ignore_patterns("verified_backends.json", "onnx"))
    b = load_bundle(dst)
    record_verdicts(b, b.bundle_id, [{"backend": "torch-cpu-bf16", "passed": True, "ms_per_window": 10.0},
                                     {"backend": "torch-cpu-fp32", "passed": True, "ms_per_window": 20.0}])
    with Scorer(dst, engine_options={"compile": False}) as s:
        assert s.backend == "torch-cpu-bf16"
    with Scorer(dst, backend="torch-cpu-fp32") as s:
        assert s.backend == "torch-cpu-fp32"


def test_warmup_runs_both_engines(eng_bundle):
    with Scorer(eng_bundle, "torch-cpu-fp32", preprocessing="reference") as s:
        s.spec = type(s.spec)(window=9)  # warm up a short window to keep the test fast
        calls = (s.feature_engine.stats.calls, s.classifier_engine.stats.calls)
        assert s.warmup() > 0
        assert (s.feature_engine.stats.calls, s.classifier_engine.stats.calls) == (calls[0] + 1, calls[1] + 1)
