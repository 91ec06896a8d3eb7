"""The live results table of `semiostream watch`."""

from __future__ import annotations

from rich.console import Console

from semiostream.bus.protocol import EventResult, ScoreResult
from semiostream.bus.watch import LiveTable


def test_table_shows_latest_result_status_and_events():
    t = LiveTable()
    t.update([ScoreResult("bed-02", 0, 59, 1, 2, 0.2, "FLE", "b1", 350.0),
              ScoreResult("bed-02", 30, 89, 3, 4, 0.91, "TLE", "b1", 420.0),
              EventResult("bed-02", "ev-1", 1, 9, 2, 0.55, "TLE", "b1")])
    t.status = {"beds": {"bed-02": {"age_s": 0.1, "gaps": 3, "stale": False, "event": None},
                         "bed-05": {"age_s": 12.0, "gaps": 0, "stale": True, "event": None}},
                "dropped": {"backlog": 4}}
    console = Console(width=140, record=True)
    console.print(t.render())
    text = console.export_text()
    assert t.rows["bed-02"].windows == 2 and t.rows["bed-02"].p_tle == 0.91
    assert [e.event_id for e in t.events] == ["ev-1"]
    lines = {ln.split()[1]: ln for ln in text.splitlines() if "bed-0" in ln}
    assert "0.910" in lines["bed-02"] and "TLE" in lines["bed-02"] and "420" in lines["bed-02"]
    assert "(stale)" in lines["bed-05"]  # known to the scorer, no result yet
    assert "backlog=4" in text


def test_an_empty_table_says_why():
    t = LiveTable()
    ep = "tcp://10.0.0.5:5556"
    assert t.explain("no scorer at tcp://10.0.0.5:5556: nothing accepts connections there", None, ep).startswith(
        "no scorer at")
    assert "no camera is streaming" in t.explain(None, None, ep)
    t.status = {"beds": {"bed-01": {"age_s": 0.1}}}
    assert t.explain(None, None, ep) == "connected; 1 bed streaming, waiting for the first scored window"
    assert "operator key" in t.explain(None, None, ep, status_asked=False)
    assert "bed status unavailable: refused" in t.explain(None, "refused", ep)
    t.update([ScoreResult("bed-01", 0, 59, 1, 2, 0.2, "FLE", "b1", 350.0)])
    assert t.explain(None, None, ep) is None
    console = Console(width=140, record=True)
    t.notice = "lost the scorer at tcp://10.0.0.5:5556; reconnecting"
    console.print(t.render())
    assert "lost the scorer" in console.export_text()
