"""Security policy: which endpoints need CURVE, key files, error messages."""

from __future__ import annotations

import pytest

from semiostream.bus.security import (
    ClientSecurity,
    SecurityError,
    ServerSecurity,
    is_local_endpoint,
    new_keypair,
)


@pytest.mark.parametrize("endpoint,local", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.3.2.1:1", True), ("tcp://localhost:5555", True),
    ("tcp://[::1]:5555", True), ("ipc:///tmp/x", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://10.0.0.5:5555", False),
    ("tcp://scorer.icu.local:5555", False), ("tcp://192.168.1.2:80", False),
])
def test_local_endpoints(endpoint, local):
    assert is_local_endpoint(endpoint) is local


def test_plaintext_off_loopback_needs_explicit_flag():
    with pytest.raises(SecurityError, match="--insecure"):
        ServerSecurity().check("tcp://0.0.0.0:5555", "camera")
    ServerSecurity(insecure=True).check("tcp://0.0.0.0:5555", "camera")
    ServerSecurity().check("tcp://127.0.0.1:5555", "viewer")
    with pytest.raises(SecurityError, match="--insecure"):
        ClientSecurity().check("tcp://10.1.2.3:5555")


def test_keys(tmp_path):
    pub, sec = new_keypair(tmp_path, "cam-01")
    assert pub.name == "cam-01.key" and sec.name == "cam-01.key_secret"
    assert (sec.stat().st_mode & 0o777) == 0o600
    with pytest.raises(SecurityError, match="already exists"):
        new_keypair(tmp_path, "cam-01")
    with pytest.raises(SecurityError, match="characters"):
        new_keypair(tmp_path, "../evil")
    with pytest.raises(SecurityError, match="camera allow-list folder"):
        ServerSecurity(secret_key=sec, roles={"camera": tmp_path / "missing"}).check("tcp://0.0.0.0:1", "camera")
    with pytest.raises(SecurityError, match="operator allow-list folder"):
        ServerSecurity(secret_key=sec, roles={"camera": tmp_path}).check("tcp://127.0.0.1:1", "operator")
    with pytest.raises(SecurityError, match="both"):
        ClientSecurity(secret_key=sec).check("tcp://127.0.0.1:1")
    import zmq

    s = zmq.Context.instance().socket(zmq.PUB)
    try:
        with pytest.raises(SecurityError, match="no secret key"):
            ClientSecurity(secret_key=pub, server_key=pub).apply(s)
    finally:
        s.close(0)
