"""``semiostream event start|stop|list`` and ``semiostream status`` against a real scorer (Kinetics I3D +
a seeded classifier, 16-frame windows) fed by a real publisher: exit status 0 on success, 2 with the
scorer's reason otherwise, and ``event stop`` prints the event's summary when it arrives."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import pytest
from random_bundle import make_random_bundle
from waiting import wait_until

from semiostream.bus.config import ServiceConfig
from semiostream.bus.publisher import Publisher, synthetic_frames
from semiostream.bus.runtime import ScorerRuntime
from semiostream.cli import main
from semiostream.core.preprocess_spec import PreprocessSpec


def _endpoints() -> dict:
    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    return {k: f"tcp://127.0.0.1:{p}" for k, p in zip(("frames", "results", "control"), ports, strict=True)}


@pytest.fixture(scope="module")
def scorer(tmp_path_factory, kinetics_ckpt):
    """A scorer serving bed-01 only, with bed-01 streaming a synthetic TLE bed (16-frame windows)."""
    bundle = make_random_bundle(tmp_path_factory.mktemp("event-bundle") / "b", kinetics_ckpt, seed=5,
                                spec=PreprocessSpec(window=16, min_frames=9))
    cfg = ServiceConfig.model_validate({
        "bundle": bundle, "backend": "torch-cpu-fp32", "endpoints": _endpoints(), "store": {"path": None},
        "beds": [{"id": "bed-01"}], "windows": {"hop": 16, "max_inflight": 4},
        "batching": {"max_batch": 2, "max_wait_ms": 20}})
    stop = threading.Event()
    with ScorerRuntime(cfg, warmup=False).start():
        pub = Publisher(cfg.endpoints.frames, "bed-01", fps=15)
        assert pub.wait_for_scorer(10) is None
        frames = synthetic_frames("TLE", seed=4, width=96, height=72, fps=15, seconds=4.0)
        t = threading.Thread(target=pub.run, args=(frames,), kwargs={"stop": stop}, daemon=True)
        t.start()
        try:
            yield cfg
        finally:
            stop.set()
            t.join(10)
            pub.close()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _status_json(capsys, ctl: list[str]) -> dict:
    rc, out, err = _run(capsys, "status", "--json", *ctl)
    assert rc == 0, err
    return json.loads(out)


def _wait_for_windows(capsys, ctl: list[str], n: int) -> dict:
    return wait_until(lambda: _status_json(capsys, ctl)["beds"].get("bed-01", {}), 90,
                      until=lambda bed: bed.get("windows_scored", 0) >= n, what=f"{n} windows of bed-01 scored")


def _status_cells(capsys, ctl: list[str]) -> dict[str, str]:
    """bed-01's row of the `semiostream status` table, by column."""
    rc, out, err = _run(capsys, "status", *ctl)
    assert rc == 0, err
    lines = out.splitlines()
    head = next(line for line in lines if "p(TLE)" in line and "┃" in line)
    row = next(line for line in lines if "bed-01" in line and "│" in line)
    return dict(zip([c.strip() for c in head.split("┃")], [c.strip() for c in row.split("│")], strict=True))


def test_event_start_list_stop_prints_the_summary(scorer, capsys):
    ctl = ["--control", scorer.endpoints.control]
    assert _wait_for_windows(capsys, ctl, 1).get("windows_scored", 0) >= 1
    rc, out, err = _run(capsys, "event", "start", "bed-01", *ctl)
    assert rc == 0, err
    event_id = out.split()[1]
    assert out.startswith(f"event {event_id} started on bed-01") and event_id.startswith("bed-01-")

    rc, out, err = _run(capsys, "event", "start", "bed-01", *ctl)
    assert rc == 2 and "already open on bed-01" in err

    rc, out, _ = _run(capsys, "event", "list", "--json", *ctl)
    assert rc == 0 and {"bed": "bed-01", "event_id": event_id} in [
        {k: e[k] for k in ("bed", "event_id")} for e in json.loads(out)]

    _wait_for_windows(capsys, ctl, 3)  # a few windows scored during the event
    # status shows p(TLE) once a window of the open event is scored
    wait_until(lambda: _status_json(capsys, ctl), until=lambda st: st["events"]["bed-01"]["windows_so_far"] >= 1,
               what="a window of the open event scored")
    cells = _status_cells(capsys, ctl)
    assert cells["state"] == f"event {event_id}", cells
    assert 0 <= float(cells["p(TLE)"]) <= 1, cells  # the latest window, one of the event's
    rc, out, err = _run(capsys, "event", "stop", "bed-01", *ctl, "--results", scorer.endpoints.results)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"event {event_id} stopped on bed-01")
    summary = lines[-1]
    assert summary.startswith(f"event {event_id} on bed-01: ") and "p(TLE)=" in summary
    windows = int(summary.split(": ")[1].split()[0])
    assert windows >= 1 and ("-> TLE" in summary or "-> FLE" in summary)

    rc, out, err = _run(capsys, "event", "stop", "bed-01", *ctl, "--results", "")
    assert rc == 2 and "no open event on bed-01" in err
    rc, out, _ = _run(capsys, "event", "list", *ctl)
    assert rc == 0 and out.strip() == "no event is open"


def test_event_for_a_bed_the_scorer_does_not_serve(scorer, capsys):
    rc, _, err = _run(capsys, "event", "start", "bed-77", "--control", scorer.endpoints.control)
    assert rc == 2 and "bed-77" in err and "not assigned to this scorer" in err


def test_status_shows_the_streaming_bed(scorer, capsys):
    ctl = ["--control", scorer.endpoints.control]
    bed = _wait_for_windows(capsys, ctl, 1)
    assert bed["event"] is None and bed["last_p_tle"] is not None  # --json: the scorer's status as it is
    cells = _status_cells(capsys, ctl)  # no event open: scored, no class
    assert cells["state"] == "scored, no event" and cells["p(TLE)"] == "-", cells
    rc, out, err = _run(capsys, "status", *ctl)
    assert rc == 0, err
    row = next((line for line in out.splitlines() if "bed-01" in line), None)
    assert row is not None, out
    assert "full frame" in row or "detected" in row
    assert "refused: " in out and "frame memory:" in out
    assert "15->30" in row and "bed bed-01: camera 15 fps, resampled to the bundle's 30 fps" in out  # a 15 fps camera


def test_event_command_without_a_scorer_is_one_line_and_exit_2():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "semiostream.cli", "event", "start", "bed-01", "--control",
                        f"tcp://127.0.0.1:{port}", "--timeout", "2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"semiostream event: error: no scorer at tcp://127.0.0.1:{port}: nothing accepts "
                                "connections there (is `semiostream serve` running, on this port?)")
