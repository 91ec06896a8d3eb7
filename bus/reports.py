"""Event review reports from the live scorer (config ``reports: DIR``).

While an event is open, :class:`EventEvidence` gathers what its report shows: the window records
(scored, dropped or failed), the first frame with the crop and the detector's boxes, and the raw
frames of the two most decisive windows (largest ``|p - 0.5|``), which the report preprocesses again
and explains with a saliency map. The kept frames count against the global frame budget; when there
is no room they are not kept and the report says so.

When the event closes, :class:`ReportWriter` writes ``DIR/<event_id>/index.html`` in a background
thread (:func:`semiostream.review.report.write_event_report`), one report at a time and at a lower
scheduling priority, so neither the socket loop nor live scoring waits for plotting or saliency. Its
path is known at once: it goes into the ``event/<bed>`` message and the results database, and the
folder appears when the report is complete (written to a temporary folder, then renamed).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semiostream.core.decision import DECISION_THRESHOLD

log = logging.getLogger(__name__)

DECISIVE_KEPT = 2
MAX_WINDOW_RECORDS = 100_000  # about 55 h of 2-s windows per event
QUEUE_SIZE = 16
REPORT_NICENESS = 10  # Linux: the report thread (and the compute threads it starts) run at lower priority


@dataclass
class WindowNote:
    first_seq: int
    last_seq: int
    first_t_ns: int
    last_t_ns: int
    p_tle: float | None
    status: str  # scored | dropped | failed


@dataclass
class KeptWindow:
    margin: float  # |p - 0.5|
    p_tle: float
    first_seq: int
    first_t_ns: int
    frames: np.ndarray  # [T, H, W] uint16, the raw window
    roi: tuple[int, int, int, int] | None
    intensity: tuple[float, float] | None  # the raw (lo, hi) the scorer held for it, or None


@dataclass
class EventEvidence:
    """What one open event's report needs, gathered by the scorer (bounded; see the module doc)."""

    bed: str
    event_id: str
    start_t_ns: int
    windows: list[WindowNote] = field(default_factory=list)
    first_frame: np.ndarray | None = None  # [H, W] uint16
    roi: tuple[int, int, int, int] | None = None
    roi_source: str = "full frame"
    detections: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    decisive: list[KeptWindow] = field(default_factory=list)  # most decisive first

    def note(self, record: WindowNote) -> None:
        if len(self.windows) < MAX_WINDOW_RECORDS:
            self.windows.append(record)

    def offer(self, p: float, first_seq: int, first_t_ns: int, frames: np.ndarray, roi, intensity, hold) -> int:
        """Keep ``frames`` (``[T, H, W]`` uint16) if they are among the most decisive; ``hold(nbytes) ->
        bool`` reserves memory (False: no room). Returns the bytes released (of a window pushed out)."""
        margin = abs(p - 0.5)
        if len(self.decisive) >= DECISIVE_KEPT and margin <= self.decisive[-1].margin:
            return 0
        if not hold(frames.nbytes):
            return 0
        self.decisive.append(KeptWindow(margin, p, first_seq, first_t_ns, frames, roi, intensity))
        self.decisive.sort(key=lambda d: -d.margin)
        released = 0
        while len(self.decisive) > DECISIVE_KEPT:
            released += self.decisive.pop().frames.nbytes
        return released

    def held_bytes(self) -> int:
        return sum(d.frames.nbytes for d in self.decisive)


class ReportWriter:
    """Writes event reports in one background thread from a bounded queue.

    Args:
        folder: the reports folder (created).
        bundle_dir: the bundle whose model card and models the reports use.
        device: ``"cpu"`` or ``"cuda"`` for the saliency computation.
        threshold: the decision threshold the events were labelled with (the service's ``threshold``).
    """

    def __init__(self, folder: Path, bundle_dir: Path, device: str = "cpu",
                 threshold: float = DECISION_THRESHOLD) -> None:
        self.folder, self.bundle_dir, self.device = Path(folder), Path(bundle_dir), device
        self.threshold = threshold
        self.folder.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self.written: list[Path] = []
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="semiostream-reports", daemon=True)
        self._thread.start()

    def path_for(self, event_id: str) -> Path:
        return self.folder / event_id / "index.html"

    def submit(self, evidence: EventEvidence, summary: Any, release) -> bool:
        """Queue the report of a closed event; ``release(nbytes)`` is called once its frames are no
        longer needed. False (and released at once) when the queue is full."""
        try:
            self._queue.put_nowait((evidence, summary, release))
            return True
        except queue.Full:
            release(evidence.held_bytes())
            log.error("event %s: report not written, %d reports are already waiting", evidence.event_id,
                      QUEUE_SIZE)
            return False

    def _run(self) -> None:
        try:  # below the scoring threads: a report (saliency) must not starve live windows of CPU
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REPORT_NICENESS)
        except (AttributeError, OSError):
            pass
        while True:
            item = self._queue.get()
            if item is None:
                return
            evidence, summary, release = item
            try:
                path = write_report(evidence, summary, self.bundle_dir, self.folder, self.device, self.threshold)
                self.written.append(path)
                log.info("event %s: report %s", evidence.event_id, path)
            except Exception:
                self.failed += 1
                log.exception("event %s: the report could not be written", evidence.event_id)
            finally:
                release(evidence.held_bytes())
                evidence.decisive.clear()
                self._queue.task_done()

    def join(self, timeout: float = 60.0) -> None:
        """Wait (at most ``timeout`` s) until the queued reports are written."""
        end = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.05)

    def close(self, timeout: float = 60.0) -> None:
        self.join(timeout)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout)


def write_report(evidence: EventEvidence, summary: Any, bundle_dir: Path, folder: Path, device: str,
                 threshold: float = DECISION_THRESHOLD) -> Path:
    """Convert the scorer's evidence to the report's and write it (see :mod:`semiostream.review`)."""
    from semiostream.review import evidence as ev
    from semiostream.review.report import write_event_report

    decisive = [ev.DecisiveWindow(frames=d.frames, roi=d.roi, p_tle=d.p_tle, first_seq=d.first_seq,
                                  first_t_ns=d.first_t_ns, intensity=d.intensity) for d in evidence.decisive]
    data = ev.EventEvidence(
        bed=evidence.bed, event_id=evidence.event_id, start_t_ns=evidence.start_t_ns, stop_t_ns=summary.stop_t_ns,
        windows=[ev.WindowRecord(first_seq=w.first_seq, last_seq=w.last_seq, first_t_ns=w.first_t_ns,
                                 last_t_ns=w.last_t_ns, p_tle=w.p_tle, status=w.status) for w in evidence.windows],
        p_tle=summary.p_tle, label=summary.label, bundle_id=summary.bundle_id, first_frame=evidence.first_frame,
        roi=evidence.roi, roi_source=evidence.roi_source, detections=list(evidence.detections), decisive=decisive,
        notes=list(evidence.notes),
    )
    return write_event_report(data, bundle_dir, folder / evidence.event_id, device=device, threshold=threshold)
