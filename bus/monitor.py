"""Socket monitors that can always be stopped.

libzmq raises a socket's monitor events (accepted, disconnected, handshake failed ...) from its I/O thread with
a *blocking* send on an inproc PAIR, holding the monitor's lock. Two things can then stall that I/O thread, and
every connection it serves, for good:

- the reader PAIR is closed first: the event has no peer to go to, and ``disable_monitor`` (or ``ctx.term``)
  then waits forever for the lock;
- the reader's queue reaches its high-water mark (a burst of connections between two polls).

So the reader here has no high-water mark (its owner drains it every loop; events are a few dozen bytes and
arrive no faster than connections do), and :func:`stop` disables the monitor while the reader is still open,
then closes the reader.
"""

from __future__ import annotations

import uuid

import zmq


def start(sock: zmq.Socket, events: int) -> zmq.Socket:
    """Monitor ``sock`` for ``events`` (a ``zmq.EVENT_*`` mask); returns the PAIR socket to read them from."""
    address = f"inproc://semiostream-monitor-{uuid.uuid4().hex}"  # unique: fds and ids are reused
    sock.monitor(address, events)
    reader = sock.context.socket(zmq.PAIR)
    reader.linger = 0
    reader.rcvhwm = 0  # never full: a full queue blocks libzmq's I/O thread (see the module doc)
    reader.connect(address)
    return reader


def stop(sock: zmq.Socket, reader: zmq.Socket) -> None:
    """Stop monitoring ``sock`` and close ``reader``, in the order that cannot block (see the module doc)."""
    try:
        sock.monitor(None, 0)
    except zmq.ZMQError:
        pass  # already closed or the context is terminating: nothing is monitored any more
    reader.close(linger=0)
