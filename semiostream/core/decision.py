"""The event decision: one rule from a probability to a label, used by every part that labels.

A score ``p`` is p(``labels[1]``) (p(TLE)); it is decided ``labels[1]`` when ``p >= threshold``, else
``labels[0]``. The live scorer (windows and events), the archive scorer and the trainer's metrics all
decide through this module, so a threshold means the same everywhere. Imports nothing of this project.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DECISION_THRESHOLD = 0.5
"""Default threshold on p(TLE) (a probability in [0, 1])."""


def positive(p: float | np.ndarray, threshold: float = DECISION_THRESHOLD) -> np.ndarray:
    """``p >= threshold`` as int64 class indices (1 = ``labels[1]``), same shape as ``p`` (scalar or ``[N]``)."""
    return (np.asarray(p, dtype=np.float64) >= threshold).astype(np.int64)


def decide(p: float, labels: Sequence[str], threshold: float = DECISION_THRESHOLD) -> str:
    """The label of one score ``p`` in [0, 1]: ``labels[1]`` if ``p >= threshold`` else ``labels[0]``."""
    return labels[int(positive(p, threshold))]
