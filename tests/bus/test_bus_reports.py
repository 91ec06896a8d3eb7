"""The live scorer writes an event review report when an event closes (config ``reports: DIR``): its path
is in the ``event/<bed>`` message and the results database, and the report shows the event's windows."""

from __future__ import annotations

import numpy as np
from bus_helpers import WINDOW, collect, make_config, wait_for_scorer
from waiting import wait_until

from semiostream.bus.protocol import EventResult, ScoreResult
from semiostream.bus.publisher import Publisher, synthetic_frames
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.store import ResultStore
from semiostream.bus.watch import ControlClient, ResultsSubscriber


def test_closed_event_gets_a_review_report(bus_bundle, tmp_path):
    frames = np.stack(list(synthetic_frames("FLE", seed=4, width=96, height=72, seconds=2.2, loop=False)))
    frames = frames[: 4 * WINDOW]
    cfg = make_config(bus_bundle, reports=tmp_path / "reports", store={"path": tmp_path / "results.sqlite"},
                      limits={"frame_bytes": 64 << 20})
    with ScorerRuntime(cfg).start() as rt:
        sub = ResultsSubscriber(cfg.endpoints.results)
        ctl = ControlClient(cfg.endpoints.control)
        pub = Publisher(cfg.endpoints.frames, "bed-rep", fps=30, queue_seconds=4)  # its queue holds all 64 frames
        wait_for_scorer(pub)
        event_id = ctl.event("start", "bed-rep")["event_id"]
        pub.run(frames, realtime=False)
        scores = collect(sub, lambda g: sum(isinstance(r, ScoreResult) for r in g) >= 4)
        assert ctl.event("stop", "bed-rep")["ok"]
        (event,) = [r for r in collect(sub, lambda g: any(isinstance(r, EventResult) for r in g), timeout=60)
                    if isinstance(r, EventResult)]
        rt.reports.join(timeout=300)
        table = rt.service.table
        # the writer hands the frames back to the scoring thread, which releases them on its next turn
        def beyond_stream_buffers() -> int:
            return table.held_bytes - sum(b.reserved_bytes for b in table.beds.values())

        wait_until(lambda: beyond_stream_buffers() == 0, timeout=10)
        held = beyond_stream_buffers()
        for c in (sub, ctl, pub):
            c.close()
    report = tmp_path / "reports" / event_id / "index.html"
    assert event.report == str(report) and report.is_file()
    html = report.read_text()
    assert "bed-rep" in html and event_id in html and "not a diagnosis" in html.lower()
    assert len(list(report.parent.glob("*.png"))) >= 3  # p(TLE) over time, first frame, montage / saliency
    with ResultStore(tmp_path / "results.sqlite", readonly=True) as store:
        (row,) = store.events()
    assert row["report"] == str(report) and row["windows"] == 4 == event.windows
    assert len([s for s in scores if isinstance(s, ScoreResult)]) == 4
    assert held == 0  # the report's kept windows were released from the frame budget
