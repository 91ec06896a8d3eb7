"""The event decision: one rule from a probability to a label, used by every part that labels.

A score ``p`` is p(``labels[1]``) (p(TLE)); it is decided ``labels[1]`` when ``p >= threshold``, else
``labels[0]``. The live scorer (windows and events), the archive scorer and the trainer's metrics all
decide through this module, so a threshold means the same everywhere. An event's (a seizure's) decision is
one :class:`EventDecision`: the mean of its windows' p(TLE), decided by the same rule (:func:`aggregate_event`).
Imports nothing of this project.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DECISION_THRESHOLD = 0.5
"""Default threshold on p(TLE) (a probability in [0, 1])."""


def positive(p: float | np.ndarray, threshold: float = DECISION_THRESHOLD) -> np.ndarray:
    """``p >= threshold`` as int64 class indices (1 = ``labels[1]``), same shape as ``p`` (scalar or ``[N]``)."""
    return (np.asarray(p, dtype=np.float64) >= threshold).astype(np.int64)


def decide(p: float, labels: Sequence[str], threshold: float = DECISION_THRESHOLD) -> str:
    """The label of one score ``p`` in [0, 1]: ``labels[1]`` if ``p >= threshold`` else ``labels[0]``."""
    return labels[int(positive(p, threshold))]


@dataclass(frozen=True)
class EventDecision:
    """The decision on one event (a seizure): its windows' p(TLE) aggregated the paper's way.

    Attributes:
        p_tle: mean p(``labels[1]``) over the event's scored windows, in [0, 1].
        label: :func:`decide` of ``p_tle``.
        windows: number of scored windows.
        threshold: the threshold it was decided with.
        p_min, p_max: the smallest and largest window p(TLE).
    """

    p_tle: float
    label: str
    windows: int
    threshold: float
    p_min: float
    p_max: float


def aggregate_event(probs: Sequence[float] | np.ndarray, labels: Sequence[str] = ("FLE", "TLE"),
                 threshold: float = DECISION_THRESHOLD) -> EventDecision:
    """Aggregate window probabilities ``[N]`` (p of ``labels[1]``) into an :class:`EventDecision`.

    Raises:
        ValueError: no windows, probabilities outside [0, 1] or NaN, or not exactly two labels.
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.size == 0:
        raise ValueError("an event needs at least one scored window; it had none (all shorter than min_frames?)")
    if not np.all((p >= 0) & (p <= 1)):
        bad = p[~((p >= 0) & (p <= 1))]
        raise ValueError(f"window probabilities must lie in [0, 1]; got {bad[:5].tolist()} "
                         "(NaN or out of range: the model or the engine is broken; run semiostream verify)")
    if len(labels) != 2:
        raise ValueError(f"need two labels (negative, positive), got {list(labels)}")
    mean = float(p.mean())
    return EventDecision(mean, decide(mean, labels, threshold), int(p.size), float(threshold),
                         float(p.min()), float(p.max()))


def aggregate_events(probs: Sequence[float] | np.ndarray, event_ids: Sequence, labels: Sequence[str] = ("FLE", "TLE"),
                  threshold: float = DECISION_THRESHOLD) -> dict:
    """``{event_id: EventDecision}`` for windows tagged with ``event_ids`` (same length as ``probs``)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(event_ids) != p.size:
        raise ValueError(f"{p.size} probabilities but {len(event_ids)} event ids")
    groups: dict = {}
    for i, e in enumerate(event_ids):
        groups.setdefault(e, []).append(i)
    return {e: aggregate_event(p[idx], labels, threshold) for e, idx in groups.items()}
