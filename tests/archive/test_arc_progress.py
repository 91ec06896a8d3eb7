"""Progress in windows: plain lines with a steady rate (after the first burst) and an ETA from it."""

from __future__ import annotations

import time

import pytest

from semiostream.archive.progress import BURST_S, WindowProgress


def test_plain_progress_lines_show_the_steady_rate_and_eta(capsys):
    with WindowProgress(13, interval_s=0.0, window_s=2.0) as prog:
        time.sleep(0.2)
        assert "waiting for the first result" in prog.line()
        for _ in range(4):  # the first batch: 4 windows at once, after the start-up
            prog.advance(1)
        assert prog.steady_rate() == 0.0 and "measuring the rate" in prog.line()
        time.sleep(BURST_S + 0.5)
        for _ in range(4):  # the next batch
            prog.advance(1)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "scoring: 13 windows ..."
    assert err[1].startswith("scoring: 1/13 windows, first results after 0.")
    steady = [ln for ln in err if ln.startswith("scoring: 8/13 windows, ")]
    # 4 windows in ~1.0 s after the first burst, not 8 windows over the start-up nor 4 in a millisecond
    rate = float(steady[0].split(", ")[1].split()[0])
    assert 2.0 < rate < 4.5, steady[0]
    assert f"({2 * rate:.2f}x real time), ETA 0m0" in steady[0]
    assert err[-1].startswith("scoring: 8/13 windows in 0m01s (first results after 0.")
    assert "windows/s after them" in err[-1]
    assert prog.steady_rate() == pytest.approx(4 / (time.perf_counter() - prog.t_first), rel=0.2)


def test_disabled_progress_prints_nothing(capsys):
    with WindowProgress(3, enabled=False) as prog:
        prog.advance(3)
    assert capsys.readouterr().err == "" and prog.done == 3
