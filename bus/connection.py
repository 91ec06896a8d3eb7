"""Client-side view of a connection to a scorer: is anyone there, and did it accept our key?

A ZeroMQ ``connect`` never fails: with nothing listening, or with a key the scorer refuses, messages
just go nowhere. :class:`ConnectionWatch` reads the socket's monitor events so that publishers,
viewers and operator tools can say what is wrong within seconds, in one line:

* nothing accepts TCP connections at the endpoint -> "no scorer at ENDPOINT";
* the scorer refused the key (ZAP) -> "the scorer refused this key (fingerprint ...): add NAME.key to
  its ROLEs folder";
* CURVE on one side only, or a wrong ``--server-key`` -> what to change.

:func:`check_endpoint` refuses endpoints without a transport (``localhost:5555``) with the fix.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import monitor
from .roles import fingerprint
from .security import ClientSecurity, SecurityError

#: connection states, in the order a healthy connection goes through them
CONNECTING, CONNECTED, READY = "connecting", "connected", "ready"
NO_LISTENER = "no_listener"
#: failed handshakes: retrying without a change on either side will not fix them
REFUSED = "refused"  # the scorer's ZAP handler refused the key
MISMATCH = "mismatch"  # CURVE on one side only
SERVER_KEY = "server_key"  # the encrypted handshake failed: not the scorer's public key
FAILED = (REFUSED, MISMATCH, SERVER_KEY)

#: the allow-list folder of each role in the scorer config
ROLE_FOLDERS = {"camera": "security.cameras", "viewer": "security.viewers", "operator": "security.operators"}

_EVENTS = {
    zmq.EVENT_CONNECT_DELAYED: CONNECTING,
    zmq.EVENT_CONNECTED: CONNECTED,
    zmq.EVENT_CONNECT_RETRIED: NO_LISTENER,
    zmq.EVENT_DISCONNECTED: CONNECTING,
    zmq.EVENT_HANDSHAKE_SUCCEEDED: READY,
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: REFUSED,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: MISMATCH,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: SERVER_KEY,
}
_MONITORED = sum(_EVENTS)
_ENDPOINT = re.compile(r"(tcp|ipc|inproc)://.+")


def check_endpoint(endpoint: str, what: str = "endpoint") -> str:
    """``endpoint`` if it names a transport ZeroMQ can connect to, else :class:`SecurityError` with the fix
    (``localhost:5555`` -> "write tcp://localhost:5555")."""
    if _ENDPOINT.fullmatch(endpoint):
        if endpoint.startswith("tcp://") and not re.search(r":(\d+)$", endpoint):
            raise SecurityError(f"{what} {endpoint!r} has no port; write e.g. {endpoint}:5555")
        return endpoint
    if "://" not in endpoint and re.fullmatch(r"(\[[^\]]+\]|[^:/\s]+):\d+", endpoint):
        raise SecurityError(f"{what} {endpoint!r} has no transport; write tcp://{endpoint}")
    raise SecurityError(f"{what} {endpoint!r} is not a ZeroMQ endpoint; write tcp://HOST:PORT "
                        "(or ipc://PATH on the same machine)")


@dataclass(frozen=True)
class KeyInfo:
    """This client's public key file and fingerprint (for messages), or none without CURVE."""

    public_key: Path | None = None
    fingerprint: str | None = None

    @classmethod
    def of(cls, security: ClientSecurity) -> KeyInfo:
        if security.secret_key is None:
            return cls()
        secret = Path(security.secret_key)
        public = secret.with_name(secret.name.removesuffix("_secret")) if secret.name.endswith(
            ".key_secret") else secret
        try:
            import zmq.auth

            pub, _ = zmq.auth.load_certificate(secret)
        except (OSError, ValueError):
            return cls(public, None)
        return cls(public, fingerprint(pub))


class ConnectionWatch:
    """Follows one connecting socket through its monitor (create it before ``connect``).

    Args:
        sock: the client socket (PUB, SUB, REQ, DEALER).
        endpoint: where it connects (for messages).
        role: the scorer role its key needs there (``camera``, ``viewer``, ``operator``).
        security: the client's security settings (key fingerprint and CURVE on/off, for messages).
    """

    def __init__(self, sock: zmq.Socket, endpoint: str, role: str, security: ClientSecurity) -> None:
        self.endpoint, self.role, self.security = endpoint, role, security
        self.key = KeyInfo.of(security)
        self.state = CONNECTING
        self.ever_ready = False
        self.since = time.monotonic()  # when the current state began
        self._sock = sock
        self._monitor = monitor.start(sock, _MONITORED)

    def poll(self) -> str:
        """Read pending monitor events; returns the current state."""
        while True:
            try:
                msg = recv_monitor_message(self._monitor, flags=zmq.NOBLOCK)
            except zmq.Again:
                return self.state
            except zmq.ZMQError:  # monitor closed with its socket
                return self.state
            state = _EVENTS.get(msg["event"])
            if state is None:
                continue
            if self.state in FAILED and state != READY and state not in FAILED:
                continue  # keep the telling reason while ZeroMQ retries
            if state != self.state:
                self.state, self.since = state, time.monotonic()
            if state == READY:
                self.ever_ready = True

    def wait(self, timeout_s: float, step_s: float = 0.05) -> str:
        """Poll until the connection is ready or has clearly failed, at most ``timeout_s``; returns the state."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.poll()
            if state == READY or state in FAILED or time.monotonic() >= deadline:
                return state
            time.sleep(step_s)

    @property
    def ready(self) -> bool:
        return self.poll() == READY

    def problem(self) -> str | None:
        """One line saying what is wrong with the connection and how to fix it, or None while it is
        ready (or has not had time to fail)."""
        state = self.poll()
        ep, role = self.endpoint, self.role
        if state == READY:
            return None
        if state == REFUSED:
            fp = f"fingerprint {self.key.fingerprint}" if self.key.fingerprint else "fingerprint unknown"
            name = self.key.public_key or "this client's NAME.key"
            return (f"the scorer at {ep} refused this key ({name}, {fp}): add {name} to its {role}s "
                    f"allow-list folder ({ROLE_FOLDERS.get(role, 'security')}); the scorer re-reads it within 2 s")
        if state == MISMATCH:
            if self.security.curve:
                return (f"the scorer at {ep} does not use encryption (no security.secret_key): drop --key and "
                        "--server-key, or give the scorer its keys")
            return (f"the scorer at {ep} requires encryption: pass --key (this client's NAME.key_secret) and "
                    "--server-key (the scorer's public .key)")
        if state == SERVER_KEY:
            if not self.security.curve:
                return (f"the scorer at {ep} requires encryption: pass --key (this client's NAME.key_secret) and "
                        "--server-key (the scorer's public .key)")
            return (f"the encrypted handshake with the scorer at {ep} failed: --server-key "
                    f"({self.security.server_key}) is not this scorer's public key")
        if state == CONNECTED:
            return f"the scorer at {ep} accepted the connection but no handshake followed; is it a semiostream scorer?"
        if self.ever_ready:
            return f"lost the scorer at {ep}; reconnecting"
        return f"no scorer at {ep}: nothing accepts connections there (is `semiostream serve` running, on this port?)"

    def close(self) -> None:
        """Stop monitoring (call before closing the socket)."""
        monitor.stop(self._sock, self._monitor)
