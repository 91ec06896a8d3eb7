"""Helpers of the bus tests: free loopback endpoints, a config builder, result collection, the scorer's memory."""

from __future__ import annotations

import socket
import time

from semiostream.bus.config import ServiceConfig

WINDOW = 16
BACKEND = "torch-cpu-fp32"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_endpoints() -> dict:
    return {k: f"tcp://127.0.0.1:{free_port()}" for k in ("frames", "results", "control")}


def make_config(bundle_dir, **over) -> ServiceConfig:
    d = {"bundle": bundle_dir, "backend": BACKEND, "endpoints": free_endpoints(), "store": {"path": None},
         "windows": {"hop": WINDOW, "max_inflight": 8}, "batching": {"max_batch": 4, "max_wait_ms": 30}}
    d.update(over)
    return ServiceConfig.model_validate(d)


def collect(sub, until, timeout: float = 90.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(got):
        got.extend(sub.poll(100))
    return got


def wait_for_scorer(*publishers, timeout: float = 60.0) -> None:
    """Block until the scorer subscribed to every publisher's bed (no slow-joiner losses afterwards)."""
    for p in publishers:
        problem = p.wait_for_scorer(timeout)
        assert problem is None, problem


def subscribed(sock, timeout: float = 30.0) -> bytes:
    """Wait until the scorer's subscription reaches ``sock`` (a raw ``zmq.XPUB`` standing in for a PUB):
    frames sent before it would be dropped by the socket (slow joiner). Returns the subscription."""
    assert sock.poll(int(timeout * 1000)), f"no scorer subscribed within {timeout:g} s"
    return sock.recv()


def rss_mb() -> float:
    """Resident memory of this process (the scorer's, in these tests), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb_while(proc, every: float = 0.05) -> float:
    """This process's peak RSS (MB), sampled every ``every`` s until the subprocess ``proc`` ends."""
    import subprocess

    peak = rss_mb()
    while True:
        try:
            proc.wait(every)
            return max(peak, rss_mb())
        except subprocess.TimeoutExpired:
            peak = max(peak, rss_mb())
