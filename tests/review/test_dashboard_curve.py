"""`semiostream dashboard` against a CURVE scorer: a viewer key for results, an operator key for status."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request

from review_helpers import WINDOW
from waiting import wait_until

from semiostream.bus.config import ServiceConfig
from semiostream.bus.dashboard import BoardState, ScorerFeed
from semiostream.bus.publisher import Publisher, synthetic_frames
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.security import ClientSecurity, new_keypair
from semiostream.cli import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_with_viewer_and_operator_keys(review_bundle, tmp_path):
    keys, folders = tmp_path / "keys", {k: tmp_path / k for k in ("cameras", "viewers", "operators")}
    made = {n: new_keypair(keys, n) for n in ("scorer", "cam", "nurse", "ops")}
    for name, role in (("cam", "cameras"), ("nurse", "viewers"), ("ops", "operators")):
        folders[role].mkdir()
        (folders[role] / f"{name}.key").write_bytes(made[name][0].read_bytes())
    cfg = ServiceConfig.model_validate({
        "bundle": review_bundle, "backend": "torch-cpu-fp32", "store": {"path": None},
        "endpoints": {k: f"tcp://127.0.0.1:{free_port()}" for k in ("frames", "results", "control")},
        "windows": {"hop": WINDOW, "max_inflight": 4}, "batching": {"max_batch": 2, "max_wait_ms": 30},
        "security": {"secret_key": made["scorer"][1], **{k: str(v) for k, v in folders.items()}}})
    port = free_port()
    argv = ["dashboard", "--results", cfg.endpoints.results, "--control", cfg.endpoints.control,
            "--bind", f"127.0.0.1:{port}", "--seconds", "40", "--status-every", "0.3",
            "--key", str(made["nurse"][1]), "--operator-key", str(made["ops"][1]),
            "--server-key", str(made["scorer"][0])]
    with ScorerRuntime(cfg).start():
        cli = threading.Thread(target=main, args=(argv,), daemon=True)
        cli.start()
        # the viewer key alone cannot read the status: the page says so, results still arrive
        viewer_only = BoardState()
        nurse = ClientSecurity(made["nurse"][1], made["scorer"][0])
        feed = ScorerFeed(viewer_only, cfg.endpoints.results, cfg.endpoints.control, nurse, nurse, 0.3).start()
        cam = Publisher(cfg.endpoints.frames, "bed-1", ClientSecurity(made["cam"][1], made["scorer"][0]))
        try:
            assert cam.wait_for_scorer(10) is None
            cam.run(synthetic_frames("TLE", 3, 96, 72, 30.0, 1.2, loop=False), realtime=False)
            snap = wait_until(lambda: _state(port), 38, until=lambda s: (s.get("beds", {}).get("bed-1") or {})
                              .get("windows") and s.get("bundle_id"))
            bed = snap["beds"]["bed-1"]
            assert snap["status_error"] is None and snap["results_error"] is None
            assert bed["gaps"] == 0 and bed["frames"] >= 32 and bed["updated"] is not None
            # no event is open on bed-1: scored, but no class (the model learnt seizures only)
            assert (bed["event"], bed["p_tle"], bed["label"], bed["spark"]) == (None, None, None, [])
            other = wait_until(viewer_only.snapshot, 30, until=lambda s: s["status_error"] and s["beds"]
                               .get("bed-1", {}).get("windows"))
            assert other["beds"]["bed-1"]["p_tle"] is None and other["beds"]["bed-1"]["label"] is None
            assert "operator" in other["status_error"] or "no reply" in other["status_error"]
        finally:
            feed.close()
            cam.close(flush_s=0)
        cli.join(60)
    assert not cli.is_alive()


def _state(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/state.json", timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return {}
