"""Windows are defined in time: every source is read at the bundle's frame rate.

The model's window is ``spec.window`` frames at ``spec.fps`` (60 frames at 30 fps = the paper's 2 s).
:func:`at_rate` gives a source as the model must see it:

* a source at the bundle's rate (within :data:`RATE_TOLERANCE`, 1 %) whose frames are evenly spaced (no
  interval longer than :data:`MAX_INTERVAL` = 1.5 frame periods: no dropped frames) is used **as it is**,
  frame for frame;
* any other source is **resampled** to the bundle's rate by frame selection on the source's timestamps:
  frame ``k`` of the resampled sequence covers ``[t0 + k / fps, t0 + (k + 1) / fps)`` (``t0`` = the first
  frame's capture time; ``k`` runs over the source's duration, last frame time + one source frame period)
  and shows the source frame on display at the middle of that interval, i.e. the last one captured at or
  before it (the earlier one when a frame starts within 1 us of it). A 6 fps source shows each frame 5
  times, a 60 fps source keeps frames 0, 2, 4 ...; variable frame rates and dropped frames are handled by
  the same rule, since it uses the source's own frame times (:meth:`~.source.Source.frame_times`);
* a source slower than :data:`MIN_RATE_FRACTION` of the bundle's rate (5 fps for a 30 fps bundle) is
  **refused**: each of its frames would fill 7 or more resampled frames, so I3D's first temporal filter
  (7 frames) would see a still image.

A source whose file stores no rate (``.npy``, frame folders, some AVI/DICOM files) is read at the rate
given (``--fps`` or the manifest's ``fps``), else it is assumed to be at the bundle's rate and read frame
for frame; ``fps_from`` on every source says which (``file``, ``given``, ``assumed``).
"""

from __future__ import annotations

import numpy as np

from .source import Source, SourceError

#: a source within this fraction of the bundle's rate is read frame for frame (0.6 frame per 60-frame window)
RATE_TOLERANCE = 0.01
#: frame intervals up to this many nominal periods count as even (longer ones are dropped frames)
MAX_INTERVAL = 1.5
#: a frame that starts this close (seconds) to the middle of a resampled frame counts as after it
TIE_S = 1e-6
#: sources slower than this fraction of the bundle's rate are refused (see the module docstring)
MIN_RATE_FRACTION = 1 / 6


def min_rate(fps: float) -> float:
    """The slowest source rate (frames/s) that can be resampled to ``fps``."""
    return fps * MIN_RATE_FRACTION


def check_rate(source_fps: float, fps: float) -> None:
    """Raise ValueError (saying why) unless a ``source_fps`` source can be resampled to ``fps``."""
    if not (source_fps > 0 and fps > 0):
        raise ValueError(f"frame rates must be positive (source {source_fps}, target {fps})")
    if source_fps < min_rate(fps) * (1 - 1e-9):
        raise ValueError(
            f"its frame rate of {source_fps:g} fps is below {min_rate(fps):g} fps, the slowest the bundle's "
            f"{fps:g} fps windows can be made from (each frame would fill 7 or more of the model's frames)")


def gaps(times: np.ndarray, source_fps: float) -> np.ndarray:
    """``[G]`` int64 indices ``i`` into ``times`` (``[N]`` capture times, seconds) after which the next frame
    comes more than :data:`MAX_INTERVAL` periods of a ``source_fps`` source later: dropped or lost frames."""
    return np.flatnonzero(np.diff(np.asarray(times, np.float64)) > MAX_INTERVAL / source_fps).astype(np.int64)


def gap_note(times: np.ndarray, source_fps: float) -> str | None:
    """A sentence on the gaps (:func:`gaps`) in ``times`` (``[N]`` seconds), or None when there are none."""
    times = np.asarray(times, np.float64)
    at = gaps(times, source_fps)
    if not len(at):
        return None
    steps = times[at + 1] - times[at]
    worst = int(at[np.argmax(steps)])
    return (f"{len(at)} gap{'s' if len(at) > 1 else ''} in its frame times (frames dropped or lost; longest "
            f"{steps.max():.2f} s after {times[worst] - times[0]:.2f} s): the frame before a gap is held across it")


def as_is(times: np.ndarray, source_fps: float, fps: float) -> bool:
    """True when frames captured at ``times`` (``[N]`` seconds) of a ``source_fps`` source are used as they
    are at ``fps``: the rates agree within :data:`RATE_TOLERANCE` and no interval exceeds :data:`MAX_INTERVAL`
    source periods (no :func:`gaps`: no dropped frames)."""
    return abs(source_fps - fps) <= RATE_TOLERANCE * fps and not len(gaps(times, source_fps))


