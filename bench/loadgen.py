"""Load generator for the bus benchmarks: synthetic bed cameras in separate processes.

Cameras are separate processes in a ward, so they are here too: publishers in the scorer's process would
share its GIL and turn a scorer benchmark into a publisher benchmark. Each process
(:func:`publisher_process`) drives ``k`` beds with one :class:`~semiostream.bus.publisher.Publisher`
each (the real one: PUB socket, byte-bounded send queue, capture time stamped at send), sending one frame
per bed every ``1/fps`` seconds from a pre-rendered SYNTHETIC clip (not patient data). It reports what it
sent and dropped and how far behind its schedule it fell, so a result can say whether the publishers or
the receiver were the limit.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field


@dataclass
class LoadReport:
    """What the publisher processes did (summed over processes; per-bed numbers in ``beds``)."""

    processes: int
    beds: dict[str, dict] = field(default_factory=dict)
    max_lag_s: float = 0.0
    late_ticks: int = 0
    ticks: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(b["sent"] for b in self.beds.values())

    @property
    def dropped(self) -> int:
        return sum(b["dropped"] for b in self.beds.values())

    def to_dict(self) -> dict:
        return {"processes": self.processes, "sent": self.sent, "dropped_at_publisher": self.dropped,
                "late_ticks": self.late_ticks, "ticks": self.ticks, "max_lag_s": self.max_lag_s,
                "errors": self.errors}


def publisher_process(endpoint: str, beds: list[str], fps: float, seconds: float, width: int, height: int,
                      queue_seconds: float, ready, go, out, start_delay_s: float = 0.0) -> None:
    """Body of one publisher process (module level so that ``spawn`` can import it)."""
    try:
        import zmq

        from semiostream.bus.publisher import Publisher, synthetic_frames

        ctx = zmq.Context()
        clip = list(synthetic_frames("TLE", seed=len(beds), width=width, height=height, fps=fps, seconds=2.0,
                                     loop=False))
        pubs = [Publisher(endpoint, bed, fps=fps, queue_seconds=queue_seconds, context=ctx) for bed in beds]
        ready.put(("ready", None))
        go.wait(120)
        time.sleep(start_delay_s)
        period = 1.0 / fps
        n = max(1, round(seconds * fps))
        t0 = time.monotonic()
        max_lag, late = 0.0, 0
        for k in range(n):
            delay = t0 + k * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                max_lag = max(max_lag, -delay)
                late += -delay > period
            for i, p in enumerate(pubs):
                p.send(clip[(k + 7 * i) % len(clip)])
        time.sleep(0.2)  # let the queues drain before the sockets close
        stats = {p.bed: {"sent": p.stats.sent, "dropped": p.stats.dropped, "last_seq": p.seq - 1} for p in pubs}
        for p in pubs:
            p.close()
        ctx.term()
        out.put(("done", {"beds": stats, "max_lag_s": max_lag, "late_ticks": late, "ticks": n}))
    except BaseException as e:  # reported to the parent, which decides
        ready.put(("error", f"{type(e).__name__}: {e}"))
        out.put(("error", f"{type(e).__name__}: {e}"))


class CameraFleet:
    """``beds`` synthetic cameras spread over ``processes`` publisher processes.

    ``start()`` spawns them and waits until every socket is connected; ``go()`` starts sending;
    ``join()`` waits for the end and returns a :class:`LoadReport`. With ``stagger_s``, process ``i`` of
    ``n`` starts ``i * stagger_s / n`` seconds after ``go()`` (independent cameras are not in phase; 0 = all
    at once, the worst case for a scorer since every bed's window then completes at the same moment).
    """

    def __init__(self, endpoint: str, beds: list[str], fps: float = 30.0, seconds: float = 10.0,
                 width: int = 512, height: int = 424, processes: int | None = None,
                 queue_seconds: float = 2.0, stagger_s: float = 0.0) -> None:
        self.beds = list(beds)
        nproc = max(1, min(processes or len(self.beds), len(self.beds)))
        self.groups = [self.beds[i::nproc] for i in range(nproc)]
        ctx = mp.get_context("spawn")
        self._ready, self._out, self._go = ctx.Queue(), ctx.Queue(), ctx.Event()
        self._procs = [ctx.Process(target=publisher_process, daemon=True, name=f"bench-cameras-{i}",
                                   args=(endpoint, g, fps, seconds, width, height, queue_seconds,
                                         self._ready, self._go, self._out, i * stagger_s / nproc))
                       for i, g in enumerate(self.groups)]
        self.seconds = seconds + stagger_s

    def start(self, timeout: float = 120.0) -> CameraFleet:
        for p in self._procs:
            p.start()
        deadline = time.monotonic() + timeout
        for _ in self._procs:
            kind, msg = self._ready.get(timeout=max(0.1, deadline - time.monotonic()))
            if kind == "error":
                self.stop()
                raise RuntimeError(f"a publisher process failed to start: {msg}")
        time.sleep(0.3)  # PUB connects are asynchronous: let the handshakes finish
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def go(self) -> None:
        self._go.set()

    def join(self, timeout: float | None = None) -> LoadReport:
        rep = LoadReport(processes=len(self._procs))
        deadline = time.monotonic() + (timeout if timeout is not None else self.seconds + 60)
        for _ in self._procs:
            try:
                kind, msg = self._out.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                rep.errors.append("a publisher process did not report back in time")
                break
            if kind == "error":
                rep.errors.append(msg)
                continue
            rep.beds.update(msg["beds"])
            rep.max_lag_s = max(rep.max_lag_s, msg["max_lag_s"])
            rep.late_ticks += msg["late_ticks"]
            rep.ticks += msg["ticks"]
        self.stop()
        return rep

    def stop(self) -> None:
        self._go.set()
        for p in self._procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
