"""Cut a source (or a live frame stream) into the model's windows.

The paper's rule (design.md): windows of ``window`` = 60 frames (2 s at 30 fps), non-overlapping for
training and archives; live scoring may use a ``hop`` < ``window`` (overlapping windows). After the last
full window, the leftover is kept as one shorter window if it has at least ``min_frames`` = 9 frames (the
shortest input for which I3D yields a feature step) and dropped otherwise. Both numbers come from the
bundle's :class:`~semiostream.core.preprocess_spec.PreprocessSpec`. Windows are
:class:`~semiostream.core.frames.Window` s: positions, frame numbers and capture times (ns) of their frames.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from semiostream.core.frames import Window

from .source import Source


def _check(window: int, hop: int | None, min_frames: int) -> int:
    hop = window if hop is None else int(hop)
    if window < 1 or hop < 1 or min_frames < 1:
        raise ValueError(f"window={window}, hop={hop}, min_frames={min_frames} must all be >= 1")
    if min_frames > window:
        raise ValueError(f"min_frames={min_frames} exceeds window={window}")
    if hop > window:
        raise ValueError(f"hop={hop} > window={window} would skip frames; use hop <= window")
    return hop


def plan_windows(
    num_frames: int, window: int = 60, hop: int | None = None, min_frames: int = 9
) -> list[tuple[int, int]]:
    """Frame ranges ``[(start, stop), ...]`` of the windows of a ``num_frames`` source.

    Full windows start at ``0, hop, 2*hop, ...``; the first window that would run past the end becomes
    the leftover ``[start, num_frames)``, kept only if it has ``>= min_frames`` frames.
    ``hop`` defaults to ``window`` (non-overlapping).
    """
    hop = _check(window, hop, min_frames)
    ranges = []
    start = 0
    while start + window <= num_frames:
        ranges.append((start, start + window))
        start += hop
    if start < num_frames and num_frames - start >= min_frames and (not ranges or num_frames > ranges[-1][1]):
        ranges.append((start, num_frames))
    return ranges


def iter_windows(
    source: Source,
    window: int = 60,
    hop: int | None = None,
    min_frames: int = 9,
    source_id: str | None = None,
    load: bool = True,
) -> Iterator[Window]:
    """Yield the windows of ``source`` in order, reading each frame once (overlaps are reused).

    Args:
        source: an open :class:`~.source.Source`.
        window, hop, min_frames: see :func:`plan_windows` (take them from the bundle's spec).
        source_id: id carried by every window (default ``source.source_id``).
        load: False to yield windows with ``frames=None`` (the plan with capture times).

    A file's frames are numbered from 0 (``first_seq == start``); capture times are ns since its first frame
    (``source.frame_times`` in seconds, rounded to the ns).
    """
    sid = source_id if source_id is not None else source.source_id
    buf = np.empty((0, source.height, source.width), np.uint16)
    buf_start = 0
    for start, stop in plan_windows(source.num_frames, window, hop, min_frames):
        times = source.frame_times(start, stop)
        frames = None
        if load:
            have_stop = buf_start + len(buf)
            if start >= have_stop:
                buf, buf_start = source.read(start, stop), start
            else:
                new = source.read(have_stop, stop) if stop > have_stop else buf[:0]
                buf = np.concatenate([buf[start - buf_start :], new])
                buf_start = start
            frames = buf[: stop - start]
        yield Window(sid, start, stop, start, stop - 1, _ns(times[0]), _ns(times[-1]), frames)


def _ns(t_s: float) -> int:
    return int(round(float(t_s) * 1e9))


class WindowAssembler:
    """Assemble windows from a live stream of single frames (one bed, one camera).

    ``push(frame, t_ns, seq)`` returns the windows completed by that frame (0 or 1); ``flush()`` returns the
    leftover window at the end of a stream (or event) if it has ``>= min_frames`` frames. Window positions
    (``start``/``stop``) number the frames from 0 in push order; ``first_seq``/``last_seq`` and the capture
    times are those pushed with the frames.
    """

    def __init__(self, source_id: str, window: int = 60, hop: int | None = None, min_frames: int = 9):
        self.source_id = source_id
        self.window, self.min_frames = window, min_frames
        self.hop = _check(window, hop, min_frames)
        self._frames: list[np.ndarray] = []
        self._times: list[int] = []  # capture times, ns
        self._seqs: list[int] = []
        self._first = 0  # index of self._frames[0]
        self._next_start = 0
        self._count = 0

    def push(self, frame: np.ndarray, t_ns: int, seq: int | None = None) -> list[Window]:
        """Add one ``[H, W]`` uint16 frame captured at ``t_ns`` (ns); ``seq`` is its frame number in its
        stream (default: its position in push order)."""
        if self._frames and frame.shape != self._frames[0].shape:
            raise ValueError(f"{self.source_id}: frame size changed from {self._frames[0].shape} to {frame.shape}")
        self._frames.append(frame)
        self._times.append(int(t_ns))
        self._seqs.append(self._count if seq is None else int(seq))
        self._count += 1
        out = []
        if self._count - self._next_start >= self.window:
            out.append(self._make(self._next_start, self._next_start + self.window))
            self._next_start += self.hop
            drop = self._next_start - self._first
            if drop > 0:
                del self._frames[:drop], self._times[:drop], self._seqs[:drop]
                self._first = self._next_start
        return out

    def flush(self) -> list[Window]:
        """End of stream: the leftover window (if long enough); the assembler then starts afresh."""
        out = []
        n = self._count - self._next_start
        covered = self._next_start - self.hop + self.window if self._next_start else 0
        if n >= self.min_frames and self._count > covered:
            out.append(self._make(self._next_start, self._count))
        self.__init__(self.source_id, self.window, self.hop, self.min_frames)
        return out

    def _make(self, start: int, stop: int) -> Window:
        i0, i1 = start - self._first, stop - self._first
        frames = np.stack(self._frames[i0:i1])
        return Window(self.source_id, start, stop, self._seqs[i0], self._seqs[i1 - 1], self._times[i0],
                      self._times[i1 - 1], frames)
