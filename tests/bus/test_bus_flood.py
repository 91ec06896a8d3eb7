"""Subscription floods on the results endpoint and oversized frames, against a real scorer on loopback.

libzmq stores every subscription a peer sends before the scorer reads it (one trie node per byte): 20,000
distinct 1 KB subscriptions grew a scorer by ~0.9-1.5 GB before the results endpoint bounded each
subscription's size (MAXMSGSIZE) and each connection's bytes (:mod:`semiostream.bus.peers`). Each test
would fail on that scorer (growth far over 50 MB, nothing counted). The flooders run in another process so
that only the scorer's memory is measured.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import zmq
from bus_helpers import make_config, peak_rss_mb_while, rss_mb, subscribed, wait_for_scorer
from waiting import wait_until

from semiostream.bus.protocol import ScoreResult, encode_frame
from semiostream.bus.publisher import Publisher
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.security import ClientSecurity, new_keypair
from semiostream.bus.watch import ControlClient, ResultsSubscriber

FRAME = np.random.default_rng(1).integers(0, 4000, size=(48, 64), dtype=np.uint16)
SUBSCRIPTIONS = 20_000

_FLOODER = """
import random, sys, time, zmq
from pathlib import Path
from semiostream.bus.security import ClientSecurity
endpoint, n, size, secret, server = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = zmq.Context()
s = ctx.socket(zmq.XSUB)
s.linger = 0
s.sndhwm = 0
if secret:
    ClientSecurity(Path(secret), Path(server)).apply(s)
s.connect(endpoint)
rng = random.Random(size)
for i in range(n):  # distinct subscriptions: each one a new branch of libzmq's trie
    s.send(b"\\x01" + f"score/{i:06d}-".encode() + rng.randbytes(size - 14))
