"""What a clinician needs to judge an input's result, gathered while it is planned: its kind and its person.

* the **kind** of picture (:func:`semiostream.sources.input_kind.path_kind`: ``16-bit gray``,
  ``8-bit gray``, ``8-bit colour`` ...) with the stored format it was read from;
* whether the ROI detector found a **person** on the segment's first frame, and its best score: recorded
  whenever a detector ran (``--detector yolox|maskrcnn`` on an input without a manifest ROI), null
  otherwise. An input too short to score is still looked at, so its row says whether anyone was there.

:func:`plan_with_facts` wraps :func:`~.plan.plan_job`: the detector is handed to the planner behind a
recorder that keeps its choice, so detection runs once per input, exactly as the crop is chosen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from semiostream.core.segment import Segment

from .plan import JobPlan, PlanError, open_job, plan_job


@dataclass(frozen=True)
class InputFacts:
    """``kind``/``kind_detail`` (None: not inspectable) and ``person_found``/``person_score`` (None: no
    detector ran; ``person_score`` also None when no person was found)."""

    kind: str | None = None
    kind_detail: str | None = None
    person_found: bool | None = None
    person_score: float | None = None

    def row(self) -> dict[str, Any]:
        """The inputs-table cells (:mod:`.schema`)."""
        return {"kind": self.kind, "kind_detail": self.kind_detail, "person_found": self.person_found,
                "person_score": self.person_score}


class _Recorder:
    """A detector that keeps the :class:`~semiostream.detectors.base.RoiChoice` it returned."""

    def __init__(self, detector: Any) -> None:
        self.detector, self.choice = detector, None

    def locate(self, frame: Any) -> Any:
        self.choice = self.detector.locate(frame)
        return self.choice


def _person(choice: Any) -> tuple[bool | None, float | None]:
    if choice is None:
        return None, None
    person = getattr(choice, "person", None)
    return (person is not None), (None if person is None else round(float(person.score), 4))


def _kind(job: Segment) -> tuple[str | None, str | None]:
    from semiostream.sources.input_kind import path_kind

    k = path_kind(job.path)
    return (None, None) if k is None else (k.kind, k.detail)


def plan_with_facts(job: Segment, key: str, sha256: str, spec: Any, hop: int | None = None,
                    detector: Any | None = None, detector_lock: threading.Lock | None = None
                    ) -> tuple[JobPlan | None, InputFacts, BaseException | None]:
    """``(plan or None, facts, error or None)`` of one job (arguments as :func:`~.plan.plan_job`).

    The facts are gathered even when planning fails: the kind whenever the file can be inspected, the
    person whenever the planner failed after its video opened (too short, segment outside the video)
    and a detector is configured for the job.
    """
    rec = _Recorder(detector) if detector is not None and job.roi is None else None
    plan, error = None, None
    try:
        plan = plan_job(job, key, sha256, spec, hop, rec or detector, detector_lock)
    except Exception as e:  # the caller turns it into an error row
        error = e
        if isinstance(e, PlanError) and rec is not None and rec.choice is None:
            rec.choice = _detect_first(job, rec.detector, detector_lock)
    kind, detail = _kind(job)
    found, score = _person(rec.choice if rec is not None else None)
    return plan, InputFacts(kind, detail, found, score), error


def _detect_first(job: Segment, detector: Any, lock: threading.Lock | None) -> Any:
    """The detector's choice on the first frame of a job's segment (or of the video), None if unreadable."""
    try:
        with open_job(job) as src:
            at = 0 if job.onset is None else min(int(round(job.onset * src.fps)), src.num_frames - 1)
            frame = src.read(at, at + 1)[0]
        with lock or threading.Lock():
            return detector.locate(frame)
    except Exception:  # noqa: BLE001 - the row already carries the planning error
        return None
