"""Progress in windows: plain lines with a steady rate (after the first burst) and an ETA from it."""

from __future__ import annotations

import time

import pytest

from semiostream.archive.progress import BURST_S, WindowProgress


class Clock:
    """A clock the test moves: the rates below are exact, whatever else the machine is doing."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_plain_progress_lines_show_the_steady_rate_and_eta(capsys):
    clock = Clock()
    with WindowProgress(13, interval_s=0.0, window_s=2.0, clock=clock) as prog:
        clock.sleep(0.2)
        assert "waiting for the first result" in prog.line()
        for _ in range(4):  # the first batch: 4 windows at once, after the start-up
            prog.advance(1)
        assert prog.steady_rate() == 0.0 and "measuring the rate" in prog.line()
        clock.sleep(BURST_S + 0.5)
        for _ in range(4):  # the next batch
            prog.advance(1)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "scoring: 13 windows ..."
    assert err[1] == "scoring: 1/13 windows, first results after 0.2 s; measuring the rate"
    steady = [ln for ln in err if ln.startswith("scoring: 8/13 windows, ")]
    # 4 windows in the 1.0 s after the first burst, not 8 windows over the start-up nor 4 in no time
    assert steady == ["scoring: 8/13 windows, 4.00 windows/s (8.00x real time), ETA 0m01s"], err
    assert err[-1] == ("scoring: 8/13 windows in 0m01s (first results after 0.2 s), 4.00 windows/s after them "
                       "(8.00x real time: seconds of recording per second)")
    assert prog.steady_rate() == pytest.approx(4.0)


def test_the_real_clock_measures_a_real_pause(capsys):
    with WindowProgress(2, interval_s=0.0) as prog:
        prog.advance(1)
        time.sleep(BURST_S + 0.3)  # kept: the real pause the real clock must measure
        prog.advance(1)
    assert 0 < prog.steady_rate() <= 1 / (BURST_S + 0.3)


def test_disabled_progress_prints_nothing(capsys):
    with WindowProgress(3, enabled=False) as prog:
        prog.advance(3)
    assert capsys.readouterr().err == "" and prog.done == 3
