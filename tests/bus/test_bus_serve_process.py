"""`semiostream serve` as a real process: user errors come first and in one line, and a kill -9 in the
middle of an event loses nothing (the results database restores the event)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from bus_helpers import WINDOW, collect, free_endpoints

from semiostream.bus.protocol import EventResult, ScoreResult
from semiostream.bus.publisher import Publisher
from semiostream.bus.store import ResultStore
from semiostream.bus.watch import ControlClient, ResultsSubscriber

FRAME = np.random.default_rng(1).integers(0, 4000, size=(48, 64), dtype=np.uint16)


def _write_config(tmp_path: Path, bundle: Path, **over) -> tuple[Path, dict]:
    cfg = {"bundle": str(bundle), "backend": "torch-cpu-fp32", "endpoints": free_endpoints(),
           "windows": {"hop": WINDOW}, "batching": {"max_batch": 1, "max_wait_ms": 10},
           "store": {"path": str(tmp_path / "results.sqlite")}}
    cfg.update(over)
    tmp_path.mkdir(exist_ok=True)
    p = tmp_path / "scorer.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p, cfg


def _serve(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "semiostream.cli", "serve", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _run_error(args: list[str], timeout: float = 60) -> tuple[int, str, float]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "semiostream.cli", *args], capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr, time.monotonic() - t0


def _one_line_error(out: str, expect: str) -> None:
    """One error message (a config error lists each bad field on its own line), no traceback."""
    assert "Traceback" not in out, out
    assert out.strip().splitlines()[0].startswith("semiostream ") and ": error: " in out, out
    assert expect in out, out


def test_user_errors_are_reported_before_the_model_loads(tmp_path, bus_bundle):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        cases = []
        p, cfg = _write_config(tmp_path, bus_bundle)
        eps = dict(cfg["endpoints"], frames=f"tcp://127.0.0.1:{port}")
        cases.append((_write_config(tmp_path / "a", bus_bundle, endpoints=eps)[0], "already in use"))
        cases.append((_write_config(tmp_path / "b", bus_bundle, metrics_port=port)[0], "metrics_port"))
        cases.append((_write_config(tmp_path / "c", bus_bundle,
                                    security={"secret_key": str(tmp_path / "none.key_secret"),
                                              "cameras": str(tmp_path)})[0], "does not exist"))
        bad = tmp_path / "d" / "scorer.yaml"
        bad.parent.mkdir()
        bad.write_bytes(b"bundle: \xff\xfe\n")
        cases.append((bad, "not UTF-8"))
        dup = tmp_path / "e" / "scorer.yaml"
        dup.parent.mkdir()
        dup.write_text(f"bundle: {bus_bundle}\nbundle: {bus_bundle}\n")
        cases.append((dup, "appears twice"))
        cases.append((_write_config(tmp_path / "f", bus_bundle, beds=[{"id": "bed 1"}])[0], "beds.0.id"))
        for config, expect in cases:
            config.parent.mkdir(exist_ok=True)
            rc, out, seconds = _run_error(["serve", str(config)])
            assert rc == 2, out
            _one_line_error(out, expect)
            assert seconds < 6, f"{expect}: {seconds:.1f} s (nothing slow may run before this check)"
    finally:
        busy.close()
    rc, out, _ = _run_error(["publish", "--synthetic", "FLE", "--bed", "bad bed", "--max-frames", "1"])
    assert rc == 2 and "publishing" not in out
    _one_line_error(out, "bed id")


@pytest.mark.slow
def test_kill_9_mid_event_loses_nothing(tmp_path, bus_bundle):
    config, cfg = _write_config(tmp_path, bus_bundle)
    ep = cfg["endpoints"]
    stop = threading.Event()
    pub = Publisher(ep["frames"], "bed-k", fps=15)
    frames = (FRAME for _ in iter(int, 1))
    feeder = threading.Thread(target=pub.run, args=(frames,), kwargs={"stop": stop}, daemon=True)
    sub = ResultsSubscriber(ep["results"])
    ctl = ControlClient(ep["control"], timeout_s=240)  # the first ping waits for the model to load (minutes under load)
    proc = _serve(config)
    proc2 = None
    try:
        assert ctl.request("ping")["ok"]  # waits for the model to load
        event_id = ctl.event("start", "bed-k")["event_id"]
        feeder.start()
        before = collect(sub, lambda g: sum(isinstance(r, ScoreResult) for r in g) >= 2, timeout=90)
        before = [r for r in before if isinstance(r, ScoreResult) and r.event_id == event_id]
        assert len(before) >= 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        t_restart = time.monotonic()
        proc2 = _serve(config)
        after = collect(sub, lambda g: sum(isinstance(r, ScoreResult) for r in g) >= 2, timeout=90)
        first_result_s = time.monotonic() - t_restart
        after = [r for r in after if isinstance(r, ScoreResult)]
        assert after and all(r.event_id == event_id for r in after)  # the event is still open
        ctl2 = ControlClient(ep["control"], timeout_s=30)
        reply = ctl2.event("stop", "bed-k")
        assert reply["ok"] and reply["event_id"] == event_id
        (summary,) = [e for e in collect(sub, lambda g: any(isinstance(r, EventResult) for r in g), timeout=60)
                      if isinstance(e, EventResult)]
        ctl2.close()
    finally:  # the scorers first: a failed assertion must not leave one running
        for p in (proc, proc2):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        stop.set()
        if feeder.ident is not None:
            feeder.join(5)
        for c in (pub, sub, ctl):
            c.close()
    with ResultStore(cfg["store"]["path"], readonly=True) as store:
        stored = store.windows(event_id)
    seen = {r.first_seq for r in before + after}
    assert summary.event_id == event_id and summary.windows >= len(before) + len(after)
    assert summary.windows == len(stored) and seen <= {w["first_seq"] for w in stored}
    assert summary.p_tle == pytest.approx(float(np.mean([w["p_tle"] for w in stored])), abs=1e-9)
    print(f"\nkill -9 mid-event: {len(before)} windows before, {summary.windows - len(before)} after, "
          f"1 event recovered, first result {first_result_s:.1f} s after the restart")
