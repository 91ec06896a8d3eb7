"""Scorer service on loopback with the real Scorer (Kinetics I3D + a seeded classifier).

Windows are 16 frames (hop 16) to keep CPU inference short; every published p(TLE) is checked against
the Scorer run directly on the same frames.
"""

from __future__ import annotations

import random
import resource
import threading
import time

import numpy as np
import pytest
import zmq
from bus_helpers import BACKEND, WINDOW, collect, free_port, make_config, subscribed, wait_for_scorer
from waiting import wait_until

from semiostream.bus.protocol import EventResult, ScoreResult, encode_frame
from semiostream.bus.publisher import Publisher, source_frames, synthetic_frames
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.security import ClientSecurity, new_keypair
from semiostream.bus.watch import ControlClient, ResultsSubscriber
from semiostream.dali_pipes.event_intensity import segment_window
from semiostream.engines.scorer import Scorer


@pytest.fixture(scope="module")
def bundle_dir(bus_bundle):
    return bus_bundle


@pytest.fixture(scope="module")
def direct_scorer(bundle_dir):
    with Scorer(bundle_dir, BACKEND) as s:
        yield s


_config, _collect, _port = make_config, collect, free_port


def test_end_to_end_real_file_and_synthetic_beds(bundle_dir, direct_scorer, get_asset):
    clip = get_asset("mmaction2_demo.mp4")
    real = np.stack(list(source_frames(str(clip))))[:48]  # 8-bit real video, as uint16 0..255
    synth = np.stack(list(synthetic_frames("FLE", seed=1, width=96, height=72, seconds=1.1, loop=False)))[:32]
    cfg = _config(bundle_dir)
    with ScorerRuntime(cfg).start():
        sub = ResultsSubscriber(cfg.endpoints.results)
        ctl = ControlClient(cfg.endpoints.control)
        assert ctl.request("ping")["ok"]
        pubs = {"cam-real": Publisher(cfg.endpoints.frames, "cam-real"),
                "cam-synth": Publisher(cfg.endpoints.frames, "cam-synth")}
        wait_for_scorer(*pubs.values())  # PUB/SUB: let the subscription reach the publishers
        assert ctl.event("start", "cam-synth")["ok"]
        threads = [threading.Thread(target=pubs["cam-real"].run, args=(real,)),
                   threading.Thread(target=pubs["cam-synth"].run, args=(synth,))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        scores = _collect(sub, lambda g: sum(isinstance(r, ScoreResult) for r in g) >= 5)
        stop = ctl.event("stop", "cam-synth")
        assert stop["ok"]
        events = _collect(sub, lambda g: any(isinstance(r, EventResult) for r in g), timeout=30)
        status = ctl.status()["status"]
        sub.close(), ctl.close()
        for p in pubs.values():
            p.close()
    scores = [r for r in scores if isinstance(r, ScoreResult)]
    by_bed = {b: sorted([r for r in scores if r.bed == b], key=lambda r: r.first_seq) for b in pubs}
    assert len(by_bed["cam-real"]) == 3 and len(by_bed["cam-synth"]) == 2
    sent = {"cam-real": real, "cam-synth": synth}
    for bed, results in by_bed.items():
        assert status["beds"][bed]["gaps"] == 0
        # one intensity window per stream (the bundle's intensity_scope "video"), fixed by its first window
        held = segment_window(sent[bed][:WINDOW], None, direct_scorer.spec)
        assert held is not None
        for r in results:
            assert r.last_seq - r.first_seq + 1 == WINDOW
            assert r.first_t_ns < r.last_t_ns and r.latency_ms > 0
            assert r.bundle_id == direct_scorer.bundle.bundle_id
            expect = float(direct_scorer.score_windows([sent[bed][r.first_seq:r.last_seq + 1]], None, [held])[0])
            assert r.p_tle == pytest.approx(expect, abs=1e-5)
            assert r.label == ("TLE" if expect >= 0.5 else "FLE")
        assert [r.first_seq for r in results] == [results[0].first_seq + WINDOW * i for i in range(len(results))]
    assert all(r.event_id is not None for r in by_bed["cam-synth"])
    assert all(r.event_id is None for r in by_bed["cam-real"])
    (event,) = [e for e in events if isinstance(e, EventResult)]
    assert event.bed == "cam-synth" and event.windows == 2
    assert event.p_tle == pytest.approx(np.mean([r.p_tle for r in by_bed["cam-synth"]]), abs=1e-6)


def _malformed(rng: random.Random) -> list[bytes]:
    good = encode_frame("bed-1", rng.randrange(10**6), time.time_ns(), np.zeros((6, 8), np.uint16))
    topic, header, payload = good[0], good[1], bytes(good[2])
    kind = rng.randrange(8)
    if kind == 0:  # wrong number of parts
        return [topic] + [rng.randbytes(rng.randrange(40)) for _ in range(rng.choice([0, 1, 3, 4]))]
    if kind == 1:  # random header bytes
        return [topic, rng.randbytes(rng.randrange(1, 200)), payload]
    if kind == 2:  # truncated payload
        return [topic, header, payload[: rng.randrange(len(payload))]]
    if kind == 3:  # huge header
        return [topic, b" " * 5000 + header, payload]
    if kind == 4:  # topic and bed disagree / random topic under ir/
        return [b"ir/" + rng.randbytes(rng.randrange(1, 20)), header, payload]
    if kind == 5:  # a valid JSON with a wrong field
        field = rng.choice([b'"v":1', b'"dtype":"<u2"', b'"h":6'])
        return [topic, header.replace(field, rng.choice([b'"v":9', b'"dtype":">u2"', b'"h":-1'])), payload]
    if kind == 6:  # JSON that is not an object
        return [topic, rng.choice([b"[]", b"1", b'"x"', b"null"]), payload]
    return [topic, header[: rng.randrange(1, len(header) - 1)], payload]  # cut JSON


def test_ten_thousand_malformed_messages_are_counted_and_survived(bundle_dir):
    cfg = _config(bundle_dir)
    rng = random.Random(0)
    ctx = zmq.Context.instance()
    with ScorerRuntime(cfg).start() as rt:
        pub = ctx.socket(zmq.XPUB)
        pub.sndhwm = 100_000
        pub.connect(cfg.endpoints.frames)
        subscribed(pub)
        sent = 0
        for _ in range(50):
            for _ in range(200):
                pub.send_multipart(_malformed(rng))
                sent += 1
            wait_until(lambda: _dropped(rt), until=lambda d, n=sent: d >= n, what=f"the scorer to count {sent} messages")
        total = _dropped(rt)
        ctl = ControlClient(cfg.endpoints.control)
        assert ctl.request("ping")["ok"]
        assert not ctl.request("bogus command")["ok"]
        reply = ctl.status()["status"]
        ctl.close()
        pub.close(0)
    assert sent == 10_000
    assert total == 10_000
    frame_reasons = {k: v for k, v in reply["dropped"].items() if not k.startswith("control_")}
    assert sum(frame_reasons.values()) == 10_000
    assert len(frame_reasons) >= 6  # counted per reason
    assert reply["dropped"]["control_request"] == 1  # the bogus command
    assert reply["beds"] == {}


def _dropped(rt: ScorerRuntime) -> int:
    return int(sum(s.value for m in rt.metrics.dropped.collect() for s in m.samples if s.name.endswith("_total")))


def test_unknown_publisher_never_reaches_a_window(bundle_dir, tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    allowed.mkdir()
    server_pub, server_sec = new_keypair(keys, "scorer")
    good_pub, good_sec = new_keypair(keys, "cam-good")
    _, evil_sec = new_keypair(keys, "cam-evil")
    (allowed / "cam-good.key").write_bytes(good_pub.read_bytes())
    cfg = _config(bundle_dir, security={"secret_key": server_sec, "cameras": allowed, "viewers": allowed,
                                        "operators": allowed})
    frames = np.stack(list(synthetic_frames("TLE", seed=2, width=64, height=48, seconds=0.7, loop=False)))[:20]
    with ScorerRuntime(cfg).start() as rt:
        good = Publisher(cfg.endpoints.frames, "bed-good", ClientSecurity(good_sec, server_pub))
        evil = Publisher(cfg.endpoints.frames, "bed-evil", ClientSecurity(evil_sec, server_pub))
        plain = Publisher(cfg.endpoints.frames, "bed-plain")
        sub = ResultsSubscriber(cfg.endpoints.results, ClientSecurity(good_sec, server_pub))
        wait_for_scorer(good)
        assert sub.wait_for_scorer(30) is None  # no slow-joiner loss of the one result
        for p in (good, evil, plain):
            p.run(frames, realtime=False)
        results = _collect(sub, lambda g: len(g) >= 1, timeout=60)
        ctl = ControlClient(cfg.endpoints.control, ClientSecurity(good_sec, server_pub))
        beds = ctl.status()["status"]["beds"]
        for s in (good, evil, plain, sub, ctl):
            s.close()
        assert rt.metrics.value("semiostream_frames_total", bed="bed-evil") == 0
    assert set(beds) == {"bed-good"}
    assert beds["bed-good"]["frames"] == 20
    assert {r.bed for r in results} == {"bed-good"}


def test_results_resume_after_scorer_restart(bundle_dir):
    cfg = _config(bundle_dir)
    stop = threading.Event()
    pub = Publisher(cfg.endpoints.frames, "bed-r", fps=30)
    frames = synthetic_frames("FLE", seed=3, width=64, height=48, seconds=2.0, loop=True)
    feeder = threading.Thread(target=pub.run, args=(frames,), kwargs={"stop": stop}, daemon=True)
    sub = ResultsSubscriber(cfg.endpoints.results)
    try:
        rt = ScorerRuntime(cfg).start()
        feeder.start()
        first = _collect(sub, lambda g: len(g) >= 1, timeout=60)
        rt.close()  # the scorer dies; the publisher keeps sending
        undelivered = pub.stats.undelivered
        wait_until(lambda: pub.stats.undelivered > undelivered + 5, what="frames sent while no scorer takes them")
        assert feeder.is_alive()
        rt2 = ScorerRuntime(cfg).start()
        try:
            second = _collect(sub, lambda g: len(g) >= 2, timeout=60)
        finally:
            rt2.close()
    finally:
        stop.set()
        feeder.join(5)
        pub.close(), sub.close()
    assert first and len(second) >= 2
    assert second[-1].last_seq > first[-1].last_seq


def test_slow_scorer_keeps_memory_bounded_and_counts_drops(bundle_dir):
    cfg = _config(bundle_dir, windows={"hop": 4, "max_inflight": 1}, queue_seconds=1.0)
    big = np.random.default_rng(0).integers(0, 4000, size=(8, 424, 512), dtype=np.uint16)  # Kinect-sized
    beds = ["s1", "s2", "s3"]
    with ScorerRuntime(cfg).start() as rt:
        pubs = [Publisher(cfg.endpoints.frames, b, fps=30, queue_seconds=1.0) for b in beds]
        wait_for_scorer(*pubs)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        n = 1500  # per bed: 3 x 1500 x 434 KB = 1.9 GB offered as fast as possible
        threads = [threading.Thread(target=p.run, args=((big[i % 8] for i in range(n)),),
                                    kwargs={"realtime": False}) for p in pubs]
        for t in threads:
            t.start()
        max_pending = 0
        for t in threads:  # sampled every 10 ms while the publishers run
            while t.is_alive():
                max_pending = max(max_pending, len(rt.service.pending))
                t.join(0.01)
        ctl = ControlClient(cfg.endpoints.control)
        status = wait_until(ctl.status, until=lambda s: s["status"]["pending_windows"] == 0)["status"]
        ctl.close()
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for p in pubs:
            p.close()
    grown_mb = (rss1 - rss0) / 1024
    assert grown_mb < 300, f"RSS grew by {grown_mb:.0f} MB"
    assert max_pending <= len(beds) * 1
    assert status["dropped"].get("backlog", 0) > 0  # windows the model had no time for, counted
    received = sum(b["frames"] for b in status["beds"].values())
    gaps = sum(b["gaps"] for b in status["beds"].values())
    assert received + gaps <= 3 * n and received > 0


def test_stale_bed_is_reported_then_forgotten_and_size_change_reinitialises(bundle_dir):
    cfg = _config(bundle_dir, windows={"hop": WINDOW, "stale_after_s": 0.6, "forget_after_s": 1.8})
    small = np.zeros((5, 48, 64), np.uint16)
    other = np.zeros((5, 24, 32), np.uint16)
    with ScorerRuntime(cfg).start() as rt:
        pub = Publisher(cfg.endpoints.frames, "bed-s")
        ctl = ControlClient(cfg.endpoints.control)
        wait_for_scorer(pub)
        bed = lambda: ctl.status()["status"]["beds"].get("bed-s", {})  # noqa: E731
        pub.run(small, realtime=False)
        assert wait_until(lambda: bed().get("frames") == 5)
        time.sleep(cfg.windows.restart_quiet_s + 0.2)  # kept: without CURVE a restart needs the stream to pause
        pub.run(other, realtime=False)  # same stream, new frame size
        st = wait_until(lambda: (lambda b: b if b.get("size") == [32, 24] and b["frames"] == 5 else None)(bed()))
        assert st and not st["stale"]
        assert rt.metrics.value("semiostream_stream_restarts_total", reason="frame_size") == 1
        assert wait_until(lambda: bed().get("stale"), timeout=10)
        assert rt.metrics.value("semiostream_bed_staleness_seconds", bed="bed-s") > 0.6
        assert wait_until(lambda: "bed-s" not in ctl.status()["status"]["beds"], timeout=10)
        pub.seq = 0  # a restarted camera starts its sequence again
        pub.run(small, realtime=False)
        assert wait_until(lambda: bed().get("frames") == 5)
        pub.close(), ctl.close()


def test_assigned_beds_only_and_metrics_endpoint(bundle_dir):
    import urllib.request

    port = _port()
    cfg = _config(bundle_dir, beds=[{"id": "bed-1"}], metrics_port=port)
    with ScorerRuntime(cfg).start():
        pubs = [Publisher(cfg.endpoints.frames, b) for b in ("bed-1", "bed-10", "bed-2")]
        ctl = ControlClient(cfg.endpoints.control)
        wait_for_scorer(pubs[0])  # the scorer subscribes to bed-1 only
        for p in pubs:
            p.run(np.zeros((4, 8, 8), np.uint16), realtime=False)
        assert wait_until(lambda: ctl.status()["status"]["beds"].get("bed-1", {}).get("frames") == 4)
        status = ctl.status()["status"]
        assert not ctl.event("start", "bed-2")["ok"]  # not this scorer's bed
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        for p in (*pubs, ctl):
            p.close()
    assert set(status["beds"]) == {"bed-1"}  # "bed-10" shares the prefix but is not assigned
    assert 'semiostream_frames_total{bed="bed-1"} 4.0' in text
    for name in ("semiostream_dropped_total", "semiostream_latency_seconds_bucket", "semiostream_batch_size_bucket",
                 "semiostream_beds_active"):
        assert name in text


def test_roi_detected_at_stream_start_with_the_real_detector(bundle_dir, direct_scorer, get_asset):
    real = np.stack(list(source_frames(str(get_asset("mmaction2_demo.mp4")))))[:WINDOW]
    # the clip shows people and no bed: the paper's rule would use the full frame, single-box crops
    cfg = _config(bundle_dir, detector={"kind": "yolox", "weights": get_asset("yolox_nano.onnx"),
                                        "crop_rule": "single-box"})
    with ScorerRuntime(cfg).start():
        sub = ResultsSubscriber(cfg.endpoints.results)
        ctl = ControlClient(cfg.endpoints.control)
        pub = Publisher(cfg.endpoints.frames, "bed-d")
        wait_for_scorer(pub)
        pub.run(real, realtime=False)
        (result,) = _collect(sub, lambda g: len(g) >= 1)
        bed = ctl.status()["status"]["beds"]["bed-d"]
        for c in (sub, ctl, pub):
            c.close()
    h, w = real.shape[1:]
    x0, y0, x1, y1 = bed["roi"]
    assert bed["roi_source"] == "detected"
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and (x1 - x0) * (y1 - y0) < w * h  # a real crop
    expect = float(direct_scorer.score_windows([real], [tuple(bed["roi"])])[0])
    assert result.p_tle == pytest.approx(expect, abs=1e-5)


def test_event_holds_its_own_intensity_window(bundle_dir, direct_scorer):
    """The bundle holds one intensity window per segment (intensity_scope "video"): a live event's windows
    use the window fixed by the event's first window, as training used the seizure's first frames."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 2000, size=(6 * WINDOW, 48, 64)).astype(np.uint16)
    frames = (base + (np.arange(6 * WINDOW) * 40)[:, None, None]).astype(np.uint16)  # getting brighter
    cfg = _config(bundle_dir)
    with ScorerRuntime(cfg).start():
        sub = ResultsSubscriber(cfg.endpoints.results)
        ctl = ControlClient(cfg.endpoints.control)
        pub = Publisher(cfg.endpoints.frames, "bed-i", fps=30, queue_seconds=4)  # its queue holds the 64 frames sent at once
        wait_for_scorer(pub)
        pub.run(frames[:2 * WINDOW], realtime=False)
        before = _collect(sub, lambda g: len(g) >= 2)
        assert ctl.event("start", "bed-i")["ok"]
        pub.run(frames[2 * WINDOW:], realtime=False)
        during = _collect(sub, lambda g: sum(r.event_id is not None for r in g) >= 4)
        for c in (sub, ctl, pub):
            c.close()
    stream_held = segment_window(frames[:WINDOW], None, direct_scorer.spec)
    event_held = segment_window(frames[2 * WINDOW:3 * WINDOW], None, direct_scorer.spec)
    assert event_held != stream_held
    for r in before + during:
        held = event_held if r.event_id else stream_held
        expect = float(direct_scorer.score_windows([frames[r.first_seq:r.last_seq + 1]], None, [held])[0])
        assert r.p_tle == pytest.approx(expect, abs=1e-5)
    assert sum(r.event_id is not None for r in during) == 4 and len(before + during) == 6
