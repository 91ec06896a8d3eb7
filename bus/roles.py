"""Roles of bus clients and the ZAP authenticator that enforces them.

Every CURVE client is one of three roles, each with its own allow-list folder of public ``NAME.key``
files (``semiostream keys new NAME`` makes them):

* ``camera``: may publish frames (frames endpoint), and only for the beds bound to its key;
* ``viewer``: may subscribe to results (results endpoint);
* ``operator``: may use control (control endpoint: events, status).

Each scorer socket carries its role as ZAP domain, so a key completes the handshake only on the
sockets of the roles it is listed for. The peer's identity on every received message is the ZAP
``User-Id`` (the key's ``NAME``), never anything the peer writes in a topic or header.

The folders are re-read while the scorer runs (:meth:`RoleAuthenticator.reload`: on SIGHUP, and
whenever a folder's listing or a file's modification time changed). A refused key is logged once per
role with its fingerprint; every refusal is counted.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

log = logging.getLogger(__name__)

MAX_REMEMBERED_REFUSALS = 4096  # fingerprints logged once; beyond this, refusals are only counted


class Role(StrEnum):
    CAMERA = "camera"
    VIEWER = "viewer"
    OPERATOR = "operator"


def fingerprint(public_key_z85: bytes) -> str:
    """Short, stable fingerprint of a CURVE public key (first 16 hex digits of its sha256)."""
    try:
        raw = z85.decode(public_key_z85)
    except (ValueError, TypeError):
        raw = bytes(public_key_z85)
    return hashlib.sha256(raw).hexdigest()[:16]


def _folder_signature(folder: Path | None) -> tuple:
    if folder is None:
        return ()
    try:
        return tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size)
                            for e in os.scandir(folder) if e.name.endswith(".key")))
    except OSError:
        return ("<unreadable>",)


def load_keys(folder: Path | None) -> dict[bytes, str]:
    """``{z85 public key: NAME}`` of every readable ``NAME.key`` in ``folder`` (unreadable ones are
    skipped with a warning; a missing folder gives an empty allow-list)."""
    keys: dict[bytes, str] = {}
    if folder is None:
        return keys
    try:
        entries = sorted(Path(folder).glob("*.key"))
    except OSError as e:
        log.warning("allow-list folder %s cannot be read (%s); no key of it is admitted", folder, e.strerror)
        return keys
    for path in entries:
        try:
            public, _ = zmq.auth.load_certificate(path)
        except (ValueError, OSError) as e:
            log.warning("%s is not a ZeroMQ public key file (%s); ignored", path, e)
            continue
        keys.setdefault(public, path.stem)
    return keys


class RoleAuthenticator(ThreadAuthenticator):
    """pyzmq's ZAP thread with one CURVE allow-list per role (ZAP domain = role name).

    Args:
        context: the scorer's ZeroMQ context (ZAP is per context).
        folders: allow-list folder per role; a role without a folder admits no key.
        on_refused: ``(role, fingerprint, first_time)`` called for every refused handshake (from the
            ZAP thread): count it, and log it when ``first_time``.
    """

    def __init__(self, context: zmq.Context, folders: dict[Role, Path | None],
                 on_refused: Callable[[Role, str, bool], None] | None = None) -> None:
        super().__init__(context)
        self.folders = dict(folders)
        self.on_refused = on_refused
        self._keys: dict[Role, dict[bytes, str]] = {}
        self._names: dict[bytes, str] = {}
        self._role_names: dict[Role, frozenset[str]] = {}
        self._signature: dict[Role, tuple] = {}
        self._refused_seen: set[tuple[Role, str]] = set()
        self.reload(force=True)

    def start(self) -> None:
        super().start()
        for role in Role:
            self.configure_curve_callback(domain=role.value, credentials_provider=self)

    # ZAP thread --------------------------------------------------------------------------------
    def callback(self, domain: str, key: bytes) -> bool:
        """Credentials provider of pyzmq's authenticator: is ``key`` (z85) allowed for ``domain``?"""
        try:
            role = Role(domain)
        except ValueError:
            return False
        if key in self._keys.get(role, {}):
            return True
        fp = fingerprint(key)
        first = (role, fp) not in self._refused_seen
        if first and len(self._refused_seen) < MAX_REMEMBERED_REFUSALS:
            self._refused_seen.add((role, fp))
        if self.on_refused is not None:
            self.on_refused(role, fp, first)
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        """User-Id of an admitted key: its ``NAME`` (file stem) in the allow-list."""
        z = z85.encode(client_public_key)
        return self._names.get(z, z.decode("ascii"))

    # any thread --------------------------------------------------------------------------------
    def reload(self, force: bool = False) -> bool:
        """Re-read every folder whose contents changed (or all when ``force``); True if any did.

        The new allow-lists replace the old ones atomically; connections already admitted stay
        connected, and the scorer checks per message that a camera's key is still listed.
        """
        changed = False
        keys = dict(self._keys)
        for role in Role:
            sig = _folder_signature(self.folders.get(role))
            if force or sig != self._signature.get(role):
                keys[role] = load_keys(self.folders.get(role))
                self._signature[role] = sig
                changed = True
        if changed:
            names: dict[bytes, str] = {}
            for role in Role:
                for k, name in keys.get(role, {}).items():
                    names.setdefault(k, name)
            self._keys, self._names = keys, names  # each a single atomic assignment
            self._role_names = {r: frozenset(keys.get(r, {}).values()) for r in Role}
            if not force:
                log.info("allow-lists reloaded: %s",
                         ", ".join(f"{len(keys.get(r, {}))} {r.value}s" for r in Role))
        return changed

    def allowed(self, role: Role, name: str) -> bool:
        """Is a key named ``name`` (a User-Id) still on ``role``'s allow-list?"""
        return name in self._role_names.get(role, ())
