"""Socket monitors never stall libzmq's I/O thread: a burst of connections nobody reads the events of, then a
stop, on real TCP sockets on loopback."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import zmq

from semiostream.bus import monitor

BURST = 1500  # connections: 3000 events (accepted + disconnected), over the 2000 that libzmq queues by default


def _burst(ctx: zmq.Context, server: zmq.Socket, address: str, chunk: int = 250) -> None:
    """BURST connections that each deliver one message to ``server`` and close (in chunks: a context holds
    at most 1023 sockets)."""
    for start in range(0, BURST, chunk):
        socks = []
        for _ in range(min(chunk, BURST - start)):
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            s.connect(address)
            s.send(b"x")
            socks.append(s)
        for _ in socks:  # every connection was made (its message arrived) before it closes
            assert server.poll(10_000), "the server stopped receiving during the burst"
            server.recv_multipart()
        for s in socks:
            s.close()


def _unread_events_scenario() -> None:
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    server.linger = 0
    port = server.bind_to_random_port("tcp://127.0.0.1")
    address = f"tcp://127.0.0.1:{port}"
    reader = monitor.start(server, zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
    try:
        _burst(ctx, server, address)
        # the server still takes new connections and messages, with every event of the burst unread
        client = ctx.socket(zmq.DEALER)
        client.linger = 0
        client.connect(address)
        client.send(b"ping")
        got = []
        deadline = time.monotonic() + 10
        while b"ping" not in got and time.monotonic() < deadline:
            if server.poll(50):
                got.append(server.recv_multipart()[-1])
        assert b"ping" in got, "the server stopped serving connections while its monitor's events were unread"
        client.close()
        assert reader.poll(1000), "the monitor delivered no events"
        # the events of the whole burst are queued, none dropped
        n = 0
        while n < 2 * BURST and reader.poll(2000):
            reader.recv_multipart()
            n += 1
        assert n == 2 * BURST  # accepted and disconnected, per connection of the burst
    finally:
        def teardown():
            monitor.stop(server, reader)
            server.close(linger=0)
            ctx.term()

        stopper = threading.Thread(target=teardown, daemon=True)
        stopper.start()
        stopper.join(10)
        assert not stopper.is_alive(), "stopping the monitor or closing the socket blocked"


def test_unread_events_neither_stall_connections_nor_the_stop():
    # in its own process: a blocked libzmq call holds the GIL, and would hang the test run instead of failing
    try:
        r = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the server or the monitor's stop blocked (libzmq's I/O thread stalled on monitor events)")
    assert r.returncode == 0, r.stdout + r.stderr


def test_stop_after_the_socket_closed_is_harmless():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind("tcp://127.0.0.1:*")
    reader = monitor.start(sock, zmq.EVENT_ACCEPTED)
    sock.close(linger=0)
    monitor.stop(sock, reader)
    assert reader.closed
    ctx.term()


if __name__ == "__main__":
    _unread_events_scenario()
