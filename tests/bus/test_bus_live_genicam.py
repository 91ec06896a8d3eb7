"""A 16-bit GenICam camera scored live: Aravis' simulated camera (``genicam://Fake_1``, Mono16 512x512)
published to a real scorer, whose windows come back with p(TLE). Needs the ``genicam`` extra."""

from __future__ import annotations

import threading

import pytest
from bus_helpers import make_config
from waiting import wait_until

from semiostream.bus.protocol import ScoreResult
from semiostream.bus.publisher import Publisher
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.watch import ControlClient, ResultsSubscriber
from semiostream.models.bundle import check_bundle
from semiostream.sources.cameras import open_live
from semiostream.sources.live_aravis import load_aravis
from semiostream.sources.source import SourceError

try:
    load_aravis()
except SourceError as e:
    pytest.skip(f"Aravis is not installed: {e}", allow_module_level=True)


def test_fake_genicam_camera_is_scored(bus_bundle):
    cfg = make_config(bus_bundle, beds=[{"id": "bed-gige", "size": [512, 512]}])
    stop = threading.Event()
    with ScorerRuntime(cfg, warmup=False).start():
        sub = ResultsSubscriber(cfg.endpoints.results)
        ctl = ControlClient(cfg.endpoints.control)
        pub = Publisher(cfg.endpoints.frames, "bed-gige", fps=15)
        assert pub.wait_for_scorer(10) is None and sub.wait_for_scorer(10) is None
        source = open_live("genicam://Fake_1", fps=15)
        t = threading.Thread(target=pub.run_live, args=(source,), kwargs={"stop": stop, "seconds": 120},
                             daemon=True)
        t.start()
        try:
            scores: list[ScoreResult] = []
            while len(scores) < 2 and t.is_alive():
                scores += [r for r in sub.poll(200) if isinstance(r, ScoreResult)]
            bed = wait_until(lambda: ctl.status()["status"]["beds"]["bed-gige"], 60,
                             until=lambda b: b["frames"] >= 32, what="32 camera frames taken by the scorer")
        finally:
            stop.set()
            t.join(30)
            pub.close()
            sub.close()
            ctl.close()
    assert len(scores) >= 2 and all(0 <= r.p_tle <= 1 and r.bed == "bed-gige" for r in scores)
    assert bed["size"] == [512, 512] and bed["frames"] >= 32
    # windows are defined in time: 16 frames at the bundle's 30 fps span 0.5 s of the 15 fps camera (about 8 of its
    # frames, resampled); the simulated camera stamps frames with the host clock, so a late frame on a busy machine
    # can shift a window's first or last frame by a camera period or two
    _, spec = check_bundle(bus_bundle)
    span = (spec.window - 1) / spec.fps
    assert all(abs((r.last_t_ns - r.first_t_ns) / 1e9 - span) <= 3 / 15 for r in scores)
    assert bed["camera_fps"] == pytest.approx(15, rel=0.2) and bed["fps_used"] == spec.fps
    assert source.bit_depth == 16 and source.stats.connections == 1
