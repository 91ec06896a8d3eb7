"""A frame's position in its stream, and a window of consecutive frames: one definition each.

Every part of the project names a frame's position the same way: ``seq`` is its frame number in its
stream (0-based, +1 per frame, larger steps where frames were lost) and ``t_ns`` its capture time in
integer nanoseconds (since the Unix epoch for live streams; since the video's first frame for files). A
window carries the same pair for its first and last frame (``first_seq``/``last_seq``,
``first_t_ns``/``last_t_ns``), as the bus's results and the review reports do.

Imports nothing of this project.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]
"""A crop ``(x0, y0, x1, y1)`` in frame pixels, ``x1``/``y1`` exclusive."""


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    Attributes:
        image: ``[H, W]`` uint16 (8-bit streams: values 0..255). Decoded from the bus, a read-only view of
            the message's payload.
        seq: frame number in its stream: +1 per frame, larger steps where frames were lost (during a
            reconnect, or missing from the stream's timestamps).
        t_ns: capture time, ns since the Unix epoch.
        bed: the stream's bed id on the bus; ``""`` for a frame of a camera source not yet published.
        roi: the crop sent with the frame ``(x0, y0, x1, y1)``, or None.
    """

    image: np.ndarray
    seq: int
    t_ns: int
    bed: str = ""
    roi: Box | None = None


@dataclass(frozen=True)
class Window:
    """One window of consecutive frames of one stream, as submitted to the model.

    Attributes:
        source_id: which stream (file path, ``path#depth``, or a bed id for live streams).
        start, stop: positions ``[start, stop)`` of its frames in the sequence the windows were cut from
            (for files, frame indices; live, frames at the bundle's rate since the stream began);
            :attr:`first`/:attr:`last` are inclusive.
        first_seq, last_seq: ``seq`` of its first and last frame (:class:`Frame`; for files equal to
            ``start`` and ``stop - 1``; live, the camera's numbers).
        first_t_ns, last_t_ns: capture times of its first and last frame, ns.
        frames: ``[T, H, W]`` uint16 with ``T = stop - start`` (None when only the plan is wanted).
    """

    source_id: str
    start: int
    stop: int
    first_seq: int
    last_seq: int
    first_t_ns: int
    last_t_ns: int
    frames: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def first(self) -> int:
        return self.start

    @property
    def last(self) -> int:
        return self.stop - 1

    @property
    def num_frames(self) -> int:
        return self.stop - self.start
