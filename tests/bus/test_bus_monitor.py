"""Socket monitors never stall libzmq's I/O thread: a burst of connections nobody reads the events of, then a
stop, on real TCP sockets on loopback."""

from __future__ import annotations

import threading

import zmq

from semiostream.bus import monitor

BURST = 700  # connections: 1400 events (accepted + disconnected), over libzmq's default queue of 1000


def _burst(ctx: zmq.Context, address: str) -> None:
    for _ in range(BURST):
        s = ctx.socket(zmq.DEALER)
        s.linger = 0
        s.connect(address)
        s.send(b"x")
        s.close(linger=2000)  # the message goes out: the connection is made, then ends


def test_unread_events_neither_stall_connections_nor_the_stop():
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    server.linger = 0
    port = server.bind_to_random_port("tcp://127.0.0.1")
    address = f"tcp://127.0.0.1:{port}"
    reader = monitor.start(server, zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
    try:
        _burst(ctx, address)
        # the server still takes new connections and messages, with every event of the burst unread
        client = ctx.socket(zmq.DEALER)
        client.linger = 0
        client.connect(address)
        client.send(b"ping")
        got = set()
        poller = zmq.Poller()
        poller.register(server, zmq.POLLIN)
        deadline_polls = 200
        while b"ping" not in got and deadline_polls:
            deadline_polls -= 1
            if poller.poll(50):
                got.add(server.recv_multipart()[-1])
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

        stopper = threading.Thread(target=teardown, daemon=True)  # a blocked libzmq cannot hang the suite
        stopper.start()
        stopper.join(10)
        assert not stopper.is_alive(), "stopping the monitor or closing the socket blocked"


def test_stop_after_the_socket_closed_is_harmless():
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind("tcp://127.0.0.1:*")
    reader = monitor.start(sock, zmq.EVENT_ACCEPTED)
    sock.close(linger=0)
    monitor.stop(sock, reader)
    assert reader.closed
    ctx.term()
