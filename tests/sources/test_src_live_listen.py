"""Listen mode, for cameras that push: the source waits on an RTSP address and a real FFmpeg RTSP
client (PyAV's muxer, ANNOUNCE/RECORD, in a subprocess) pushes the real 8-bit H.264 clip to it in real
time. When the camera stops pushing, the source listens again (stopping when asked)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np

from semiostream.sources.cameras import open_live
from semiostream.sources.live import Backoff

PUSHER = """
import sys, time, av
clip, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
for attempt in range(100):  # the listener may not be up yet
    try:
        out = av.open(url, "w", format="rtsp", options={"rtsp_transport": "tcp"})
        break
    except av.error.FFmpegError:
        time.sleep(0.1)  # kept: a bounded retry in the child; the source listens once the test reads from it
else:
    sys.exit("cannot connect")
with av.open(clip) as inp:
    s_in = inp.streams.video[0]
    s_out = out.add_stream_from_template(s_in)
    t0 = time.monotonic()
    for p in inp.demux(s_in):
        if p.dts is None:
            continue
        t = float(p.pts * s_in.time_base)
        if t > seconds:
            break
        time.sleep(max(0.0, t0 + t - time.monotonic()))  # kept: a camera pushes in real time
        p.stream = s_out
        out.mux(p)
out.close()
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rtsp_listen_receives_a_pushing_camera(get_asset):
    clip = get_asset("mmaction2_demo.mp4")
    url = f"rtsp://127.0.0.1:{_port()}/bed"
    src = open_live(url, listen=True, backoff=Backoff(0.1, 0.5), read_timeout_s=2.0)
    src.open_timeout_s = 20.0
    assert src.ffmpeg_options()["rtsp_flags"] == "listen"
    pusher = subprocess.Popen([sys.executable, "-c", PUSHER, str(clip), url, "3"], stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    got = []
    frames = src.frames(stop)  # held open while the camera finishes pushing
    try:
        for frame in frames:
            got.append(frame)
            if len(got) == 40:
                break
    finally:
        pusher.wait(60)
        frames.close()
    assert pusher.returncode == 0, pusher.stderr.read()
    assert len(got) == 40 and got[0].image.shape == (256, 340) and got[0].image.dtype == np.uint16
    assert src.bit_depth == 8 and src.stats.connections == 1
    span = (got[-1].t_ns - got[0].t_ns) / 1e9
    assert 1.0 < span < 2.0  # 39 frame intervals at ~28 fps, from the stream's timestamps

    # the camera has stopped pushing: the source listens again (2 s per attempt) until asked to stop
    src.open_timeout_s = 2.0
    threading.Timer(3.0, stop.set).start()
    t0 = time.monotonic()
    assert list(src.frames(stop)) == []
    assert time.monotonic() - t0 < 10 and "no camera pushed a stream within 2 s" in src.stats.last_error
