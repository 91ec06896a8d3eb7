"""Progress in windows: plain lines with windows/s and ETA when stderr is not a terminal."""

from __future__ import annotations

import time

from semiostream.archive.progress import WindowProgress


def test_plain_progress_lines_show_rate_and_eta(capsys):
    with WindowProgress(10, interval_s=0.0) as prog:
        time.sleep(0.05)
        prog.advance(1)
        time.sleep(0.05)
        prog.advance(4)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "scoring: 10 windows ..."
    assert err[1].startswith("scoring: 1/10 windows, ") and " windows/s, ETA 0m0" in err[1]
    assert err[2].startswith("scoring: 5/10 windows, ")
    assert err[-1].startswith("scoring: 5/10 windows in 0m00s, ")
    assert prog.rate() > 0 and prog.steady_rate() > 0 and prog.t_first is not None


def test_disabled_progress_prints_nothing(capsys):
    with WindowProgress(3, enabled=False) as prog:
        prog.advance(3)
    assert capsys.readouterr().err == "" and prog.done == 3
