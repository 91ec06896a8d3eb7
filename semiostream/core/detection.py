"""What a detector found on a frame (:mod:`semiostream.detectors` makes them; reports draw them).

Imports nothing of this project.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Detection:
    """One detected object: float box ``(x0, y0, x1, y1)`` in frame pixels, score in [0, 1], label."""

    box: tuple[float, float, float, float]
    score: float
    label: str
