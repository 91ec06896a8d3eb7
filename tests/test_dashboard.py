"""`semiostream dashboard`: access rules (loopback, TLS + token), read-only reports without path traversal,
server-sent events. A real aiohttp server on loopback, real HTTP(S) requests."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse

import pytest

from semiostream.bus.dashboard import (
    BoardState,
    DashboardError,
    DashboardServer,
    check_access,
    read_token,
)
from semiostream.bus.protocol import EventResult, ScoreResult
from semiostream.cli import main

TOKEN = "s3cret-token-for-tests-0123456789"


def raw_get(port: int, target: str, headers: dict | None = None, tls: bool = False) -> tuple[int, bytes]:
    """GET with the request target sent byte for byte (no client-side normalisation of ``..``)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
def reports(tmp_path):
    root = tmp_path / "reports"
    (root / "bed-01" / "ev-1").mkdir(parents=True)
    (root / "bed-01" / "ev-1" / "index.html").write_text("<html>report of ev-1</html>")
    (tmp_path / "secret.txt").write_text("PATIENT SECRET")
    (root / "bed-01" / "link").symlink_to(tmp_path / "secret.txt")
    (root / "bed-01" / "dirlink").symlink_to(tmp_path)
    return root


@pytest.fixture
def server(reports):
    state = BoardState(reports)
    srv = DashboardServer(state, "127.0.0.1", 0).start()
    yield srv
    srv.close()


