"""Build the rows of the two result tables (:mod:`.schema`) for one input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from semiostream.core.decision import DECISION_THRESHOLD, aggregate_event
from semiostream.core.segment import Segment

from .facts import InputFacts
from .plan import JobPlan
from .schema import INPUT_COLUMNS, WINDOW_COLUMNS, check_row, column_names


def _roi_text(roi: tuple[int, int, int, int] | None) -> str | None:
    return None if roi is None else " ".join(str(int(v)) for v in roi)


def in_segment(seizure_id: str | None) -> bool:
    """Whether an input is a seizure segment: a manifest row (its seizure_id is required there), not a plain file
    or folder scored whole. Only then are its p(TLE) and label a class decision (the model learnt seizures)."""
    return seizure_id is not None


def input_row(job: Segment, *, bundle_id: str, backend: str, plan: JobPlan | None = None,
              probs: np.ndarray | None = None, error: str | None = None, sha256: str | None = None,
              labels: Sequence[str] = ("FLE", "TLE"), threshold: float = DECISION_THRESHOLD,
              facts: InputFacts | None = None, training_data: str = "unknown") -> dict[str, Any]:
    """The inputs-table row of ``job``: scored (``plan`` and ``probs`` ``[N]`` float32) or failed (``error``).

    ``facts``: its kind and person (:mod:`.facts`; None = not gathered); ``training_data``: the bundle's
    :attr:`~semiostream.models.bundle.TrainingData.kind`.
    """
    ev = None
    if error is None:
        if plan is None or probs is None:
            raise ValueError("a scored input needs its plan and probabilities")
        ev = aggregate_event(probs, labels, threshold)
    row = {
        "input_id": job.input_id, "path": str(job.path), "stream": job.stream,
        "patient_id": job.patient_id, "seizure_id": job.seizure_id, "true_label": job.label,
        "onset_s": job.onset, "offset_s": job.offset,
        "first_frame": plan.seg_start if plan else None, "stop_frame": plan.seg_stop if plan else None,
        "num_frames": plan.num_frames if plan else None, "fps": plan.fps if plan else None,
        "fps_from": plan.fps_from if plan else None, "fps_used": plan.rate if plan else None,
        "roi": _roi_text(plan.roi) if plan else (_roi_text(job.roi) if job.roi else None),
        **(facts or InputFacts()).row(),
        "windows": ev.windows if ev else 0,
        "p_tle": ev.p_tle if ev else None, "p_min": ev.p_min if ev else None, "p_max": ev.p_max if ev else None,
        "label": ev.label if ev else None, "error": error,
        "sha256": plan.sha256 if plan else sha256, "bundle_id": bundle_id,
        "training_data": training_data, "backend": backend, "in_segment": in_segment(job.seizure_id),
    }
    return check_row(row, INPUT_COLUMNS)


def window_columns(plan: JobPlan | None = None, probs: np.ndarray | None = None) -> dict[str, list]:
    """The windows-table rows of one input, column-wise (empty for a failed input)."""
    cols: dict[str, list] = {c: [] for c in column_names(WINDOW_COLUMNS)}
    if plan is None or probs is None:
        return cols
    n = plan.num_windows
    p = np.asarray(probs, np.float32).reshape(-1)
    if p.size != n:
        raise ValueError(f"{plan.job.input_id}: {p.size} probabilities for {n} windows")
    job = plan.job
    cols.update({
        "input_id": [job.input_id] * n, "path": [str(job.path)] * n, "stream": [job.stream] * n,
        "window": list(range(n)), "first_frame": plan.first_frames.tolist(), "last_frame": plan.last_frames.tolist(),
        "t_first": plan.t_first.tolist(), "t_last": plan.t_last.tolist(),
        "p_tle": [float(v) for v in p],
    })
    return cols
