"""Event review reports from the live scorer (config ``reports: DIR``).

While an event is open, its :class:`~semiostream.core.evidence.EventEvidence` gathers what its report
shows: the window records (scored, dropped or failed), the first frame with the crop and the detector's
boxes, and the raw frames of the two most decisive windows (largest ``|p - 0.5|``), which the report
preprocesses again and explains with a saliency map. The kept frames count against the global frame
budget; when there is no room they are not kept and the report says so.

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
from pathlib import Path
from typing import Any

from semiostream.core.decision import DECISION_THRESHOLD
from semiostream.core.evidence import EventEvidence

log = logging.getLogger(__name__)

QUEUE_SIZE = 16
REPORT_NICENESS = 10  # Linux: the report thread (and the compute threads it starts) run at lower priority


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
    """Close the event's evidence with its summary (stop time, decision, bundle) and write its report
    (see :mod:`semiostream.review`)."""
    from semiostream.review.report import write_event_report

    data = evidence.closed(summary.stop_t_ns, summary.p_tle, summary.label, summary.bundle_id)
    return write_event_report(data, bundle_dir, folder / evidence.event_id, device=device, threshold=threshold)
