"""A real headless Chromium on the dashboard during a live run (a real ScorerRuntime with a real bundle and real
Publishers on loopback) and on an event review report opened from disk. Screenshots and DOM dumps are kept in
``tests-artifacts/review/`` (the path is printed)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time

import pytest
from review_browser import Chromium, artifacts_dir, chromium_binary, run
from review_helpers import WINDOW, make_evidence

from semiostream.bus.config import ServiceConfig
from semiostream.bus.dashboard import BoardState, DashboardServer, ScorerFeed
from semiostream.bus.protocol import EventResult, ScoreResult
from semiostream.bus.publisher import Publisher, synthetic_frames
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.watch import ControlClient, ResultsSubscriber
from semiostream.review.report import report_dir_for, write_event_report

IMAGES_LOADED = ("document.images.length > 0 && "
                 "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def card(bed: str, what: str) -> str:
    return f"document.querySelector('section.bed[data-bed=\"{bed}\"] {what}')"


@pytest.fixture
def browser_ok():
    chromium_binary()  # skips with the reason when absent


def test_dashboard_live_in_a_real_browser(review_bundle, clip, tmp_path, browser_ok):
    out = artifacts_dir("dashboard")
    reports = tmp_path / "reports"
    reports.mkdir()
    cfg = ServiceConfig.model_validate({
        "bundle": review_bundle, "backend": "torch-cpu-fp32", "store": {"path": None},
        "endpoints": {k: f"tcp://127.0.0.1:{free_port()}" for k in ("frames", "results", "control")},
        "windows": {"hop": WINDOW, "max_inflight": 2, "stale_after_s": 3.0},
        "batching": {"max_batch": 2, "max_wait_ms": 30}})
    stop = threading.Event()
    with ScorerRuntime(cfg).start():
        state = BoardState(reports)
        feed = ScorerFeed(state, cfg.endpoints.results, cfg.endpoints.control, status_every_s=0.5).start()
        server = DashboardServer(state, "127.0.0.1", 0).start()
        probe = ResultsSubscriber(cfg.endpoints.results)  # sees each result when the dashboard does
        ctl = ControlClient(cfg.endpoints.control)
        pubs = {bed: Publisher(cfg.endpoints.frames, bed, fps=15.0) for bed in ("bed-01", "bed-02")}
        frames = {"bed-01": synthetic_frames("FLE", 1, 96, 72, 15.0, 4.0), "bed-02": synthetic_frames("TLE", 2, 96, 72,
                                                                                                     15.0, 4.0)}
        bed2_stop = threading.Event()  # bed-02's camera goes silent mid-test
        threads = {bed: threading.Thread(target=p.run, args=(frames[bed],), daemon=True,
                                         kwargs={"stop": bed2_stop if bed == "bed-02" else stop})
                   for bed, p in pubs.items()}
        try:
            assert ctl.event("start", "bed-01")["ok"]
            for t in threads.values():
                t.start()
            run(_drive_dashboard(server, probe, ctl, out, reports, review_bundle, clip, bed2_stop), timeout=420)
        finally:
            stop.set()
            bed2_stop.set()
            for t in threads.values():
                t.join(10)
            for p in pubs.values():
                p.close(flush_s=0)
            probe.close()
            ctl.close()
            server.close()
            feed.close()


async def _drive_dashboard(server, probe, ctl, out, reports, bundle, clip, bed2_stop):
    async with Chromium() as br:
        page = await br.new_page()
        await page.goto(server.url)
        # both beds scored, bed-01's open event shown with its elapsed time and a class
        await page.wait_for("document.getElementById('conn').textContent === 'live'", 30)
        await page.wait_for("['bed-01', 'bed-02'].every(b => { const c = document.querySelector("
                            "`section.bed[data-bed=\"${b}\"]`); return c && c.dataset.lastSeq !== ''; })", 180)
        await page.wait_for(card("bed-01", ".event") + "?.textContent.startsWith('EVENT OPEN')", 30)
        await page.wait_for(card("bed-01", ".label") + " !== null", 60)
        assert await page.eval(card("bed-01", ".label") + ".textContent") in ("TLE", "FLE")
        assert re.fullmatch(r"[01]\.\d{3}", await page.eval(card("bed-01", ".p") + ".textContent"))
        # bed-02 has no open event: streaming and scored, but no label, no p(TLE), no curve
        quiet = await page.eval(f"JSON.stringify([{card('bed-02', '')}.textContent, "
                                f"{card('bed-02', '.quiet')}?.textContent, {card('bed-02', '.label')}, "
                                f"{card('bed-02', '.p')}, {card('bed-02', 'svg.spark')}])")
        text2, quiet_text, *shown = json.loads(quiet)
        assert quiet_text == "scored, no event" and shown == [None, None, None], quiet
        assert not re.search(r"TLE|FLE|p\(|\d\.\d{3}", text2) and re.search(r"\d+ windows", text2), text2
        await page.screenshot(out / "dashboard-1.png")
        dom1 = await page.dom(out / "dashboard-1.html")
        before = await page.eval("JSON.stringify(Array.from(document.querySelectorAll('section.bed')).map(c => "
                                 "[c.dataset.bed, c.dataset.lastSeq, c.querySelector('.p')?.textContent, "
                                 "c.querySelector('svg.spark')?.dataset.points]))")
        version1 = int(await page.eval("document.body.dataset.version"))
        assert 'data-bed="bed-01"' in dom1 and 'data-bed="bed-02"' in dom1 and "bed-01" in dom1
        # values update without a reload: a newer window of bed-01 appears on the same page
        nav = await page.eval("performance.getEntriesByType('navigation').length")
        latencies = []
        for _ in range(2):
            result = await _next_result(probe, "bed-01", 180)
            t_seen = time.monotonic()
            await page.wait_for(f"Number({card('bed-01', '')}.dataset.lastSeq) >= {result.last_seq}", 30, every=0.02)
            latencies.append(time.monotonic() - t_seen)
        print(f"dashboard page updated {', '.join(f'{x * 1000:.0f}' for x in latencies)} ms after the result "
              "was published (measured from a second subscriber)")
        await page.screenshot(out / "dashboard-2.png")
        await page.dom(out / "dashboard-2.html")
        after = await page.eval("JSON.stringify(Array.from(document.querySelectorAll('section.bed')).map(c => "
                                "[c.dataset.bed, c.dataset.lastSeq, c.querySelector('.p')?.textContent, "
                                "c.querySelector('svg.spark')?.dataset.points]))")
        assert int(await page.eval("document.body.dataset.version")) > version1
        assert await page.eval("performance.getEntriesByType('navigation').length") == nav  # no reload
        b1, a1 = dict((r[0], r[1:]) for r in json.loads(before)), dict((r[0], r[1:]) for r in json.loads(after))
        assert int(a1["bed-01"][0]) > int(b1["bed-01"][0]) and int(a1["bed-01"][2]) > int(b1["bed-01"][2])
        assert max(latencies) < 5.0
        # an event starts on bed-02: its card shows a class from the event's first scored window
        assert ctl.event("start", "bed-02")["ok"]
        await page.wait_for(card("bed-02", ".label") + " !== null && " + card("bed-02", ".quiet") + " === null", 120)
        assert re.fullmatch(r"[01]\.\d{3}", await page.eval(card("bed-02", ".p") + ".textContent"))
        await page.screenshot(out / "dashboard-2b-event-on-bed-02.png")
        # a silent camera turns its bed stale
        bed2_stop.set()
        await page.wait_for(card("bed-02", ".stale") + " !== null", 60)
        # the event closes: listed with its link once the report exists, and the report opens from the page
        stop = ctl.event("stop", "bed-01")
        assert stop["ok"]
        event_id = stop["event_id"]
        await page.wait_for(card("bed-01", "ul.closed") + f"?.textContent.includes('{event_id}')", 120)
        ev = make_evidence(clip, bundle, [0.3, 0.8, 0.6], event_id=event_id)
        await asyncio.to_thread(write_event_report, ev, bundle, report_dir_for(reports, "bed-01", event_id),
                                saliency=False)
        await page.wait_for(card("bed-01", "a.report") + " !== null", 60)  # next snapshot carries the link
        await page.screenshot(out / "dashboard-3-closed-event.png")
        href = await page.eval(card("bed-01", "a.report") + ".href")
        assert href.startswith(server.url + "reports/bed-01/")
        report_page = await br.new_page()
        await report_page.goto(href)
        await report_page.wait_for(IMAGES_LOADED, 30)
        assert event_id in await report_page.eval("document.body.textContent")
        await report_page.screenshot(out / "report-served-by-dashboard.png")


async def _next_result(probe, bed: str, timeout: float) -> ScoreResult:
    """The next window result of ``bed`` published after this call (older queued ones are skipped)."""
    while await asyncio.to_thread(probe.poll, 0):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in await asyncio.to_thread(probe.poll, 100):
            if isinstance(r, ScoreResult) and r.bed == bed:
                return r
            assert not isinstance(r, EventResult) or r.bed != bed
    raise AssertionError(f"no window result of {bed} within {timeout} s")


def test_report_opens_from_disk_in_a_real_browser(review_bundle, clip, tmp_path, browser_ok):
    out = artifacts_dir("report")
    ev = make_evidence(clip, review_bundle, [0.7, 0.9, None, 0.15, None, 0.75],
                       ["scored", "scored", "dropped", "scored", "failed", "scored"])
    index = write_event_report(ev, review_bundle, report_dir_for(tmp_path / "reports", ev.bed, ev.event_id))

    async def look():
        async with Chromium(width=1100, height=900) as br:
            page = await br.new_page()
            await page.goto(index.as_uri())
            await page.wait_for(IMAGES_LOADED, 30)
            n = await page.eval("document.images.length")
            sizes = await page.eval("Array.from(document.images).map(i => [i.id || i.className, i.naturalWidth])")
            text = await page.eval("document.body.innerText")
            await page.screenshot(out / "report.png")
            await page.dom(out / "report.html")
            return n, sizes, text

    n, sizes, text = run(look(), timeout=180)
    assert n == 4, sizes  # timeline, first frame, two montages with saliency
    assert "TLE — p(TLE) 0.625" in text and "research second opinion" in text and "not a diagnosis" in text
    assert "4 scored, 1 dropped, 1 failed" in text and "Model card" in text and ev.bundle_id in text
