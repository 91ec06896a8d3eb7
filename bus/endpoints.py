"""The scorer's three bound sockets, set up so that no peer can wedge, flood or bloat them.

* **frames** (SUB, camera role): receive high-water mark of ``queue_seconds`` of frames per camera;
  ``MAXMSGSIZE`` = the largest frame a bed may send, so a larger message disconnects its sender
  before it is buffered.
* **results** (XPUB, viewer role) with ``XPUB_MANUAL``: every valid subscription (empty, or a prefix of
  ``score/``/``event/`` topics) is granted as one shared "everything" subscription of that peer, and
  subscribers filter on their side (a SUB socket always does). Invalid ones are refused. libzmq itself
  stores every subscription a peer sends before the scorer reads it, so ``MAXMSGSIZE`` keeps each one
  small (a longer one disconnects its sender) and :class:`~.peers.PeerGuard` disconnects a peer that
  sends more than a viewer ever needs (counted as ``subscription_flood``). A slow subscriber loses
  results (send HWM) rather than growing the scorer; the results database keeps every one.
* **control** (ROUTER, operator role): small queues and ``MAXMSGSIZE``; see :mod:`.control`.

Binding happens before the model loads, so a busy port or a bad key is reported in seconds. With
CURVE, a :class:`~.roles.RoleAuthenticator` admits each key only on the sockets of its roles. A monitor
on each socket counts failed handshakes (garbage bytes, wrong keys) as refusals and every connection
that ends (``semiostream_disconnects_total{endpoint}``, ``disconnects`` in status): on the frames
endpoint that is how a camera whose frame exceeds ``MAXMSGSIZE`` shows up (libzmq drops the connection
before the scorer sees the frame), next to cameras that restart or lose their network.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field

import zmq
from zmq.utils.monitor import recv_monitor_message

from semiostream.bus.config import ServiceConfig

from . import monitor
from .bounds import Bounds
from .control import MAX_REQUEST_BYTES
from .peers import PeerGuard
from .protocol import EVENT_PREFIX, FRAME_PREFIX, MAX_HEADER_BYTES, SCORE_PREFIX
from .publisher import hwm_for
from .refusals import Refusals
from .roles import Role, RoleAuthenticator
from .security import SecurityError, ServerSecurity

log = logging.getLogger(__name__)

RESULTS_SNDHWM = 1000  # results queued per subscriber (~0.4 MB); a slower one loses results
RESULTS_RCVHWM = 64  # subscriptions libzmq takes from one peer's connection before the scorer reads them
CONTROL_HWM = 64  # control messages queued per peer, each way
HANDSHAKE_BYTES = 4096  # MAXMSGSIZE also applies to the CURVE handshake commands (HELLO, INITIATE: ~200-400 B)
# the longest valid subscription is b"\x01event/" + a 64-character bed id (72 bytes); the CURVE INITIATE
# command needs more, so the results socket takes messages up to this size
MAX_SUBSCRIPTION_BYTES = 512
_ACCEPTED, _ENDED = zmq.EVENT_ACCEPTED, zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED
_HANDSHAKE_FAILURES = {
    getattr(zmq, "EVENT_HANDSHAKE_FAILED_NO_DETAIL", 0): "handshake",
    getattr(zmq, "EVENT_HANDSHAKE_FAILED_PROTOCOL", 0): "handshake_protocol",
    getattr(zmq, "EVENT_HANDSHAKE_FAILED_AUTH", 0): "handshake_auth",
}
_HANDSHAKE_FAILURES.pop(0, None)


class EndpointError(RuntimeError):
    """An endpoint cannot be bound (port in use, bad address); the message says which and how to fix it."""


def security_of(cfg: ServiceConfig) -> ServerSecurity:
    sec = cfg.security
    return ServerSecurity(sec.secret_key, {Role.CAMERA: sec.cameras, Role.VIEWER: sec.viewers,
                                           Role.OPERATOR: sec.operators}, sec.insecure)


def check_security(cfg: ServiceConfig) -> ServerSecurity:
    """Validate the security settings of every endpoint (keys readable, folders present, no plaintext
    off-loopback without ``insecure``). Raises :class:`~.security.SecurityError`."""
    server = security_of(cfg)
    ep = cfg.endpoints
    for endpoint, role in ((ep.frames, Role.CAMERA), (ep.results, Role.VIEWER), (ep.control, Role.OPERATOR)):
        server.check(endpoint, role)
    return server


def max_frame_payload(cfg: ServiceConfig, bounds: Bounds) -> int:
    sizes = [b.size[0] * b.size[1] for b in (cfg.beds or []) if b.size is not None]
    unsized = cfg.beds is None or any(b.size is None for b in cfg.beds)
    return 2 * max(sizes + ([bounds.frame_pixels] if unsized else []))


@dataclass
class Sockets:
    """The bound sockets (use from one thread at a time) and, with CURVE, the authenticator."""

    ctx: zmq.Context
    frames: zmq.Socket
    results: zmq.Socket
    control: zmq.Socket
    monitors: dict  # monitor PAIR socket -> endpoint name
    auth: RoleAuthenticator | None
    curve: bool
    guard: PeerGuard | None = None  # the results endpoint's per-connection byte budget
    disconnects: dict[str, int] = field(default_factory=dict)  # connections ended, per endpoint
    max_frame_bytes: int = 0

    def poll_monitors(self, refuse: Refusals, events: dict, on_disconnect=None) -> None:
        """Handle the socket monitors' events: count failed handshakes (refusals) and ended connections
        (``on_disconnect(endpoint)``), and keep the results guard's list of connections."""
        for mon, name in self.monitors.items():
            if mon not in events:
                continue
            while True:
                try:
                    msg = recv_monitor_message(mon, flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                event = msg["event"]
                reason = _HANDSHAKE_FAILURES.get(event)
                if reason is not None:
                    refuse(f"{name}_{reason}", f"a peer of the {name} endpoint failed its handshake "
                                               f"({msg.get('endpoint', b'')!r})")
                elif event == _ACCEPTED and name == "results" and self.guard is not None:
                    self.guard.accepted(msg["value"])
                elif event == zmq.EVENT_DISCONNECTED:
                    if name == "results" and self.guard is not None:
                        self.guard.ended(msg["value"])
                    self._disconnected(name, on_disconnect)
                elif event == zmq.EVENT_CLOSED and name == "results" and self.guard is not None:
                    self.guard.ended(msg["value"])

    def _disconnected(self, name: str, on_disconnect) -> None:
        n = self.disconnects[name] = self.disconnects.get(name, 0) + 1
        if on_disconnect is not None:
            on_disconnect(name)
        if name == "frames" and (n & (n - 1)) == 0:  # 1, 2, 4, 8, ...: a bounded log
            log.warning("a camera's connection to the frames endpoint ended (%d so far): it closed or "
                        "restarted, its network failed, or it sent a message over %d bytes (larger than "
                        "any configured bed's frame), which disconnects it", n, self.max_frame_bytes)

    def grant_subscriptions(self, refuse: Refusals, budget: int = 256, scan_every: int = 16) -> None:
        """Read subscription messages from the results XPUB and grant or refuse them (see module doc);
        the guard cuts connections over their byte budget before every ``scan_every`` messages."""
        for i in range(budget):
            if self.guard is not None and i % scan_every == 0:
                self.guard.scan()
            try:
                msg = self.results.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x00":
                continue  # unsubscription: the shared subscription goes when the peer disconnects
            topic = msg[1:]
            valid = msg[:1] == b"\x01" and any(topic.startswith(p) or p.startswith(topic)
                                               for p in (SCORE_PREFIX, EVENT_PREFIX))
            if valid:
                self.results.setsockopt(zmq.SUBSCRIBE, b"")
            else:
                refuse("subscription", f"results subscription {msg[:40]!r} is not a score/ or event/ topic")

    def close(self) -> None:
        for mon, name in self.monitors.items():
            monitor.stop(getattr(self, name), mon)  # before the monitored socket closes (bus/monitor.py)
        for s in (self.frames, self.results, self.control):
            s.close(linger=0)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()


def _bind(sock: zmq.Socket, endpoint: str, field: str) -> None:
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        if e.errno == errno.EADDRINUSE:
            raise EndpointError(f"endpoints.{field} {endpoint} is already in use (is another scorer running?); "
                                f"stop it or choose another port") from None
        raise EndpointError(f"endpoints.{field} {endpoint} cannot be bound: {e.strerror}") from None


def bind_sockets(cfg: ServiceConfig, bounds: Bounds, refuse: Refusals, subscribe_beds: list[str] | None) -> Sockets:
    """Check security, then bind frames/results/control. Raises SecurityError or EndpointError.

    Args:
        subscribe_beds: frame topics to subscribe to (``ir/<bed>`` each), or None for every bed.
    """
    server = check_security(cfg)
    ctx = zmq.Context()
    socks: list[zmq.Socket] = []
    auth = None
    try:
        if server.curve:
            def refused_key(role: Role, fp: str, first: bool) -> None:
                refuse(f"key_{role.value}", f"{role.value} key {fp} is not on the {role.value}s allow-list"
                       + ("" if first else " (again)"))

            auth = RoleAuthenticator(ctx, {r: server.roles.get(r) for r in Role}, refused_key)
            auth.start()
        ep = cfg.endpoints
        frames = ctx.socket(zmq.SUB)
        socks.append(frames)
        frames.rcvhwm = hwm_for(cfg.fps, cfg.queue_seconds)
        frames.linger = 0
        max_frame = max(HANDSHAKE_BYTES, MAX_HEADER_BYTES, max_frame_payload(cfg, bounds))
        frames.setsockopt(zmq.MAXMSGSIZE, max_frame)
        server.apply(frames, Role.CAMERA)
        for bed in ([None] if subscribe_beds is None else sorted(subscribe_beds)):
            frames.setsockopt(zmq.SUBSCRIBE, FRAME_PREFIX + (bed.encode() if bed else b""))
        results = ctx.socket(zmq.XPUB)
        socks.append(results)
        results.linger = 0
        results.sndhwm = RESULTS_SNDHWM
        results.rcvhwm = RESULTS_RCVHWM
        results.setsockopt(zmq.XPUB_MANUAL, 1)
        results.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
        server.apply(results, Role.VIEWER)
        control = ctx.socket(zmq.ROUTER)
        socks.append(control)
        control.linger = 0
        control.sndhwm = control.rcvhwm = CONTROL_HWM
        control.setsockopt(zmq.MAXMSGSIZE, max(HANDSHAKE_BYTES, MAX_REQUEST_BYTES + 64))
        server.apply(control, Role.OPERATOR)
        monitors = {}
        for sock, name in ((frames, "frames"), (results, "results"), (control, "control")):
            mon = monitor.start(sock, sum(_HANDSHAKE_FAILURES) | _ACCEPTED | _ENDED)
            socks.append(mon)
            monitors[mon] = name
        _bind(frames, ep.frames, "frames")
        _bind(results, ep.results, "results")
        _bind(control, ep.control, "control")
    except BaseException:
        for s in socks:
            s.close(linger=0)
        if auth is not None:
            auth.stop()
        ctx.term()
        raise
    return Sockets(ctx, frames, results, control, monitors, auth, server.curve, PeerGuard("results", refuse),
                   max_frame_bytes=max_frame)


__all__ = ["EndpointError", "SecurityError", "Sockets", "bind_sockets", "check_security"]