def test_reports_are_served_read_only_and_nothing_outside_the_folder(server):
    status, body = raw_get(server.port, "/reports/bed-01/ev-1/index.html")
    assert status == 200 and b"report of ev-1" in body
    for target in ("/reports/../secret.txt", "/reports/bed-01/../../secret.txt", "/reports/%2e%2e/secret.txt",
                   "/reports/bed-01/%2e%2e/%2e%2e/secret.txt", "/reports/..%2fsecret.txt",
                   "/reports/bed-01/..%2f..%2fsecret.txt", "/reports/%2e%2e%2fsecret.txt",
                   "/reports//etc/passwd", "/reports/bed-01/link", "/reports/bed-01/dirlink/secret.txt",
                   "/reports/bed-01/", "/reports/", "/reports/bed-01/ev-1/index.html%00.txt",
                   "/reports/..\\secret.txt"):
        status, body = raw_get(server.port, target)
        assert status in (400, 403, 404), (target, status)
        assert b"PATIENT SECRET" not in body and b"root:" not in body, target
    for method in ("PUT", "DELETE", "POST"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request(method, "/reports/bed-01/ev-1/index.html", body=b"x")
        assert conn.getresponse().status == 405, method
        conn.close()


def test_state_and_server_sent_events_follow_the_scorer(server):
    state = server.state
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/events")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    first = resp.readline()
    assert first.startswith(b"data: ")
    resp.readline()
    t0 = time.monotonic()
    state.add_results([ScoreResult("bed-01", 0, 15, 1, 2, 0.91, "TLE", "b1", 250.0, event_id="ev-1")])
    line = resp.readline()
    latency = time.monotonic() - t0
    assert b'"bed-01"' in line and b"0.91" in line and b'"event": "ev-1"' in line
    print(f"server-sent event {latency * 1000:.0f} ms after the result reached the dashboard")
    assert latency < 2.0
    conn.close()
    state.add_results([EventResult("bed-01", "ev-1", 1, 9, 2, 0.9, "TLE", "b1")])
    snap = state.snapshot()
    bed = snap["beds"]["bed-01"]
    assert bed["event"] is None and bed["spark"] == [] and bed["p_tle"] is None and bed["label"] is None
    assert bed["closed"][0]["p_tle"] == 0.9 and bed["closed"][0]["label"] == "TLE"  # the closed event keeps its class
    assert bed["closed"][0]["report_url"] == "/reports/bed-01/ev-1/index.html"  # found in the reports folder
    state.add_results([EventResult("bed-01", "ev-2", 1, 9, 2, 0.9, "TLE", "b1")])
    assert state.snapshot()["beds"]["bed-01"]["closed"][0]["report_url"] is None  # not written (yet)
    flat = state.reports_dir / "ev-3" / "index.html"  # the live scorer's layout: DIR/<event_id>/index.html
    flat.parent.mkdir()
    flat.write_text("<html>ev-3</html>")
    outside = state.reports_dir.parent / "elsewhere.html"
    outside.write_text("x")
    state.add_results([EventResult("bed-01", "ev-3", 1, 9, 2, 0.9, "TLE", "b1", report=str(flat)),
                       EventResult("bed-01", "ev-4", 1, 9, 2, 0.9, "TLE", "b1", report=str(outside))])
    closed = {e["event_id"]: e["report_url"] for e in state.snapshot()["beds"]["bed-01"]["closed"]}
    assert closed["ev-3"] == "/reports/ev-3/index.html" and closed["ev-4"] is None  # never a link out of DIR
    state.set_status({"ok": False, "error": "this key is not on the operators allow-list"})
    assert "operators" in state.snapshot()["status_error"]


def test_off_loopback_needs_tls_and_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("SEMIOSTREAM_DASHBOARD_TOKEN", raising=False)
    assert check_access("127.0.0.1", None, None, None) is None
    assert check_access("::1", None, None, None) is None
    with pytest.raises(DashboardError, match="--tls-cert and --tls-key"):
        check_access("0.0.0.0", None, None, TOKEN)
    with pytest.raises(DashboardError, match="token"):
        check_access("192.168.1.20", tmp_path / "c.pem", tmp_path / "k.pem", None)
    with pytest.raises(DashboardError, match="both --tls-cert and --tls-key"):
        check_access("127.0.0.1", tmp_path / "c.pem", None, None)
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(DashboardError, match="at least 16"):
        read_token(tmp_path / "short")
    (tmp_path / "tok").write_text(TOKEN + "\n")
    assert read_token(tmp_path / "tok") == TOKEN
    assert read_token(None) is None
    monkeypatch.setenv("SEMIOSTREAM_DASHBOARD_TOKEN", TOKEN)
    assert read_token(None) == TOKEN


def test_cli_refuses_an_open_bind_in_one_line(capsys, monkeypatch):
    monkeypatch.delenv("SEMIOSTREAM_DASHBOARD_TOKEN", raising=False)
    assert main(["dashboard", "--bind", "0.0.0.0:0", "--seconds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--tls-cert" in err and "token" in err
    assert main(["dashboard", "--bind", "nonsense", "--seconds", "1"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


@pytest.fixture
def cert(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    c, k = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(k), "-out", str(c),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
    return c, k


def test_tls_and_token_are_enforced(reports, cert, tmp_path):
    ctx = check_access("127.0.0.1", *cert, TOKEN)
    srv = DashboardServer(BoardState(reports), "127.0.0.1", 0, ctx, TOKEN).start()
    try:
        assert srv.url.startswith("https://")
        assert raw_get(srv.port, "/state.json", tls=True)[0] == 401
        assert raw_get(srv.port, "/reports/bed-01/ev-1/index.html", tls=True)[0] == 401
        assert raw_get(srv.port, "/state.json", {"Authorization": "Bearer " + TOKEN[:-1] + "x"}, tls=True)[0] == 401
        status, body = raw_get(srv.port, "/state.json", {"Authorization": "Bearer " + TOKEN}, tls=True)
        assert status == 200 and b'"beds"' in body
        assert raw_get(srv.port, "/", tls=True)[0] == 302  # to the login form
        # the login form sets an HttpOnly, Secure cookie that then opens everything
        c = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=10, context=ssl._create_unverified_context())
        c.request("POST", "/login", urllib.parse.urlencode({"token": TOKEN}),
                  {"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        cookie = r.getheader("Set-Cookie")
        assert r.status == 302 and "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
        c.close()
        status, body = raw_get(srv.port, "/", {"Cookie": cookie.split(";")[0]}, tls=True)
        assert status == 200 and b"EventSource" in body
        with pytest.raises((ssl.SSLError, ConnectionError, ValueError, IndexError)):
            raw_get(srv.port, "/state.json")  # plain HTTP to a TLS port gets nothing useful
    finally:
        srv.close()


def test_page_has_no_external_resources(server):
    status, body = raw_get(server.port, "/")
    text = body.decode()
    assert status == 200
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert "research second opinion" in text and 'EventSource("events")' in text


def test_a_busy_port_is_one_clear_error(reports):
    srv = DashboardServer(BoardState(reports), "127.0.0.1", 0).start()
    try:
        with pytest.raises(DashboardError, match="choose another --bind"):
            DashboardServer(BoardState(reports), "127.0.0.1", srv.port).start()
    finally:
        srv.close()


def test_a_bed_without_an_open_event_carries_no_class():
    """The classifier learnt seizures only: a window scored outside an event is counted, its p(TLE) never shown."""
    state = BoardState()
    state.add_results([ScoreResult("bed-03", 0, 15, 1, 2, 0.74, "TLE", "b1", 250.0)])
    state.set_status({"ok": True, "status": {"beds": {"bed-03": {"age_s": 0.2, "event": None}}}})
    bed = state.snapshot()["beds"]["bed-03"]
    assert (bed["p_tle"], bed["label"], bed["spark"], bed["event"]) == (None, None, [], None)
    assert bed["windows"] == 1 and bed["last_seq"] == 15 and bed["updated"] is not None
    state.set_status({"ok": True, "status": {"beds": {"bed-03": {"age_s": 0.2, "event": "ev-7"}}}})
    assert state.snapshot()["beds"]["bed-03"]["p_tle"] is None  # open, but no window of ev-7 scored yet
    state.add_results([ScoreResult("bed-03", 16, 31, 3, 4, 0.2, "FLE", "b1", 250.0),  # submitted before the start
                       ScoreResult("bed-03", 32, 47, 5, 6, 0.81, "TLE", "b1", 250.0, event_id="ev-7")])
    bed = state.snapshot()["beds"]["bed-03"]
    assert (bed["p_tle"], bed["label"], bed["spark"], bed["event"]) == (0.81, "TLE", [0.81], "ev-7")
    assert bed["windows"] == 3

