"""Archive re-scoring holds one intensity window per video segment when the bundle's spec says so."""

from __future__ import annotations

import dataclasses

import numpy as np

from semiostream.archive.plan import plan_job
from semiostream.archive.runner import score_local
from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.core.segment import Segment
from semiostream.dali_pipes.event_intensity import segment_window
from semiostream.engines.scorer import Scorer


def _clip(path, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.integers(1000, 1400, (40, 48, 64))
    v[16:] += 2500  # brighter after the first window
    np.save(path, v.astype(np.uint16))
    return path


def test_plan_holds_the_segments_first_frames_window(tmp_path):
    clip = _clip(tmp_path / "v.npy")
    spec = PreprocessSpec(window=16, fps=15, min_frames=9)
    v = np.load(clip)
    plan = plan_job(Segment(clip, roi=(4, 4, 60, 44)), "k", "sha", spec)
    assert plan.intensity == segment_window(v[:spec.percentile_frames], (4, 4, 60, 44), spec)
    seg = plan_job(Segment(clip, onset=0.5), "k", "sha", spec, hop=None)  # a segment: its own first frames
    start = seg.seg_start
    assert seg.intensity == segment_window(v[start:start + spec.percentile_frames], None, spec)
    assert plan_job(Segment(clip), "k", "sha", dataclasses.replace(spec, intensity_scope="window")).intensity is None


def test_local_runner_scores_with_the_held_window(tmp_path, arc_bundle):
    clip = _clip(tmp_path / "v.npy", seed=1)
    with Scorer(arc_bundle, "torch-cpu-fp32", preprocessing="reference", engine_options={"compile": False}) as sc:
        assert sc.spec.intensity_scope == "video"
        plan = plan_job(Segment(clip), "k", "sha", sc.spec)
        done = {}
        score_local([plan], sc, lambda pl, p, err: done.setdefault(pl.key, (p, err)), workers=1)
        p, err = done["k"]
        assert err is None
        v = np.load(clip)
        windows = [v[a:b] for a, b in plan.ranges()]
        expected = sc.score_windows(windows, [None] * len(windows), [plan.intensity] * len(windows))
        per_window = sc.score_windows(windows, [None] * len(windows))
    np.testing.assert_allclose(p, expected, atol=1e-5)
    assert np.abs(p[1:] - per_window[1:]).max() > 0  # the held window, not each window's own
