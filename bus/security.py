"""CURVE encryption and publisher authentication for the bus.

Policy: any endpoint that is not on this machine (not loopback, ipc or inproc) must use CURVE, with
an allow-list folder of public keys per role (:mod:`.roles`); plaintext there needs an explicit
``insecure`` flag. Keys are ZeroMQ certificate files made by ``semiostream keys new NAME``: ``NAME.key`` (public,
give it to the other side) and ``NAME.key_secret`` (keep it private).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth


class SecurityError(RuntimeError):
    """Security settings are missing or inconsistent; the message says how to fix them."""


def is_local_endpoint(endpoint: str) -> bool:
    """True for ``inproc://``, ``ipc://`` and TCP endpoints on loopback (127.0.0.0/8, ::1, localhost)."""
    if endpoint.startswith(("inproc://", "ipc://")):
        return True
    m = re.fullmatch(r"tcp://(\[[^\]]+\]|[^:]+):(\d+|\*)", endpoint)
    if not m:
        return False
    host = m.group(1).strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or a wildcard such as "*": reachable from elsewhere


def new_keypair(key_dir: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Create ``NAME.key`` and ``NAME.key_secret`` in ``key_dir``; refuse to overwrite."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise SecurityError(f"key name {name!r}: use 1-64 characters of A-Z a-z 0-9 _ . -")
    key_dir = Path(key_dir)
    key_dir.mkdir(parents=True, exist_ok=True)
    public, secret = key_dir / f"{name}.key", key_dir / f"{name}.key_secret"
    if public.exists() or secret.exists():
        raise SecurityError(f"{public} or {secret} already exists; pick another name or delete them first")
    pub, sec = zmq.auth.create_certificates(key_dir, name)
    os.chmod(sec, 0o600)
    return Path(pub), Path(sec)


def _load(path: str | os.PathLike, need_secret: bool) -> tuple[bytes, bytes | None]:
    p = Path(path)
    if not p.is_file():
        raise SecurityError(f"key file {p} does not exist; create one with `semiostream keys new NAME`")
    try:
        public, secret = zmq.auth.load_certificate(p)
    except (ValueError, OSError) as e:
        raise SecurityError(f"{p} is not a ZeroMQ certificate file ({e})") from e
    if need_secret and not secret:
        raise SecurityError(f"{p} holds no secret key; pass the NAME.key_secret file, not NAME.key")
    return public, secret


@dataclass(frozen=True)
class ServerSecurity:
    """The binding side (scorer). ``secret_key``: its ``.key_secret``; ``roles``: the allow-list folder of
    public ``NAME.key`` files for each role that has one (``"camera"``, ``"viewer"``, ``"operator"``);
    ``insecure``: allow plaintext on non-local endpoints."""

    secret_key: Path | None = None
    roles: dict[str, Path | None] = field(default_factory=dict)
    insecure: bool = False

    @property
    def curve(self) -> bool:
        return self.secret_key is not None

    def check(self, endpoint: str, role: str) -> None:
        """Refuse settings that would leave ``endpoint`` (served to ``role`` clients) open or unusable."""
        if self.curve:
            folder = self.roles.get(role)
            if folder is None or not Path(folder).is_dir():
                raise SecurityError(
                    f"CURVE is on for {endpoint} but the {role} allow-list folder "
                    f"({'security.' + role + 's'}: {folder}) does not exist; create it and copy the public "
                    f"NAME.key of every {role} into it"
                )
            _load(self.secret_key, need_secret=True)
        elif not is_local_endpoint(endpoint) and not self.insecure:
            raise SecurityError(
                f"{endpoint} is reachable from other machines, so it must be encrypted: give the scorer a "
                "secret key and allow-list folders of camera/viewer/operator keys (`semiostream keys new "
                "NAME`), or pass --insecure to accept plaintext video of patients on the network"
            )

    def apply(self, sock: zmq.Socket, role: str) -> None:
        """Make ``sock`` a CURVE server whose clients are authenticated against ``role``'s allow-list
        (ZAP domain = role); call before bind."""
        if self.curve:
            public, secret = _load(self.secret_key, need_secret=True)
            sock.curve_secretkey = secret
            sock.curve_publickey = public
            sock.curve_server = True
            sock.zap_domain = role.encode()


@dataclass(frozen=True)
class ClientSecurity:
    """The connecting side (publisher, watcher): its own ``.key_secret`` and the server's ``.key``."""

    secret_key: Path | None = None
    server_key: Path | None = None
    insecure: bool = False

    @property
    def curve(self) -> bool:
        return self.secret_key is not None or self.server_key is not None

    def check(self, endpoint: str) -> None:
        if self.curve and (self.secret_key is None or self.server_key is None):
            raise SecurityError("CURVE needs both this client's NAME.key_secret and the scorer's public .key")
        if not self.curve and not is_local_endpoint(endpoint) and not self.insecure:
            raise SecurityError(
                f"{endpoint} is on another machine: pass --key (this publisher's NAME.key_secret) and "
                "--server-key (the scorer's .key), or --insecure to send plaintext"
            )

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client (call before connect)."""
        if self.curve:
            public, secret = _load(self.secret_key, need_secret=True)
            server_public, _ = _load(self.server_key, need_secret=False)
            sock.curve_secretkey = secret
            sock.curve_publickey = public
            sock.curve_serverkey = server_public
