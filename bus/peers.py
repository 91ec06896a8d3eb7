"""Per-connection byte budget of the results endpoint: a viewer that sends too much is disconnected.

Why: libzmq stores every subscription a peer sends to an XPUB in a trie *before* the application reads
it (``xpub_t::xread_activated`` adds it to ``_manual_subscriptions`` with ``XPUB_MANUAL``, to
``_subscriptions`` without), one node of ~40-80 bytes per byte after the point where it differs from
the others. 20,000 distinct 1 KB subscriptions from one XSUB on loopback grew a process by ~1.5 GB
(``MAXMSGSIZE`` unset), and the memory stays in the process after the peer leaves. No socket option
bounds the number of subscriptions per peer, and a SUB socket resends all of its subscriptions on every
reconnection.

How: a viewer sends a handful of bytes over its whole connection (ZMTP greeting and READY, or the CURVE
handshake, ~100-700 bytes, and a few subscriptions of < 80 bytes each); it never needs to send more.
The socket monitor reports every accepted connection with its file descriptor
(``EVENT_ACCEPTED``) and every end (``EVENT_DISCONNECTED``/``EVENT_CLOSED``). Before the scorer reads
subscriptions, :meth:`PeerGuard.scan` reads the kernel's count of bytes received on each connection
(``TCP_INFO.tcpi_bytes_received``, Linux >= 4.1) and shuts down (``shutdown(SHUT_RDWR)``) every
connection past ``per_peer`` bytes, then the largest ones while all together are past ``total``. libzmq
then sees the connection end and drops that peer's subscriptions from its trie. Each cut is counted as
a refusal (``subscription_flood``). With ``MAXMSGSIZE`` (set on the socket by :mod:`.endpoints`) no
single subscription can be large, so what the trie holds between two scans is bounded too.

The kernel's count includes bytes not yet read by libzmq, so a flood is cut early, never late. A file
descriptor is identified by its local and peer address when it was accepted; one that was closed and
reused since (by another connection) no longer matches and is forgotten, never shut down.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: offset of ``tcpi_bytes_received`` (u64) in Linux's ``struct tcp_info``
_BYTES_RECEIVED_AT = 128
PER_PEER_BYTES = 16 * 1024
TOTAL_BYTES = 256 * 1024


def _with_fd(fd: int, fn: Callable[[socket.socket], object]) -> object:
    """``fn`` applied to a socket object wrapping ``fd`` without taking ownership (the fd stays open)."""
    s = socket.socket(fileno=fd)
    try:
        return fn(s)
    finally:
        s.detach()


def tcp_bytes_received(sock: socket.socket) -> int | None:
    """Bytes the kernel received on a TCP connection (None where TCP_INFO does not report it)."""
    if not hasattr(socket, "TCP_INFO"):
        return None
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < _BYTES_RECEIVED_AT + 8:
        return None
    return struct.unpack_from("Q", info, _BYTES_RECEIVED_AT)[0]


@dataclass
class _Peer:
    addresses: tuple  # (local, peer) at accept time
    received: int = 0


class PeerGuard:
    """Tracks the accepted connections of one bound TCP socket and cuts those that send too much.

    Args:
        name: endpoint name for refusals and the log (``results``).
        refuse: ``(reason, detail)`` counter of refusals (:class:`~.refusals.Refusals`).
        per_peer: bytes one connection may send over its life.
        total: bytes all tracked connections together may have sent.
    """

    def __init__(self, name: str, refuse: Callable[..., None], per_peer: int = PER_PEER_BYTES,
                 total: int = TOTAL_BYTES) -> None:
        self.name, self.refuse = name, refuse
        self.per_peer, self.total = per_peer, total
        self.peers: dict[int, _Peer] = {}
        self.cut = 0

    def accepted(self, fd: int) -> None:
        try:
            addresses = _with_fd(fd, lambda s: (s.getsockname(), s.getpeername()))
        except OSError:  # already closed: nothing to watch
            return
        self.peers[fd] = _Peer(addresses)

    def ended(self, fd: int) -> None:
        self.peers.pop(fd, None)

    def scan(self) -> int:
        """Cut the connections over budget; returns how many were cut now."""
        if not self.peers:
            return 0
        over = []
        for fd, peer in list(self.peers.items()):
            try:
                addresses, received = _with_fd(fd, lambda s: ((s.getsockname(), s.getpeername()),
                                                              tcp_bytes_received(s)))
            except OSError:  # closed since (its end event is on its way)
                self.peers.pop(fd, None)
                continue
            if addresses != peer.addresses:  # the fd was reused by another connection
                self.peers.pop(fd, None)
                continue
            if received is None:
                continue
            peer.received = received
            if received > self.per_peer:
                over.append(fd)
        left = sorted((p.received, fd) for fd, p in self.peers.items() if fd not in over)
        total = sum(r for r, _ in left)
        while left and total > self.total:
            r, fd = left.pop()
            total -= r
            over.append(fd)
        for fd in over:
            peer = self.peers.pop(fd)
            try:
                _with_fd(fd, lambda s: s.shutdown(socket.SHUT_RDWR))
            except OSError:
                continue
            self.cut += 1
            self.refuse("subscription_flood", f"a peer of the {self.name} endpoint ({peer.addresses[1]}) sent "
                                              f"{peer.received} bytes (a viewer sends < {self.per_peer}); "
                                              "disconnected")
        return len(over)
