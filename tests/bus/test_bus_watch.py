"""The live results table of `semiostream watch`."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict

import pytest
from bus_helpers import WINDOW, make_config, wait_for_scorer
from rich.console import Console
from waiting import wait_until

from semiostream.bus.protocol import EventResult, ScoreResult, decode_result
from semiostream.bus.publisher import Publisher, synthetic_frames
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.watch import ControlClient, LiveTable, ResultsSubscriber


def _cells(t: LiveTable, bed: str) -> dict[str, str]:
    """The row of ``bed`` as {column: text}."""
    console = Console(width=160, record=True)
    console.print(t.render())
    lines = console.export_text().splitlines()
    header = next(r for r in ([c.strip() for c in ln.split("┃")[1:-1]] for ln in lines) if r)
    rows = [[c.strip() for c in ln.split("│")[1:-1]] for ln in lines]
    return dict(zip(header, next(r for r in rows if r and r[0] == bed), strict=True))


def test_table_shows_latest_result_status_and_events():
    t = LiveTable()
    t.update([ScoreResult("bed-02", 0, 59, 1, 2, 0.2, "FLE", "b1", 350.0, event_id="ev-1"),
              ScoreResult("bed-02", 30, 89, 3, 4, 0.91, "TLE", "b1", 420.0, event_id="ev-1")])
    t.status = {"beds": {"bed-02": {"age_s": 0.1, "gaps": 3, "stale": False, "event": "ev-1"},
                         "bed-05": {"age_s": 12.0, "gaps": 0, "stale": True, "event": None}},
                "dropped": {"backlog": 4}}
    console = Console(width=160, record=True)
    console.print(t.render())
    text = console.export_text()
    assert t.rows["bed-02"].windows == 2 and t.rows["bed-02"].p_tle == 0.91
    row = _cells(t, "bed-02")
    assert (row["p(TLE)"], row["label"], row["latency ms"], row["state"]) == ("0.910", "TLE", "420", "event ev-1")
    assert "(stale)" in _cells(t, "bed-05")["age s"]  # known to the scorer, no result yet
    assert "backlog=4" in text
    t.update([EventResult("bed-02", "ev-1", 1, 9, 2, 0.55, "TLE", "b1")])
    t.status["beds"]["bed-02"]["event"] = None
    assert [e.event_id for e in t.events] == ["ev-1"]
    row = _cells(t, "bed-02")  # closed: its summary is printed, the row shows no class any more
    assert (row["p(TLE)"], row["label"], row["state"]) == ("-", "-", "scored, no event")


def test_a_quiet_bed_shows_no_class():
    """The model learnt seizures only: a window scored outside an event is counted, never labelled."""
    t = LiveTable()
    t.update([ScoreResult("bed-03", 0, 59, 1, 2, 0.74, "TLE", "b1", 300.0)])
    for status in ({}, {"beds": {"bed-03": {"age_s": 0.2, "gaps": 0, "stale": False, "event": None}}}):
        t.status = status
        row = _cells(t, "bed-03")
        assert row["p(TLE)"] == "-" and row["label"] == "-" and not any("0.74" in v or "TLE" in v for v in row.values())
        assert row["state"] == "scored, no event" and row["windows"] == "1" and row["last seq"] == "59"
    # an event opens: until a window of that event is scored, still no class
    t.status = {"beds": {"bed-03": {"age_s": 0.2, "event": "ev-9"}}}
    row = _cells(t, "bed-03")
    assert row["p(TLE)"] == "-" and row["label"] == "-" and row["state"] == "event ev-9 (no window scored yet)"
    t.update([ScoreResult("bed-03", 60, 119, 3, 4, 0.81, "TLE", "b1", 300.0, event_id="ev-9")])
    row = _cells(t, "bed-03")
    assert row["p(TLE)"] == "0.810" and row["label"] == "TLE" and row["state"] == "event ev-9"
    # a result message of an old client (no event_id field) decodes as a window outside an event
    old = decode_result([b"score/bed-04", json.dumps({k: v for k, v in asdict(
        ScoreResult("bed-04", 0, 59, 1, 2, 0.66, "TLE", "b1", 300.0)).items() if k != "event_id"}).encode()])
    t.update([old])
    assert _cells(t, "bed-04")["p(TLE)"] == "-" and _cells(t, "bed-04")["label"] == "-"


@pytest.mark.slow
def test_watch_table_of_a_real_scorer_labels_only_the_bed_in_an_event(bus_bundle):
    """A real scorer, two streaming beds, one with an open event: only that one shows a class; the quiet one
    shows it once its own event starts, and loses it when the event closes."""
    cfg = make_config(bus_bundle, windows={"hop": WINDOW, "max_inflight": 2})
    stop = threading.Event()
    with ScorerRuntime(cfg).start():
        sub, ctl = ResultsSubscriber(cfg.endpoints.results), ControlClient(cfg.endpoints.control)
        pubs = {bed: Publisher(cfg.endpoints.frames, bed) for bed in ("bed-e", "bed-q")}
        threads = [threading.Thread(target=p.run, daemon=True, kwargs={"stop": stop}, args=(
            synthetic_frames("TLE", i, 96, 72, 30.0, 2.0),)) for i, p in enumerate(pubs.values())]
        t = LiveTable()
        got: list = []

        def follow(until):
            def step():
                new = sub.poll(100)
                got.extend(new)
                t.update(new)
                t.status = ctl.status().get("status", {})
                return until()
            assert wait_until(step, 180), f"not reached; results {got[-6:]}, status {t.status}"

        def scored(bed, in_event):
            return [r for r in got if isinstance(r, ScoreResult) and r.bed == bed and (r.event_id is not None)
                    == in_event]

        try:
            wait_for_scorer(*pubs.values())
            assert ctl.event("start", "bed-e")["ok"]
            for th in threads:
                th.start()
            follow(lambda: scored("bed-e", True) and len(scored("bed-q", False)) >= 2)
            quiet, last_e = _cells(t, "bed-q"), scored("bed-e", True)[-1]
            assert quiet["p(TLE)"] == "-" and quiet["label"] == "-" and quiet["state"] == "scored, no event", quiet
            assert int(quiet["windows"]) == len(scored("bed-q", False))
            row = _cells(t, "bed-e")
            assert row["p(TLE)"] == f"{last_e.p_tle:.3f}" and row["label"] == last_e.label, row
            started = ctl.event("start", "bed-q")
            assert started["ok"]
            follow(lambda: scored("bed-q", True) and t.status["beds"]["bed-q"]["event"])
            last_q = scored("bed-q", True)[-1]
            assert last_q.event_id == started["event_id"]
            row = _cells(t, "bed-q")
            assert row["p(TLE)"] == f"{last_q.p_tle:.3f}" and row["label"] == last_q.label, row
            assert ctl.event("stop", "bed-q")["ok"]
            follow(lambda: any(isinstance(r, EventResult) and r.bed == "bed-q" for r in got))
            row = _cells(t, "bed-q")
            assert row["p(TLE)"] == "-" and row["label"] == "-" and t.rows["bed-q"].p_tle is None, row
        finally:
            stop.set()
            for th in threads:
                th.join(10)
            for p in pubs.values():
                p.close(flush_s=0)
            sub.close()
            ctl.close()


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
