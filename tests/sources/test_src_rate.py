"""Windows in time: sources read at the bundle's rate (sources.rate), checked against a brute-force
frame-on-display reference."""

from __future__ import annotations

import numpy as np
import pytest

from semiostream.sources.rate import ResampledSource, at_rate, frame_selection, source_index, source_rate
from semiostream.sources.readers import open_source
from semiostream.sources.source import SourceError
from semiostream.sources.writers import write_npy


def display_reference(times: np.ndarray, source_fps: float, fps: float) -> list[int]:
    """Independent reference, one grid point at a time: resampled frame k covers [t0 + k/fps, t0 + (k+1)/fps)
    for the source's duration (last frame + one period) and shows the last source frame captured before the
    middle of that interval (a frame starting within 1 us of the middle counts as after it)."""
    n_grid = int(np.floor((times[-1] - times[0] + 1 / source_fps) * fps + 1e-6))
    out = []
    for k in range(n_grid):
        middle = times[0] + (k + 0.5) / fps
        shown = [i for i, t in enumerate(times) if t <= middle - 1e-6]
        out.append(shown[-1] if shown else 0)
    return out


def _regular(n: int, fps: float, t0: float = 0.0) -> np.ndarray:
    return t0 + np.arange(n) / fps


@pytest.mark.parametrize("name, times, src_fps", [
    ("6 fps", _regular(24, 6), 6.0),
    ("60 fps", _regular(240, 60), 60.0),
    ("25 fps", _regular(100, 25, t0=3.2), 25.0),
    ("12.5 fps", _regular(50, 12.5), 12.5),
    ("variable rate", np.cumsum(np.random.default_rng(3).uniform(0.02, 0.06, 150)), 25.0),
    ("30 fps with 9 frames dropped", np.delete(_regular(120, 30), np.arange(40, 49)), 30.0),
])
def test_resampling_shows_the_frame_on_display(name, times, src_fps):
    got = frame_selection(times, src_fps, 30.0)
    assert got is not None, name
    np.testing.assert_array_equal(got, display_reference(times, src_fps, 30.0), err_msg=name)
    duration = times[-1] - times[0] + 1 / src_fps
    assert len(got) == pytest.approx(duration * 30, abs=1)  # the same seconds at 30 fps


def test_6_and_60_fps_windows_span_two_seconds_of_the_source():
    six = frame_selection(_regular(24, 6), 6.0, 30.0)
    assert len(six) == 120 and np.array_equal(np.bincount(six), [5] * 24)  # every frame shown 5 times
    window = _regular(24, 6)[six[60:120]]  # the second 60-frame window
    assert window[0] == pytest.approx(2.0) and window[-1] - window[0] == pytest.approx(2.0 - 1 / 6)
    sixty = frame_selection(_regular(240, 60), 60.0, 30.0)
    np.testing.assert_array_equal(sixty, np.arange(0, 240, 2))  # every other frame, from the first


def test_a_source_at_the_bundles_rate_is_used_as_it_is():
    assert frame_selection(_regular(90, 30), 30.0, 30.0) is None
    assert frame_selection(_regular(90, 30000 / 1001), 30000 / 1001, 30.0) is None  # 29.97: within 1 %
    assert frame_selection(np.zeros(1), 30.0, 30.0) is None
    jitter = _regular(90, 30) + np.random.default_rng(1).uniform(-0.008, 0.008, 90)  # capture-time jitter
    assert frame_selection(np.sort(jitter), 30.0, 30.0) is None
    assert frame_selection(_regular(90, 29.0), 29.0, 30.0) is not None  # 3.3 % off: resampled


def test_too_low_a_rate_is_refused_with_the_limit():
    assert frame_selection(_regular(10, 5), 5.0, 30.0) is not None  # a sixth of 30: the slowest accepted
    with pytest.raises(ValueError, match=r"4 fps is below 5 fps, the slowest the bundle's 30 fps windows"):
        frame_selection(_regular(10, 4), 4.0, 30.0)


def test_at_rate_reads_the_selected_frames(tmp_path):
    frames = np.random.default_rng(0).integers(0, 65535, (24, 8, 10), dtype=np.uint16)
    path = write_npy(tmp_path / "six.npy", frames)
    src = at_rate(open_source(path, fps=6), 30.0)
    assert isinstance(src, ResampledSource) and (src.num_frames, src.fps, source_rate(src)) == (120, 30.0, 6.0)
    assert src.fps_from == "given"
    idx = np.array(display_reference(_regular(24, 6), 6.0, 30.0))
    np.testing.assert_array_equal(src.read(0, 120), frames[idx])
    np.testing.assert_array_equal(src.read(57, 64), frames[idx[57:64]])
    np.testing.assert_allclose(src.frame_times(60, 120), idx[60:120] / 6)
    np.testing.assert_array_equal(source_index(src, np.array([0, 59, 119])), idx[[0, 59, 119]])
    src.close()


def test_at_rate_keeps_a_30_fps_source_and_takes_an_assumed_rate_as_the_bundles(tmp_path):
    frames = np.arange(40 * 4 * 4, dtype=np.uint16).reshape(40, 4, 4)
    path = write_npy(tmp_path / "a.npy", frames)
    thirty = open_source(path, fps=30)
    assert at_rate(thirty, 30.0) is thirty  # the very same source: frames read exactly as before
    assumed = open_source(path)
    assert assumed.fps_from == "assumed"
    same = at_rate(assumed, 15.0)  # no rate stored or given: the bundle's
    assert same is assumed and same.fps == 15.0
    with pytest.raises(SourceError, match=r"below 5 fps.*; check the rate given \(--fps or the manifest's fps"):
        at_rate(open_source(path, fps=2), 30.0)  # the user's rate is what to check, not the recording
