"""Capture times and frame numbers of live sources (:class:`FrameClock`) and reconnection delays."""

from __future__ import annotations

import threading
import time

from semiostream.sources.cameras import live_scheme
from semiostream.sources.live import Backoff, FrameClock

S = 10**9
T0 = 1_800_000_000 * S


def test_stream_timestamps_are_anchored_to_the_wall_clock():
    c = FrameClock(fps=25)
    c.new_connection(25)
    assert c.stamp(1000.0, now_ns=T0) == (T0, 0, 0)
    t, i, missed = c.stamp(1000.04, now_ns=T0 + 90_000_000)  # decoded late: the stream's time wins
    assert (t, i, missed) == (T0 + 40_000_000, 1, 0)
    t, i, missed = c.stamp(1000.16, now_ns=T0 + 200_000_000)  # two frames missing from the stream
    assert (t, i, missed) == (T0 + 160_000_000, 4, 2)


def test_a_reconnect_leaves_a_gap_of_the_frames_missed():
    c = FrameClock(fps=30)
    c.new_connection(30)
    for k in range(10):
        c.stamp(k / 30, now_ns=T0 + k * S // 30)
    c.new_connection(30)  # the stream's clock starts again; 3 s of frames were lost
    t, i, missed = c.stamp(0.0, now_ns=T0 + 9 * S // 30 + 3 * S)
    assert missed == 89 and i == 9 + 1 + 89 and t == T0 + 9 * S // 30 + 3 * S


def test_untrusted_timestamps_fall_back_to_the_wall_clock():
    c = FrameClock(fps=30)
    c.new_connection(30)
    c.stamp(5.0, now_ns=T0)
    t, i, _ = c.stamp(5000.0, now_ns=T0 + S // 30)  # a jump of 80 minutes: re-anchored
    assert t == T0 + S // 30 and c.resyncs == 1 and i == 1
    t, _, missed = c.stamp(None, now_ns=T0 + S // 30 + 5 * S // 30)  # no timestamp: wall clock, no invented gap
    assert t == T0 + S // 30 + 5 * S // 30 and missed == 0
    t2, _, _ = c.stamp(None, now_ns=T0)  # capture times never go backwards
    assert t2 == t + 1


def test_backoff_doubles_up_to_its_limit_and_stops_early():
    b = Backoff(0.01, 0.04)
    delays = []
    for _ in range(4):
        delays.append(b.next_s)
        b.wait(None)
    assert delays == [0.01, 0.02, 0.04, 0.04]
    b.reset()
    assert b.next_s == 0.01
    stop = threading.Event()
    stop.set()
    t0 = time.monotonic()
    assert Backoff(5.0, 5.0).wait(stop) is True and time.monotonic() - t0 < 1


def test_live_schemes():
    assert live_scheme("rtsp://cam/s") == "rtsp" and live_scheme("GENICAM://Fake_1") == "genicam"
    assert live_scheme("/data/bed.mkv") is None and live_scheme("ftp://x/y") is None
