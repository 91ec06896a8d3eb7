"""A live RTSP camera on loopback: a real RTSP server (GStreamer's gst-rtsp-server, run by this file as
``python test_bus_live_rtsp.py serve``) streams the real 8-bit H.264 clip; ``semiostream publish rtsp://...``
(a real subprocess) sends it to a real scorer. The server is killed mid-stream and started again: scoring
resumes without restarting ``publish``, and the scorer counts the outage as a sequence gap, not a restart.
Also: camera logins from a file (never in logs or messages), and the login/path errors retrying cannot fix.

Needs the Debian packages gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good and -bad, and PyGObject
(`.ci/run` installs them); skipped with the reason when they are missing.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:  # the RTSP server process (no test imports)
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    _port, _clip = sys.argv[2], sys.argv[3]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(_port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( filesrc location={_clip} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 "
                       "config-interval=1 )")
    login = os.environ.get("RTSP_TEST_LOGIN")
    if login:  # basic authentication, `user:password`
        user, _, password = login.partition(":")
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/bed", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{_port}")
    print("ready", flush=True)
    GLib.MainLoop().run()
    sys.exit(0)

import pytest  # noqa: E402
from bus_helpers import free_port, make_config  # noqa: E402

from semiostream.bus.protocol import ScoreResult  # noqa: E402
from semiostream.bus.runtime import ScorerRuntime  # noqa: E402
from semiostream.bus.watch import ControlClient, ResultsSubscriber  # noqa: E402
from semiostream.sources.cameras import open_live  # noqa: E402
from semiostream.sources.live import Backoff  # noqa: E402
from semiostream.sources.live_urls import load_credentials  # noqa: E402
from semiostream.sources.source import SourceError  # noqa: E402

_PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
          "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
          "missing = [e for e in ('filesrc', 'qtdemux', 'h264parse', 'rtph264pay') if not Gst.ElementFactory.find(e)]; "
          "print(' '.join(missing))")


@cache
def rtsp_python() -> tuple[str | None, str]:
    """A Python that can run gst-rtsp-server with the elements the clip needs, or None and why not."""
    why = "no Python with PyGObject and gst-rtsp-server"
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        if not Path(python).exists():
            continue
        try:
            r = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            continue
        if r.returncode == 0 and not r.stdout.strip():
            return python, ""
        why = (f"GStreamer elements missing: {r.stdout.strip()}" if r.returncode == 0
               else r.stderr.strip().splitlines()[-1] if r.stderr.strip() else why)
    return None, (f"{why} (apt-get install gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good "
                  "gstreamer1.0-plugins-bad python3-gi)")


class RtspServer:
    """gst-rtsp-server on 127.0.0.1:``port`` serving ``clip`` at ``rtsp://127.0.0.1:PORT/bed``."""

    def __init__(self, clip: Path, port: int, login: str | None = None) -> None:
        python, why = rtsp_python()
        if python is None:
            pytest.skip(why)
        self.python, self.clip, self.port, self.login = python, clip, port, login
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/bed"

    def start(self, timeout_s: float = 30.0) -> RtspServer:
        env = dict(os.environ)
        if self.login:
            env["RTSP_TEST_LOGIN"] = self.login
        self.proc = subprocess.Popen([self.python, __file__, "serve", str(self.port), str(self.clip)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self.kill()
            raise RuntimeError(f"the RTSP test server did not start: {line!r}")
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            for f in (self.proc.stdout, self.proc.stderr):
                f.close()
            self.proc = None


@pytest.fixture
def clip(get_asset, tmp_path) -> Path:
    """The real clip (8-bit H.264, 340x256, ~28 fps, 10 s) repeated 6 times (one minute) by remuxing its
    packets, so the server is killed mid-stream rather than between two plays."""
    import av

    src = get_asset("mmaction2_demo.mp4")
    out_path = tmp_path / "clip-x6.mp4"
    with av.open(str(src)) as inp:
        pts = sorted(p.pts for p in inp.demux(inp.streams.video[0]) if p.pts is not None)
    span = pts[-1] - pts[0] + (pts[-1] - pts[0]) // (len(pts) - 1)
    with av.open(str(out_path), "w") as out:
        s_out = None
        for rep in range(6):  # a muxed packet is consumed: demux again for every repetition
            with av.open(str(src)) as inp:
                s_in = inp.streams.video[0]
                s_out = s_out or out.add_stream_from_template(s_in)
                for p in inp.demux(s_in):
                    if p.dts is None:
                        continue
                    p.pts += rep * span
                    p.dts += rep * span
                    p.stream = s_out
                    out.mux(p)
    return out_path


def _restarts(rt: ScorerRuntime) -> float:
    return sum(s.value for m in rt.metrics.restarts.collect() for s in m.samples if s.name.endswith("_total"))


def _scores_after(sub: ResultsSubscriber, min_first_seq: int, n: int, timeout_s: float) -> tuple[list, float]:
    """``n`` windows of bed cam-rtsp starting after ``min_first_seq``, and when the first arrived."""
    got: list[ScoreResult] = []
    first_at = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(got) < n:
        for r in sub.poll(100):
            if isinstance(r, ScoreResult) and r.bed == "cam-rtsp" and r.first_seq > min_first_seq:
                got.append(r)
                first_at = first_at or time.monotonic()
    return got, (first_at or float("nan"))


@pytest.mark.slow
def test_rtsp_camera_is_scored_and_scoring_resumes_after_the_server_restarts(bus_bundle, clip):
    server = RtspServer(clip, free_port()).start()
    cfg = make_config(bus_bundle)
    pub = None
    try:
        with ScorerRuntime(cfg).start() as rt:
            sub = ResultsSubscriber(cfg.endpoints.results)
            ctl = ControlClient(cfg.endpoints.control)
            assert sub.wait_for_scorer(10) is None
            t_publish = time.monotonic()
            pub = subprocess.Popen(
                [sys.executable, "-m", "semiostream.cli", "publish", server.url, "--bed", "cam-rtsp",
                 "--endpoint", cfg.endpoints.frames, "--seconds", "240"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            before, t_first = _scores_after(sub, -1, 2, timeout_s=120)
            assert len(before) >= 2, "no window of the RTSP stream was scored"
            bed_before = ctl.status()["status"]["beds"]["cam-rtsp"]

            server.kill()  # mid-stream: the clip plays for a minute
            t_kill = time.monotonic()
            time.sleep(4.0)  # kept: the outage under test (the publisher must notice it and reconnect)
            bed_down = ctl.status()["status"]["beds"]["cam-rtsp"]
            server.start()
            t_back = time.monotonic()
            after, t_resumed = _scores_after(sub, bed_down["last_seq"], 2, timeout_s=120)
            bed_after = ctl.status()["status"]["beds"]["cam-rtsp"]
            restarts = _restarts(rt)
            sub.close()
            ctl.close()
        pub.send_signal(signal.SIGINT)
        out, _ = pub.communicate(timeout=60)
    finally:
        if pub is not None and pub.poll() is None:
            pub.kill()
            pub.communicate()
        server.kill()

    assert len(after) >= 2, f"scoring did not resume after the RTSP server came back:\n{out}"
    assert pub.returncode == 0, out
    assert "Traceback" not in out
    assert all(0.0 <= r.p_tle <= 1.0 for r in before + after)
    # one stream throughout: no restart, its frames keep counting, the outage is a sequence gap
    assert restarts == 0
    assert bed_after["frames"] > bed_down["frames"] >= bed_before["frames"]
    lost = bed_after["gaps"] - bed_down["gaps"]
    outage_s = t_back - t_kill
    assert 0.5 * outage_s * 28 <= lost <= 3 * (outage_s + 10) * 28, (lost, outage_s)
    assert "1 reconnection(s)" in out and "streaming again after" in out, out
    reconnected = next(line for line in out.splitlines() if "streaming again after" in line)
    figures = {"first_window_s": round(t_first - t_publish, 2), "resumed_after_restart_s": round(t_resumed - t_back, 2),
               "server_down_s": round(outage_s, 2), "frames_lost_counted_by_scorer": lost,
               "windows_before": bed_before["windows_scored"], "publisher_said": reconnected.split(": ", 1)[-1]}
    print("rtsp live figures:", json.dumps(figures))


def test_camera_login_from_a_file_never_appears_in_messages(clip, tmp_path, caplog):
    password = "p@ss:w/rd%1"
    server = RtspServer(clip, free_port(), login=f"nurse-cam:{password}").start()
    try:
        good = tmp_path / "cam.login"
        good.write_text(f"nurse-cam:{password}\n")
        good.chmod(0o600)
        src = open_live(server.url, credentials=load_credentials(file=good))
        frames = src.frames()
        first = next(frames)
        frames.close()
        assert first.image.shape == (256, 340) and src.bit_depth == 8 and 27 <= src.fps <= 31
        assert abs(first.t_ns - time.time_ns()) < 5e9

        bad = tmp_path / "wrong.login"
        bad.write_text("nurse-cam:not-it-" + password)
        bad.chmod(0o600)
        with caplog.at_level(logging.DEBUG), pytest.raises(SourceError, match="401 Unauthorized") as e:
            next(open_live(server.url, credentials=load_credentials(file=bad)).frames())
        assert password not in str(e.value) and password not in caplog.text
        with pytest.raises(SourceError, match="404 Not Found"):
            next(open_live(server.url.replace("/bed", "/nope"), credentials=load_credentials(file=good)).frames())
    finally:
        server.kill()


def test_publish_refuses_a_login_on_the_command_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "semiostream.cli", "publish", "rtsp://admin:hunter2@127.0.0.1:1/s",
                        "--bed", "b1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "hunter2" not in r.stderr + r.stdout and "--credentials-file" in r.stderr
    assert "rtsp://***@127.0.0.1:1/s" in r.stderr


def test_a_stalled_server_is_reconnected_with_backoff(tmp_path):
    """A TCP listener that never answers RTSP: the source gives up each attempt after its timeout and keeps
    trying with growing delays, and stops when asked."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    src = open_live(f"rtsp://127.0.0.1:{port}/bed", backoff=Backoff(0.1, 0.4))
    src.open_timeout_s = 1.0
    stop = threading.Event()
    threading.Timer(4.0, stop.set).start()
    t0 = time.monotonic()
    try:
        assert list(src.frames(stop)) == []
    finally:
        listener.close()
    assert time.monotonic() - t0 < 10
    assert src.stats.connections == 0 and "did not start within 1 s" in (src.stats.last_error or "")
