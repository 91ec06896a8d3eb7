"""Memory of a results socket under a subscription flood: a bare XPUB (the baseline) vs the scorer's own.

One XSUB on loopback (another process) sends ``--subscriptions`` distinct subscriptions of ``--size`` bytes
(each with its own random tail, so each one is a new branch of libzmq's subscription trie) to:

* ``baseline``: an XPUB with ``XPUB_MANUAL`` and ``MAXMSGSIZE`` 1024, read and granted as fast as possible
  (the results socket before it was bounded);
* ``scorer``: the scorer's results socket as :func:`semiostream.bus.endpoints.bind_sockets` makes it,
  served by the same calls the service makes each turn (socket monitors, then ``grant_subscriptions``).

Each variant runs in a fresh process; reported: that process's RSS growth (peak and after the flood, MB),
subscriptions read by the application, connections cut for ``subscription_flood`` and disconnects.

    python -m semiostream.bench.subscription_flood --subscriptions 20000 --size 1024 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

_FLOODER = """
import random, sys, time, zmq
endpoint, n, size, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = zmq.Context().socket(zmq.XSUB)
s.linger = 0
s.sndhwm = 0
s.connect(endpoint)
rng = random.Random(size)
for i in range(n):
    s.send(b"\\x01" + f"score/{i:06d}-".encode() + rng.randbytes(max(1, size - 14)))
time.sleep(seconds)
"""


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _serve(variant: str, n: int, size: int, seconds: float) -> dict:
    import zmq

    from semiostream.bus.bounds import Bounds
    from semiostream.bus.config import ServiceConfig
    from semiostream.bus.endpoints import bind_sockets
    from semiostream.bus.metrics import BusMetrics
    from semiostream.bus.refusals import Refusals

    from .latency import free_endpoints

    endpoints = free_endpoints()
    sockets = refuse = None
    if variant == "baseline":
        ctx = zmq.Context()
        xpub = ctx.socket(zmq.XPUB)
        xpub.linger = 0
        xpub.setsockopt(zmq.XPUB_MANUAL, 1)
        xpub.setsockopt(zmq.MAXMSGSIZE, 1024)
        xpub.bind(endpoints["results"])
    else:
        cfg = ServiceConfig.model_validate({"bundle": "unused", "endpoints": endpoints, "store": {"path": None}})
        refuse = Refusals(BusMetrics().dropped)
        sockets = bind_sockets(cfg, Bounds.derive(cfg.limits, 1), refuse, None)
        xpub = sockets.results
    poller = zmq.Poller()
    poller.register(xpub, zmq.POLLIN)
    for mon in (sockets.monitors if sockets else ()):
        poller.register(mon, zmq.POLLIN)
    rss0 = peak = _rss_mb()
    proc = subprocess.Popen([sys.executable, "-c", _FLOODER, endpoints["results"], str(n), str(size), str(seconds)])
    read = 0
    t_end = time.monotonic() + seconds + 30
    while proc.poll() is None and time.monotonic() < t_end:
        events = dict(poller.poll(5))
        if sockets is not None:
            sockets.poll_monitors(refuse, events)
            if xpub in events:
                sockets.grant_subscriptions(refuse)
        elif xpub in events:
            for _ in range(256):
                try:
                    xpub.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                read += 1
                xpub.setsockopt(zmq.SUBSCRIBE, b"")
        peak = max(peak, _rss_mb())
    proc.kill()
    proc.wait()
    out = {"variant": variant, "subscriptions": n, "size": size, "rss_growth_peak_mb": round(peak - rss0, 1),
           "rss_growth_end_mb": round(_rss_mb() - rss0, 1)}
    if sockets is not None:
        out.update(cut=refuse.counts().get("subscription_flood", 0), disconnects=dict(sockets.disconnects))
        sockets.close()
    else:
        out["subscriptions_read"] = read
        xpub.close(0)
        ctx.term()
    return out


def run(n: int, sizes: list[int], seconds: float = 8.0) -> list[dict]:
    """Every (variant, size), each in a fresh process; returns their results."""
    rows = []
    for size in sizes:
        for variant in ("baseline", "scorer"):
            res = subprocess.run([sys.executable, "-m", "semiostream.bench.subscription_flood", "--one", variant,
                                  "--subscriptions", str(n), "--size", str(size), "--seconds", str(seconds)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.subscription_flood",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--subscriptions", type=int, default=20_000)
    ap.add_argument("--size", type=int, nargs="+", default=[1024, 64], help="bytes per subscription")
    ap.add_argument("--seconds", type=float, default=8.0, help="how long the flooder stays connected")
    ap.add_argument("--one", choices=("baseline", "scorer"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(_serve(args.one, args.subscriptions, args.size[0], args.seconds)))
        return 0
    rows = run(args.subscriptions, args.size, args.seconds)
    print(json.dumps({"command": "python -m semiostream.bench.subscription_flood " + " ".join(argv or sys.argv[1:]),
                      "loadavg": list(os.getloadavg()), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
