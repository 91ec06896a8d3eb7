"""One intensity window per video / event (PreprocessSpec.intensity_scope)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.dali_pipes.event_intensity import EventIntensity, fixed_window_spec, holds_window, segment_window
from semiostream.dali_pipes.intensity import intensity_window
from semiostream.dali_pipes.reference import preprocess


def _event(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(1000, 1400, (120, 40, 56))
    x[60:] += 3000  # the second window is much brighter
    return x.astype(np.uint16)


def test_video_scope_holds_the_first_windows_percentiles():
    spec = PreprocessSpec(window=60)
    assert spec.intensity_scope == "video" and holds_window(spec)
    v = _event()
    roi = (4, 2, 50, 38)
    held = segment_window(v[:20], roi, spec)
    assert held == intensity_window(v[:60], roi, spec)  # = the first window's own window
    ev = EventIntensity(spec)
    assert ev.window is None
    assert ev.window_for(v[:60], roi) == held
    assert ev.window_for(v[60:], roi) == held  # held, although the second window is brighter
    assert intensity_window(v[60:], roi, spec) != held
    ev.reset()
    assert ev.window_for(v[60:], roi) == intensity_window(v[60:], roi, spec)  # a new event


def test_fixed_window_spec_preprocesses_like_the_held_window():
    spec = PreprocessSpec(window=60)
    v = _event(1)
    held = segment_window(v[:8], None, spec)
    fixed = fixed_window_spec(spec, held)
    assert fixed.intensity_mode == "fixed" and (fixed.intensity_lo, fixed.intensity_hi) == held
    assert fixed_window_spec(spec, None) is spec
    a = preprocess(v[60:], None, fixed)
    b = preprocess(v[60:], None, spec, window=held)
    assert torch.equal(a, b)
    assert not torch.allclose(a, preprocess(v[60:], None, spec))  # per-window contrast differs


@pytest.mark.parametrize("changes", [{"intensity_scope": "window"}, {"intensity_mode": "fixed"}])
def test_per_window_and_fixed_specs_hold_nothing(changes):
    spec = dataclasses.replace(PreprocessSpec(), **changes)
    assert not holds_window(spec)
    assert segment_window(_event()[:8], None, spec) is None
    assert EventIntensity(spec).window_for(_event()[:60], None) is None


def test_spec_field_is_validated_and_old_bundles_read_as_per_window():
    with pytest.raises(ValueError, match="intensity_scope='clip'"):
        PreprocessSpec(intensity_scope="clip")
    old = PreprocessSpec().to_dict()
    del old["intensity_scope"]
    assert PreprocessSpec.from_dict(old).intensity_scope == "window"
    assert PreprocessSpec.from_dict(PreprocessSpec().to_dict()).intensity_scope == "video"
    with pytest.raises(ValueError, match="first frames"):
        segment_window(np.zeros((0, 4, 4), np.uint16), None, PreprocessSpec())
