"""The engines' Scorer with held intensity windows (per call, per window, via the batcher), as feature
extraction uses it."""

from __future__ import annotations

import numpy as np
import pytest

from semiostream.dali_pipes.event_intensity import segment_window
from semiostream.dali_pipes.reference import preprocess


def _video(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.integers(1000, 1500, (32, 48, 64))
    v[16:] += 2000
    return v.astype(np.uint16)


def test_held_windows_per_call_per_window_and_through_the_batcher(feature_scorer, small_spec):
    v = _video()
    w0, w1 = v[:16], v[16:]
    roi = (4, 4, 60, 44)
    held = segment_window(v[:8], roi, small_spec)
    one = feature_scorer.features([w0, w1], [roi, roi], intensities=held)
    each = feature_scorer.features([w0, w1], [roi, roi], intensities=[held, held])
    np.testing.assert_array_equal(one, each)
    own = feature_scorer.features([w0, w1], [roi, roi])  # per-window rule: the bright window gets its own contrast
    np.testing.assert_allclose(one[0], own[0], atol=2e-3)  # first window: same (lo, hi) either way
    assert np.abs(one[1] - own[1]).max() > 1e-2
    mixed = feature_scorer.features([w0, w1], [roi, roi], intensities=[held, None])
    np.testing.assert_allclose(mixed[1], own[1], atol=2e-3)

    p = feature_scorer.score_windows([w1], [roi], intensities=held)
    with feature_scorer.batcher(max_wait_ms=1) as b:
        got = b.submit((w1, roi, held)).result(timeout=120)
        plain = b.submit((w1, roi)).result(timeout=120)
        with pytest.raises(ValueError, match="hi > lo"):
            b.submit((w1, roi, (5.0, 5.0))).result(timeout=120)
    assert got == pytest.approx(float(p[0]), abs=1e-6)
    assert plain == pytest.approx(float(feature_scorer.score_windows([w1], [roi])[0]), abs=1e-6)
    with pytest.raises(ValueError, match="2 windows but 3 intensity windows"):
        feature_scorer.features([w0, w1], None, intensities=[held, held, held])


def test_held_window_preprocessing_is_the_reference_with_that_window(feature_scorer, small_spec):
    v = _video(4)
    held = segment_window(v[:8], None, small_spec)
    (x,) = feature_scorer.preprocess([v[16:]], [None], [held])
    ref = preprocess(v[16:], None, small_spec, window=held).numpy()
    np.testing.assert_allclose(x.cpu().numpy(), ref, rtol=0, atol=1e-3)  # DALI = reference within 1e-3
    assert np.abs(ref - preprocess(v[16:], None, small_spec).numpy()).max() > 0.1  # the held window matters
