"""The crop box: :class:`Roi` ``(x0, y0, x1, y1)`` in integer frame pixels, and :func:`as_roi` to check one.

Found by the detectors (:mod:`semiostream.detectors`), applied by the DALI graphs and the torch reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Roi:
    """A crop ``(x0, y0, x1, y1)`` in integer pixels; ``x1``/``y1`` exclusive (``frame[y0:y1, x0:x1]``)."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError(f"ROI {self.as_tuple()} is empty: need x1 > x0 and y1 > y0")

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    def __iter__(self):
        return iter(self.as_tuple())

    @classmethod
    def from_box(cls, box: Sequence[float]) -> Roi:
        """Smallest integer ROI containing a float box ``(x0, y0, x1, y1)``."""
        x0, y0, x1, y1 = (float(v) for v in box)
        return cls(
            math.floor(x0),
            math.floor(y0),
            max(math.ceil(x1), math.floor(x0) + 1),
            max(math.ceil(y1), math.floor(y0) + 1),
        )

    @classmethod
    def full(cls, width: int, height: int) -> Roi:
        return cls(0, 0, int(width), int(height))

    def expand(self, frac: float, width: int, height: int) -> Roi:
        """Grow by ``frac`` of the box width (height) on the left and right (top and bottom), clamped."""
        dx, dy = frac * self.width, frac * self.height
        return Roi.from_box((self.x0 - dx, self.y0 - dy, self.x1 + dx, self.y1 + dy)).clamp(width, height)

    def clamp(self, width: int, height: int) -> Roi:
        """Intersection with the ``width x height`` frame; raises if they do not overlap."""
        x0, y0 = max(self.x0, 0), max(self.y0, 0)
        x1, y1 = min(self.x1, int(width)), min(self.y1, int(height))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"ROI {self.as_tuple()} lies outside the {width}x{height} frame")
        return Roi(x0, y0, x1, y1)

    def union(self, other: Roi) -> Roi:
        return Roi(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))


def as_roi(roi: Roi | Sequence[int] | None, width: int, height: int) -> Roi:
    """Validate a user/config ROI against a ``width x height`` frame (None = the full frame).

    Raises:
        ValueError: the ROI is empty or not entirely inside the frame
            (``ROI (600, 0, 700, 424) lies outside the 512x424 frame``).
    """
    if roi is None:
        return Roi.full(width, height)
    r = roi if isinstance(roi, Roi) else Roi(*(int(v) for v in roi))
    if r.x0 < 0 or r.y0 < 0 or r.x1 > width or r.y1 > height:
        raise ValueError(
            f"ROI {r.as_tuple()} lies outside the {width}x{height} frame; "
            "give (x0, y0, x1, y1) with 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height"
        )
    return r
