"""Helpers of the bus tests: free loopback endpoints, a config builder, result collection."""

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




def wait_until(condition, timeout: float = 60.0, every: float = 0.05):
    """Poll ``condition()`` until it returns a truthy value (returned) or ``timeout`` s pass (returns the
    last value): tests wait for what they need rather than sleeping a guessed time."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def wait_for_scorer(*publishers, timeout: float = 60.0) -> None:
    """Block until the scorer subscribed to every publisher's bed (no slow-joiner losses afterwards)."""
    for p in publishers:
        problem = p.wait_for_scorer(timeout)
        assert problem is None, problem
