"""Windows: 60-frame windows, leftover kept at >= 9 frames, hops for live scoring, capture times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.sources.readers import open_source
from semiostream.sources.windows import WindowAssembler, iter_windows, plan_windows
from semiostream.sources.writers import write_ffv1, write_npy


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (60, [(0, 60)]),
        (128, [(0, 60), (60, 120)]),  # leftover 8 < 9: dropped
        (129, [(0, 60), (60, 120), (120, 129)]),  # leftover 9: kept
        (8, []),
        (9, [(0, 9)]),
        (59, [(0, 59)]),
        (0, []),
    ],
)
def test_plan_non_overlapping(n, expected):
    assert plan_windows(n, 60, None, 9) == expected


def test_plan_uses_spec_numbers():
    spec = PreprocessSpec(window=16, min_frames=10)
    assert plan_windows(41, spec.window, None, spec.min_frames) == [(0, 16), (16, 32)]
    assert plan_windows(42, spec.window, None, spec.min_frames) == [(0, 16), (16, 32), (32, 42)]


def test_plan_with_hop():
    assert plan_windows(100, 60, 15, 9) == [(0, 60), (15, 75), (30, 90), (45, 100)]
    assert plan_windows(90, 60, 30, 9) == [(0, 60), (30, 90)]  # no leftover already covered
    with pytest.raises(ValueError):
        plan_windows(100, 60, 61, 9)


@pytest.mark.parametrize("hop", [None, 20])
def test_iter_windows_frames_and_times(tmp_path: Path, hop):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 65535, (139, 8, 10), dtype=np.uint16)
    src = open_source(write_ffv1(tmp_path / "w.mkv", frames, fps=30))
    wins = list(iter_windows(src, 60, hop, 9))
    assert [(w.start, w.stop) for w in wins] == plan_windows(139, 60, hop, 9)
    for w in wins:
        np.testing.assert_array_equal(w.frames, frames[w.start : w.stop])
        assert w.source_id == str(tmp_path / "w.mkv")
        assert (w.first_seq, w.last_seq) == (w.first, w.last)
        assert w.first_t_ns == pytest.approx(w.first / 30 * 1e9, abs=1e6)
        assert w.last_t_ns == pytest.approx(w.last / 30 * 1e9, abs=1e6)
        assert w.num_frames == w.last - w.first + 1


def test_iter_windows_plan_only(tmp_path: Path):
    src = open_source(write_npy(tmp_path / "a.npy", np.zeros((70, 4, 4), np.uint16)), fps=10)
    wins = list(iter_windows(src, load=False, source_id="bed-3"))
    assert [(w.start, w.stop, w.source_id, w.frames) for w in wins] == [
        (0, 60, "bed-3", None),
        (60, 70, "bed-3", None),
    ]
    assert (wins[1].first_t_ns, wins[1].last_t_ns) == (6_000_000_000, 6_900_000_000)


@pytest.mark.parametrize(("n", "hop"), [(139, None), (128, None), (100, 15), (90, 30), (5, None)])
def test_live_assembler_matches_plan(n, hop):
    frames = np.arange(n, dtype=np.uint16)[:, None, None] * np.ones((1, 3, 2), np.uint16)
    asm = WindowAssembler("bed-1", 60, hop, 9)
    wins = []
    for i in range(n):
        wins += asm.push(frames[i], t_ns=100 * 10**9 + i * 10**9 // 30, seq=1000 + 2 * i)
    wins += asm.flush()
    assert [(w.start, w.stop) for w in wins] == plan_windows(n, 60, hop, 9)
    for w in wins:
        np.testing.assert_array_equal(w.frames, frames[w.start : w.stop])
        assert w.first_t_ns == 100 * 10**9 + w.start * 10**9 // 30 and w.last_t_ns == 100 * 10**9 + w.last * 10**9 // 30
        assert (w.first_seq, w.last_seq) == (1000 + 2 * w.start, 1000 + 2 * w.last)  # the pushed frame numbers
    assert asm.flush() == []