# Kept: the flood lasts this long (the measured interval): the flooder stays connected, and its XSUB sends
# every subscription again on each reconnection; a scorer that does not cut it grows all along.
time.sleep(float(sys.argv[6]))
"""


def _flood(endpoint: str, size: int, keys: tuple = ("", ""), seconds: float = 8.0) -> float:
    """Run one flooder for ``seconds``; returns the scorer's (this process's) peak RSS growth in MB."""
    rss0 = rss_mb()
    proc = subprocess.Popen([sys.executable, "-c", _FLOODER, endpoint, str(SUBSCRIPTIONS), str(size),
                             str(keys[0]), str(keys[1]), str(seconds)])
    peak = peak_rss_mb_while(proc)
    assert proc.returncode == 0
    return peak - rss0


def _still_scored(results_endpoint: str, frames_endpoint: str, security=None, camera=None) -> int:
    sub = ResultsSubscriber(results_endpoint, security)
    pub = Publisher(frames_endpoint, "flood-bed", camera)
    wait_for_scorer(pub)
    assert sub.wait_for_scorer(30) is None
    got: list = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not got:
        pub.run([FRAME] * 16, realtime=False)
        got = [r for r in sub.poll(500) if isinstance(r, ScoreResult) and r.bed == "flood-bed"]
    sub.close(), pub.close()
    return len(got)


def _status(endpoint: str, security=None) -> dict:
    ctl = ControlClient(endpoint, security)
    st = ctl.status()["status"]
    ctl.close()
    return st


def _idle(endpoint: str, security=None) -> None:
    """Wait until no window is being scored (inference allocations would blur the measurement)."""
    ctl = ControlClient(endpoint, security)
    assert wait_until(lambda: ctl.status()["status"]["pending_windows"] == 0, timeout=120)
    ctl.close()


def test_subscription_floods_are_bounded_and_counted(bus_bundle):
    cfg = make_config(bus_bundle)
    ep = cfg.endpoints
    with ScorerRuntime(cfg).start() as rt:  # warmed up: the first window's compile is not in a deadline
        assert _still_scored(ep.results, ep.frames) >= 1  # everything allocated once before measuring
        _idle(ep.control)
        big = _flood(ep.results, 1024)  # over MAXMSGSIZE: libzmq disconnects at the first one
        small = _flood(ep.results, 64)  # each one valid in size: the per-connection byte budget cuts it
        st = _status(ep.control)
        after = _still_scored(ep.results, ep.frames)
        assert rt.metrics.value("semiostream_dropped_total", reason="subscription_flood") >= 1
    print(f"\nplaintext flood of {SUBSCRIPTIONS} subscriptions: 1 KB each +{big:.1f} MB, 64 B each +{small:.1f} MB; "
          f"refused {st['dropped']}, disconnects {st['disconnects']}")
    assert big < 50 and small < 50
    assert st["dropped"]["subscription_flood"] >= 1 and st["disconnects"]["results"] >= 2
    assert after >= 1  # a good viewer is still served


def test_an_allow_listed_viewer_key_cannot_flood_with_curve(bus_bundle, tmp_path):
    folders = {r: tmp_path / r for r in ("cameras", "viewers", "operators")}
    for f in folders.values():
        f.mkdir()
    made = {n: new_keypair(tmp_path / "keys", n) for n in ("scorer", "cam", "nurse", "op")}
    for name, folder in (("cam", "cameras"), ("nurse", "viewers"), ("op", "operators")):
        (folders[folder] / f"{name}.key").write_bytes(made[name][0].read_bytes())
    client = {n: ClientSecurity(made[n][1], made["scorer"][0]) for n in ("cam", "nurse", "op")}
    cfg = make_config(bus_bundle, security={"secret_key": made["scorer"][1], **folders})
    ep = cfg.endpoints
    keys = (made["nurse"][1], made["scorer"][0])
    with ScorerRuntime(cfg).start():
        assert _still_scored(ep.results, ep.frames, client["nurse"], client["cam"]) >= 1
        _idle(ep.control, client["op"])
        big = _flood(ep.results, 1024, keys)
        small = _flood(ep.results, 64, keys)
        st = _status(ep.control, client["op"])
        after = _still_scored(ep.results, ep.frames, client["nurse"], client["cam"])
    print(f"\nCURVE flood (allow-listed viewer): 1 KB each +{big:.1f} MB, 64 B each +{small:.1f} MB; "
          f"refused {st['dropped']}, disconnects {st['disconnects']}")
    assert big < 50 and small < 50
    assert st["dropped"]["subscription_flood"] >= 1 and st["disconnects"]["results"] >= 2
    assert after >= 1


def test_an_oversized_frame_disconnects_its_camera_and_is_counted(bus_bundle):
    cfg = make_config(bus_bundle, beds=[{"id": "small", "size": [64, 48]}])
    ep = cfg.endpoints
    with ScorerRuntime(cfg, warmup=False).start() as rt:
        pub = Publisher(ep.frames, "small")
        wait_for_scorer(pub)
        pub.run([FRAME] * 3, realtime=False)
        ctl = ControlClient(ep.control)
        assert wait_until(lambda: ctl.status()["status"]["beds"].get("small", {}).get("frames") == 3)
        before = ctl.status()["status"]["disconnects"].get("frames", 0)
        ctx = zmq.Context.instance()
        rogue = ctx.socket(zmq.XPUB)  # 4 MB: over MAXMSGSIZE (the largest configured frame)
        rogue.linger = 1000
        rogue.connect(ep.frames)
        subscribed(rogue)
        rogue.send_multipart(encode_frame("small", 3, time.time_ns(), np.zeros((1024, 2048), np.uint16)))
        st = wait_until(lambda: (lambda s: s if s["disconnects"].get("frames", 0) > before else None)(
            ctl.status()["status"]), timeout=30)
        rogue.close()
        ctl.close(), pub.close()
        assert rt.metrics.value("semiostream_disconnects_total", endpoint="frames") >= before + 1
    assert st and st["disconnects"]["frames"] == before + 1
    assert st["beds"]["small"]["frames"] == 3  # the oversized frame never reached the bed


@pytest.mark.parametrize("sent", [100, 20_000])
def test_peer_guard_cuts_only_the_connection_over_budget(sent):
    import socket

    from semiostream.bus.peers import PeerGuard, tcp_bytes_received

    refused = []
    guard = PeerGuard("results", lambda reason, detail: refused.append(reason), per_peer=16 * 1024)
    srv = socket.create_server(("127.0.0.1", 0))
    quiet, loud = socket.create_connection(srv.getsockname()), socket.create_connection(srv.getsockname())
    a_quiet, a_loud = srv.accept()[0], srv.accept()[0]
    guard.accepted(a_quiet.fileno())
    guard.accepted(a_loud.fileno())
    quiet.sendall(b"q" * 50)
    loud.sendall(b"x" * sent)
    wait_until(lambda: tcp_bytes_received(a_quiet) >= 50 and tcp_bytes_received(a_loud) >= sent,
               what="the kernel to receive what both clients sent")
    cut = guard.scan()
    quiet.settimeout(0.5)
    loud.settimeout(0.5)
    first_quiet = a_quiet.recv(1)

    def ended(client) -> bool:  # the client reads end-of-stream once the guard shut the connection down
        try:
            return client.recv(1) == b""
        except (TimeoutError, OSError):
            return False

    tracked = set(guard.peers)
    quiet_fd = a_quiet.fileno()
    loud_ended, quiet_ended = ended(loud), ended(quiet)
    for s in (quiet, loud, a_quiet, a_loud, srv):
        s.close()
    assert first_quiet == b"q" and tracked >= {quiet_fd} and not quiet_ended
    assert loud_ended == (sent > 16 * 1024)
    if sent > 16 * 1024:
        assert cut == 1 and refused == ["subscription_flood"] and len(tracked) == 1
    else:
        assert cut == 0 and refused == [] and len(tracked) == 2