def slot_middles(t0: float, start: int, stop: int, fps: float) -> np.ndarray:
    """``[stop - start]`` float64 middles (seconds) of resampled frames ``start .. stop - 1`` at ``fps``
    of a sequence whose first frame was captured at ``t0``."""
    return t0 + (np.arange(start, stop, dtype=np.float64) + 0.5) / fps


def on_display(times: np.ndarray, middles: np.ndarray) -> np.ndarray:
    """``[K]`` int64 index into ``times`` (``[N]`` non-decreasing capture times, seconds) of the frame on
    display at each of ``middles``: the last one captured at or before it, the earlier one when a frame
    starts within :data:`TIE_S` of it; -1 where none was captured yet."""
    return (np.searchsorted(times, np.asarray(middles) - TIE_S, side="right") - 1).astype(np.int64)


def frame_selection(times: np.ndarray, source_fps: float, fps: float) -> np.ndarray | None:
    """Which source frame each frame at ``fps`` shows, or None when the source is used as it is.

    Args:
        times: ``[N]`` float64 capture times in seconds of every source frame (non-decreasing).
        source_fps: the source's nominal rate (frames/s).
        fps: the bundle's rate (frames/s).

    Returns:
        ``[K]`` int64 non-decreasing source frame indices (``K`` ~ source duration x ``fps``), or None.

    Raises:
        ValueError: ``source_fps`` is below :func:`min_rate` (the message says why).
    """
    times = np.asarray(times, np.float64)
    n = len(times)
    check_rate(source_fps, fps)
    if as_is(times, source_fps, fps):
        return None
    t0 = times[0]
    duration = times[-1] - t0 + 1.0 / source_fps
    k = max(1, int(np.floor(duration * fps + 1e-6)))
    return np.clip(on_display(times, slot_middles(t0, 0, k, fps)), 0, n - 1)


class ResampledSource(Source):
    """``source`` as seen at ``fps``: frame ``k`` is source frame ``indices[k]``.

    ``read``, ``frame_times`` and ``num_frames`` are those of the resampled sequence; ``source_index``
    maps back to the source's own frame numbers; ``source_fps`` is the source's rate.
    """

    def __init__(self, source: Source, indices: np.ndarray, fps: float) -> None:
        self.source = source
        self.indices = np.asarray(indices, np.int64)
        self.path, self.stream = source.path, source.stream
        self.num_frames = int(len(self.indices))
        self.height, self.width, self.bit_depth = source.height, source.width, source.bit_depth
        self.fps = float(fps)
        self.source_fps = float(source.fps)
        self.fps_from = getattr(source, "fps_from", "file")

    def source_index(self, i: np.ndarray | int) -> np.ndarray | int:
        """Source frame number(s) of resampled frame(s) ``i``."""
        return self.indices[i]

    def _read(self, start: int, stop: int) -> np.ndarray:
        idx = self.indices[start:stop]
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        return np.ascontiguousarray(self.source.read(lo, hi)[idx - lo])

    def frame_times(self, start: int, stop: int) -> np.ndarray:
        idx = self.indices[start:stop]
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        return self.source.frame_times(lo, hi)[idx - lo]

    def close(self) -> None:
        self.source.close()


def at_rate(source: Source, fps: float) -> Source:
    """``source`` itself when it is at ``fps`` with evenly spaced frames, else a :class:`ResampledSource`.
    A source whose rate is assumed (``fps_from == "assumed"``) is taken to be at ``fps`` (its ``fps`` is set).

    Raises:
        SourceError: the source is too slow to be resampled (closed first).
    """
    if getattr(source, "fps_from", "file") == "assumed":
        source.fps = float(fps)
    try:
        indices = frame_selection(source.frame_times(0, source.num_frames), float(source.fps), float(fps))
    except ValueError as e:
        source.close()
        fix = ("check the rate given (--fps or the manifest's fps column)"
               if getattr(source, "fps_from", "file") == "given" else "record at a higher frame rate")
        raise SourceError(source.path, str(e), fix) from e
    return source if indices is None else ResampledSource(source, indices, fps)


def source_index(source: Source, i: np.ndarray) -> np.ndarray:
    """The source's own frame numbers of frames ``i`` of ``source`` (resampled or not)."""
    i = np.asarray(i, np.int64)
    return np.asarray(source.source_index(i), np.int64) if isinstance(source, ResampledSource) else i


def source_rate(source: Source) -> float:
    """The rate of the recording itself (before any resampling), frames/s."""
    return source.source_fps if isinstance(source, ResampledSource) else float(source.fps)
