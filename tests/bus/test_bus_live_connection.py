"""No silent failures: ``publish``, ``watch`` and the operator commands say within seconds, in one line
with exit status 2, when no scorer listens, when the scorer refuses their key (naming its fingerprint
and the allow-list folder), when encryption is on one side only, and when an endpoint has no ``tcp://``.
Against a real scorer with CURVE keys in role folders (camera, viewer, operator)."""

from __future__ import annotations

import shutil
import time

import pytest
import zmq.auth
from bus_helpers import free_port, make_config
from waiting import wait_until

from semiostream.bus.roles import fingerprint
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.security import new_keypair
from semiostream.bus.watch import ControlClient
from semiostream.cli import main


@pytest.fixture(scope="module")
def scorer(bus_bundle, tmp_path_factory):
    """A CURVE scorer: cam-1 is a camera bound to bed-01, nurse a viewer, op an operator (and viewer);
    stranger is on no list."""
    root = tmp_path_factory.mktemp("curve")
    keys = root / "keys"
    made = {n: new_keypair(keys, n) for n in ("scorer", "cam-1", "nurse", "op", "stranger")}
    folders = {role: keys / role for role in ("cameras", "viewers", "operators")}
    for folder in folders.values():
        folder.mkdir()
    shutil.copy(made["cam-1"][0], folders["cameras"])
    shutil.copy(made["nurse"][0], folders["viewers"])
    shutil.copy(made["op"][0], folders["viewers"])
    shutil.copy(made["op"][0], folders["operators"])
    cfg = make_config(bus_bundle, security={"secret_key": made["scorer"][1], **folders},
                      beds=[{"id": "bed-01", "camera": "cam-1"}])
    with ScorerRuntime(cfg).start() as rt:  # warmed up: no test waits on the first window's compile
        yield cfg, made, rt


def _client(made, name: str) -> list[str]:
    return ["--key", str(made[name][1]), "--server-key", str(made["scorer"][0])]


def _run(capsys, *argv: str) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err, time.monotonic() - t0


def _fp(made, name: str) -> str:
    public, _ = zmq.auth.load_certificate(made[name][0])
    return fingerprint(public)


def test_watch_explains_an_empty_table(scorer, capsys):
    """No camera streams while it watches, so no result can arrive (a test of this module that streamed
    before has had all of its windows scored: none is left to arrive)."""
    cfg, made, rt = scorer
    wait_until(lambda: not rt.service.pending, what="every window streamed before to be scored and published")
    rc, out, err, _ = _run(capsys, "watch", "--results", cfg.endpoints.results, "--control", "",
                           "--seconds", "8", *_client(made, "nurse"))  # time for the CURVE handshake on a busy CI
    assert rc == 0, err
    assert "connected to the scorer at" in out and "no window scored yet" in out


def test_publish_to_a_port_where_nothing_listens(capsys):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    rc, out, err, took = _run(capsys, "publish", "--synthetic", "TLE", "--bed", "b1", "--endpoint", endpoint,
                              "--max-frames", "5", "--connect-timeout", "2")
    assert rc == 2 and took < 10
    assert f"no scorer at {endpoint}" in err and "nothing was sent" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_publish_with_a_key_the_scorer_refuses(scorer, capsys):
    cfg, made, rt = scorer
    rc, _, err, took = _run(capsys, "publish", "--synthetic", "TLE", "--bed", "bed-01", "--endpoint",
                            cfg.endpoints.frames, "--max-frames", "5", *_client(made, "stranger"))
    assert rc == 2 and took < 10
    assert "refused this key" in err and _fp(made, "stranger") in err
    assert str(made["stranger"][0]) in err and "security.cameras" in err
    # the scorer counted it too
    assert rt.metrics.value("semiostream_dropped_total", reason="key_camera") >= 1


def test_publish_without_keys_to_an_encrypted_scorer(scorer, capsys):
    cfg, made, _ = scorer
    rc, _, err, _ = _run(capsys, "publish", "--synthetic", "TLE", "--bed", "bed-01", "--endpoint",
                         cfg.endpoints.frames, "--max-frames", "5")
    assert rc == 2 and "requires encryption" in err and "--server-key" in err


