"""Results subscriber and control client (used by ``semiostream watch``, ``event``, ``status`` and the demo).

Both watch their connection (:class:`~.connection.ConnectionWatch`), so a viewer or operator whose key
the scorer refuses, or who points at a port where no scorer listens, is told so instead of waiting
on an empty table or a reply that never comes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import zmq

from .connection import ConnectionWatch, check_endpoint
from .protocol import EVENT_PREFIX, SCORE_PREFIX, EventResult, ProtocolError, ScoreResult, decode_result
from .security import ClientSecurity


class ResultsSubscriber:
    """SUB socket on a scorer's results endpoint; :meth:`poll` returns decoded results."""

    def __init__(self, endpoint: str, security: ClientSecurity | None = None,
                 context: zmq.Context | None = None) -> None:
        security = security or ClientSecurity()
        check_endpoint(endpoint, "results endpoint")
        security.check(endpoint)
        self.endpoint = endpoint
        self._sock = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._sock.linger = 0
        security.apply(self._sock)
        self._sock.setsockopt(zmq.SUBSCRIBE, SCORE_PREFIX)
        self._sock.setsockopt(zmq.SUBSCRIBE, EVENT_PREFIX)
        self.connection = ConnectionWatch(self._sock, endpoint, "viewer", security)
        self._sock.connect(endpoint)
        self.bad = 0

    def poll(self, timeout_ms: int = 100) -> list[ScoreResult | EventResult]:
        out: list[ScoreResult | EventResult] = []
        if not self._sock.poll(timeout_ms):
            return out
        while True:
            try:
                parts = self._sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return out
            try:
                out.append(decode_result(parts))
            except ProtocolError:
                self.bad += 1

    def wait_for_scorer(self, timeout_s: float = 5.0) -> str | None:
        """None once the scorer accepted this subscriber (at most ``timeout_s``), else what is wrong."""
        self.connection.wait(timeout_s)
        return self.connection.problem()

    def close(self) -> None:
        self.connection.close()
        self._sock.close(linger=0)


class ControlClient:
    """REQ client of a scorer's control endpoint. Each call returns the JSON reply (dict); a request
    that gets no reply returns ``{"ok": False, "error": ...}`` saying why (no scorer there, key refused
    as an operator, or no reply in time)."""

    def __init__(self, endpoint: str, security: ClientSecurity | None = None, timeout_s: float = 5.0,
                 context: zmq.Context | None = None) -> None:
        check_endpoint(endpoint, "control endpoint")
        self.endpoint, self.timeout_ms = endpoint, int(timeout_s * 1000)
        self.security = security or ClientSecurity()
        self.security.check(endpoint)
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self.connection: ConnectionWatch | None = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            s = self._ctx.socket(zmq.REQ)
            s.linger = 0
            s.rcvtimeo = s.sndtimeo = self.timeout_ms
            self.security.apply(s)
            self.connection = ConnectionWatch(s, self.endpoint, "operator", self.security)
            s.connect(self.endpoint)
            self._sock = s
        return self._sock

    def request(self, text: str) -> dict:
        sock = self._socket()
        try:
            sock.send(text.encode())
            return json.loads(sock.recv())
        except zmq.Again:
            problem = self.connection.problem() if self.connection is not None else None
            self.close()  # a REQ socket that timed out cannot be reused
            return {"ok": False, "error": problem or f"no reply from {self.endpoint} within {self.timeout_ms} ms"}

    def event(self, action: str, bed: str) -> dict:
        return self.request(f"event {action} {bed}")

    def status(self) -> dict:
        return self.request("status")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None


@dataclass
class BedRow:
    """What the table knows of one bed. ``p_tle``/``label``/``p_event``: the latest window scored inside an
    event (``p_event`` its id), None outside events; ``windows``: every window scored, in an event or not."""

    p_tle: float | None = None
    label: str | None = None
    latency_ms: float | None = None
    last_result: float = 0.0
    windows: int = 0
    last_seq: int | None = None
    event: str | None = None
    p_event: str | None = None


def open_event(row: BedRow, status: dict | None) -> str | None:
    """The event open on a bed: the scorer's status says so when it was read, else the latest window."""
    return status.get("event") if status else row.event


