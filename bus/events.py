"""Seizure events of the live scorer: opened and closed by operators, aggregated from window results.

An event's p(TLE) is the mean of the p(TLE) of every window scored while it was open (the paper's
per-seizure aggregation). Events are written to the results database (:mod:`.store`) as they open,
stop and finish, together with every window scored for them, so a scorer that crashes or restarts
restores its open events: ``event stop`` then closes them with every window scored before and after.
At most ``limits.open_events`` events are open at once.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from semiostream.core.decision import DECISION_THRESHOLD, aggregate_event
from semiostream.core.evidence import EventEvidence, WindowRecord

from .protocol import EventResult
from .store import StoreError

log = logging.getLogger(__name__)


@dataclass
class Event:
    """An open (or closing) event on one bed; ``pending``: its windows still waiting for the model."""

    bed: str
    event_id: str
    start_t_ns: int
    stop_t_ns: int | None = None
    probs: list[float] = field(default_factory=list)
    pending: int = 0
    evidence: EventEvidence | None = None  # gathered for its review report (``reports:`` configured)

    def summary(self, labels: tuple[str, str], bundle_id: str, threshold: float = DECISION_THRESHOLD) -> EventResult:
        """The event's result: its :func:`~semiostream.core.decision.aggregate_event` decision (mean of its
        windows' p) as the ``event/<bed>`` message. No decision when no window was scored, or when a window's
        p is not a probability (logged: the model is broken; a mean with NaN would read as FLE)."""
        decision = None
        if self.probs:
            try:
                decision = aggregate_event(self.probs, labels, threshold)
            except ValueError as e:
                log.error("bed %s: event %s has no decision: %s", self.bed, self.event_id, e)
        return EventResult.of(decision, bed=self.bed, event_id=self.event_id, start_t_ns=self.start_t_ns,
                              stop_t_ns=self.stop_t_ns or 0, bundle_id=bundle_id)


class EventBook:
    """Open and closing events; persisted through ``store`` (a :class:`~.store.ResultStore` or None).

    Args:
        max_open: events open at once; more ``event start`` requests are refused.
        store: results database; its unfinished events are restored here.
    """

    def __init__(self, max_open: int, store=None, evidence: bool = False) -> None:
        self.max_open, self.store, self.with_evidence = max_open, store, evidence
        self.open: dict[str, Event] = {}
        self.closing: list[Event] = []
        if store is not None:
            for ev in store.unfinished_events():
                restored = Event(bed=ev.bed, event_id=ev.event_id, start_t_ns=ev.start_t_ns,
                                 stop_t_ns=ev.stop_t_ns, probs=list(ev.probs))
                if evidence:  # the windows recorded before the restart; their frames died with it
                    restored.evidence = EventEvidence(ev.bed, ev.event_id, ev.start_t_ns, roi_source="full frame",
                                                      windows=[WindowRecord(w["first_seq"], w["last_seq"],
                                                                            w["first_t_ns"], w["last_t_ns"],
                                                                            w["p_tle"], "scored")
                                                               for w in store.windows(ev.event_id)])
                if restored.stop_t_ns is None:
                    self.open[ev.bed] = restored
                else:
                    self.closing.append(restored)
                log.warning("bed %s: event %s restored from the results database (%d windows so far%s)",
                            ev.bed, ev.event_id, len(ev.probs), ", closing" if ev.stop_t_ns else "")

    def start(self, bed: str) -> dict:
        if bed in self.open:
            return {"ok": False, "error": f"an event is already open on {bed}", "event_id": self.open[bed].event_id}
        if len(self.open) >= self.max_open:
            return {"ok": False, "error": f"{len(self.open)} events are open, the limit (limits.open_events); "
                                          "stop one first"}
        ev = Event(bed=bed, event_id=f"{bed}-{uuid.uuid4().hex[:8]}", start_t_ns=time.time_ns())
        if self.with_evidence:
            ev.evidence = EventEvidence(bed, ev.event_id, ev.start_t_ns, roi_source="full frame")
        self.open[bed] = ev
        log.info("bed %s: event %s started", bed, ev.event_id)
        return {"ok": True, "event_id": ev.event_id, **self._persist("open_event", bed, ev.event_id, ev.start_t_ns)}

    def _persist(self, method: str, *args) -> dict:
        """Write through to the store; a failure does not stop the event (scoring goes on), the reply
        carries a warning and the log says why."""
        if self.store is None:
            return {}
        try:
            getattr(self.store, method)(*args)
        except StoreError as e:
            log.error("results database: %s", e)
            return {"warning": f"not recorded in the results database: {e}"}
        return {}

    def stop(self, bed: str) -> dict:
        ev = self.open.get(bed)
        if ev is None:
            return {"ok": False, "error": f"no open event on {bed}"}
        del self.open[bed]
        ev.stop_t_ns = time.time_ns()
        self.closing.append(ev)
        return {"ok": True, "event_id": ev.event_id, "windows_so_far": len(ev.probs), "pending": ev.pending,
                **self._persist("stop_event", ev.event_id, ev.stop_t_ns)}

    def finished(self) -> list[Event]:
        """Closing events whose windows are all scored (removed from the book; publish then
        :meth:`record` their summaries)."""
        done = [ev for ev in self.closing if ev.pending <= 0]
        if done:
            self.closing = [ev for ev in self.closing if ev.pending > 0]
        return done

    def record(self, summary: EventResult) -> None:
        if self.store is not None:
            self.store.finish_event(summary)
        log.info("bed %s: event %s closed, %d windows, p(TLE)=%s", summary.bed, summary.event_id,
                 summary.windows, summary.p_tle)