def test_publish_with_the_wrong_server_key(scorer, capsys):
    cfg, made, _ = scorer
    rc, _, err, _ = _run(capsys, "publish", "--synthetic", "TLE", "--bed", "bed-01", "--endpoint",
                         cfg.endpoints.frames, "--max-frames", "5", "--key", str(made["cam-1"][1]),
                         "--server-key", str(made["nurse"][0]))
    assert rc == 2 and "is not this scorer's public key" in err


def test_endpoint_without_transport_is_refused_with_the_fix(capsys):
    rc, _, err, _ = _run(capsys, "publish", "--synthetic", "TLE", "--bed", "b1", "--endpoint", "localhost:5555")
    assert rc == 2 and "write tcp://localhost:5555" in err and "another machine" not in err
    rc, _, err, _ = _run(capsys, "watch", "--results", "127.0.0.1:5556", "--seconds", "1")
    assert rc == 2 and "write tcp://127.0.0.1:5556" in err


def test_publish_with_the_camera_key_reaches_the_scorer(scorer, capsys):
    cfg, made, _ = scorer
    rc, out, err, _ = _run(capsys, "publish", "--synthetic", "FLE", "--bed", "bed-01", "--endpoint",
                           cfg.endpoints.frames, "--max-frames", "40", "--fast", *_client(made, "cam-1"))
    assert rc == 0, err
    assert "sent 40 frames; 0 while no scorer was connected" in out
    ctl = ControlClient(cfg.endpoints.control, _security(made, "op"))
    try:
        frames = wait_until(lambda: ctl.status()["status"]["beds"].get("bed-01", {}).get("frames", 0),
                            timeout=10, until=lambda n: n >= 40)
    finally:
        ctl.close()
    assert frames == 40


def _security(made, name):
    from semiostream.bus.security import ClientSecurity

    return ClientSecurity(made[name][1], made["scorer"][0])


def test_watch_with_a_key_that_is_not_a_viewer(scorer, capsys):
    cfg, made, _ = scorer
    rc, _, err, took = _run(capsys, "watch", "--results", cfg.endpoints.results, "--control", cfg.endpoints.control,
                            "--seconds", "30", *_client(made, "cam-1"))
    assert rc == 2 and took < 10
    assert "refused this key" in err and _fp(made, "cam-1") in err and "security.viewers" in err


def test_operator_commands_need_an_operator_key(scorer, capsys):
    cfg, made, _ = scorer
    rc, _, err, took = _run(capsys, "event", "start", "bed-01", "--control", cfg.endpoints.control,
                            *_client(made, "nurse"))
    assert rc == 2 and took < 10
    assert "refused this key" in err and "security.operators" in err and _fp(made, "nurse") in err
    rc, out, err, _ = _run(capsys, "status", "--control", cfg.endpoints.control, *_client(made, "op"))
    assert rc == 0, err
    assert "refused: " in out and "key_operator=" in out  # the scorer's status (its beds depend on earlier tests)


def test_publish_for_a_bed_the_scorer_does_not_serve(scorer, capsys):
    cfg, made, _ = scorer
    rc, _, err, took = _run(capsys, "publish", "--synthetic", "TLE", "--bed", "bed-99", "--endpoint",
                            cfg.endpoints.frames, "--max-frames", "5", "--connect-timeout", "2",
                            *_client(made, "cam-1"))
    assert rc == 2 and took < 10
    assert "does not take frames of bed bed-99" in err and "beds:" in err


def test_publish_with_a_public_key_as_its_secret_returns_at_once(scorer, capsys):
    cfg, made, _ = scorer
    rc, _, err, took = _run(capsys, "publish", "--synthetic", "TLE", "--bed", "bed-01", "--endpoint",
                            cfg.endpoints.frames, "--key", str(made["cam-1"][0]), "--server-key",
                            str(made["scorer"][0]))
    assert rc == 2 and took < 10 and "holds no secret key" in err