def shown_class(row: BedRow, status: dict | None) -> tuple[float, str] | None:
    """(p(TLE), label) to show for a bed, or None: a class is shown only inside an open event, from a window
    scored for that event. The classifier learnt seizures only, so the p(TLE) of a window outside an event
    (a sleeping patient) is no decision and is never shown."""
    ev = open_event(row, status)
    if ev is None or row.p_event != ev or row.p_tle is None:
        return None
    return row.p_tle, row.label


@dataclass
class LiveTable:
    """Latest result per bed plus the scorer's status (staleness, drops), rendered with rich.

    A bed outside an open event shows that it streams and is scored (windows, last sequence number, age),
    never a class or a probability; inside an event, the latest window's p(TLE) and label."""

    rows: dict[str, BedRow] = field(default_factory=dict)
    events: list[EventResult] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    notice: str | None = None  # why the table is empty or stale (connection, no bed streaming ...)

    def update(self, results: list[ScoreResult | EventResult]) -> None:
        now = time.monotonic()
        for r in results:
            if isinstance(r, EventResult):
                self.events.append(r)
                row = self.rows.get(r.bed)
                if row is not None and row.p_event == r.event_id:  # closed: its summary is printed
                    row.p_tle = row.label = row.p_event = None
                continue
            row = self.rows.setdefault(r.bed, BedRow())
            row.latency_ms, row.last_result, row.last_seq, row.event = r.latency_ms, now, r.last_seq, r.event_id
            row.windows += 1
            if r.event_id is not None:
                row.p_tle, row.label, row.p_event = r.p_tle, r.label, r.event_id
            else:  # outside an event: scored, no decision
                row.p_tle = row.label = row.p_event = None

    def render(self):
        from rich.table import Table

        t = Table(title="semiostream: live beds (a class only during an event)", expand=False)
        for col in ("bed", "state", "p(TLE)", "label", "windows", "latency ms", "last seq", "age s", "gaps"):
            t.add_column(col, justify="right" if col not in ("bed", "state", "label") else "left")
        now = time.monotonic()
        beds_status = self.status.get("beds", {})
        for bed in sorted(set(self.rows) | set(beds_status)):
            row = self.rows.get(bed, BedRow())
            st = beds_status.get(bed)
            ev = open_event(row, st)
            shown = shown_class(row, st)
            st = st or {}
            age = st.get("age_s")
            stale = " (stale)" if st.get("stale") else ""
            if ev is not None:
                state = f"event {ev}" + ("" if shown else " (no window scored yet)")
            else:
                state = "scored, no event" if row.windows else "streaming"
            t.add_row(
                bed, state,
                "-" if shown is None else f"{shown[0]:.3f}",
                "-" if shown is None else shown[1],
                str(row.windows),
                "-" if row.latency_ms is None else f"{row.latency_ms:.0f}",
                "-" if row.last_seq is None else str(row.last_seq),
                (f"{age:.1f}" if age is not None else f"{now - row.last_result:.1f}") + stale,
                str(st.get("gaps", "-")),
            )
        caption = []
        if self.notice:
            caption.append(self.notice)
        dropped = self.status.get("dropped")
        if dropped:
            caption.append("dropped: " + ", ".join(f"{k}={v}" for k, v in sorted(dropped.items())))
        if caption:
            t.caption = "\n".join(caption)
        return t

    def explain(self, results_problem: str | None, status_problem: str | None, endpoint: str,
                status_asked: bool = True) -> str | None:
        """Set and return :attr:`notice`: why no (new) row appears, or None when results are flowing.

        Args:
            results_problem: what is wrong with the results connection, or None.
            status_problem: why the scorer's status could not be read, or None.
            endpoint: the results endpoint (for messages).
            status_asked: False when no control endpoint is used (no status to explain with).
        """
        if results_problem is not None:
            self.notice = results_problem
        elif self.rows:
            self.notice = None if status_problem is None else f"bed status unavailable: {status_problem}"
        elif not status_asked:
            self.notice = (f"connected to the scorer at {endpoint}; no window scored yet (give --control and an "
                           "operator key to see which beds stream)")
        elif status_problem is not None:
            self.notice = (f"connected to the scorer at {endpoint}; no window scored yet (bed status "
                           f"unavailable: {status_problem})")
        elif not self.status.get("beds"):
            self.notice = (f"connected to the scorer at {endpoint}; no camera is streaming to it yet "
                           "(start one with `semiostream publish`)")
        else:
            n = len(self.status["beds"])
            self.notice = f"connected; {n} bed{'s' if n > 1 else ''} streaming, waiting for the first scored window"
        return self.notice
