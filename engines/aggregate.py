"""From window probabilities to one decision per seizure (event).

The paper scores 2-second windows; a seizure (event) is many windows. Its probability is the mean of its
windows' p(TLE) and its label is ``labels[1]`` (TLE) when that mean is >= ``threshold`` (0.5), else
``labels[0]`` (FLE): the one rule of :mod:`semiostream.core.decision`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from semiostream.core.decision import DECISION_THRESHOLD, decide


@dataclass(frozen=True)
class EventScore:
    """One event's result: ``p`` = mean p(``labels[1]``) over ``n_windows`` windows, and its ``label``."""

    p: float
    label: str
    n_windows: int
    threshold: float
    p_min: float
    p_max: float

    def to_dict(self) -> dict:
        return asdict(self)


def aggregate_event(probs: Sequence[float] | np.ndarray, labels: Sequence[str] = ("FLE", "TLE"),
                    threshold: float = DECISION_THRESHOLD) -> EventScore:
    """Aggregate window probabilities ``[N]`` (p of ``labels[1]``) into an :class:`EventScore`.

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
    return EventScore(mean, decide(mean, labels, threshold), int(p.size), float(threshold),
                      float(p.min()), float(p.max()))


def aggregate_events(probs: Sequence[float] | np.ndarray, event_ids: Sequence, labels: Sequence[str] = ("FLE", "TLE"),
                     threshold: float = DECISION_THRESHOLD) -> dict:
    """``{event_id: EventScore}`` for windows tagged with ``event_ids`` (same length as ``probs``)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(event_ids) != p.size:
        raise ValueError(f"{p.size} probabilities but {len(event_ids)} event ids")
    groups: dict = {}
    for i, e in enumerate(event_ids):
        groups.setdefault(e, []).append(i)
    return {e: aggregate_event(p[idx], labels, threshold) for e, idx in groups.items()}
