"""Plan one job: open its video, find its segment, cut the windows, choose the crop.

The window rule is the bundle's (:func:`semiostream.sources.windows.plan_windows`: ``spec.window``
frames, hop = window unless ``--hop``, a leftover of at least ``spec.min_frames`` kept), in time: the video
is read at the bundle's rate ``spec.fps`` (:func:`semiostream.sources.rate.at_rate`: as it is when it
has that rate, else resampled on its timestamps, or refused when far too slow), so a window always spans
``spec.window / spec.fps`` seconds of the recording. The crop is the
manifest row's ROI, else the ROI detector on the segment's first frame, else the full frame (``roi`` None).
With a bundle whose spec holds one intensity window per video (``intensity_scope="video"``) it is computed
here, once, from the segment's first frames inside the crop
(:func:`semiostream.dali_pipes.event_intensity.segment_window`), exactly as training did.
Planning reads only the metadata and (with a detector) one frame; the windows are read later, by whoever
scores them. Frames (and a manifest ROI) outside the sizes of :mod:`.guard` are refused here, before any
window is cut.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semiostream.core.segment import Segment

from .guard import frame_size_problem


class PlanError(ValueError):
    """The job cannot be scored (segment too short, ROI outside the frame ...); the message says why."""


@dataclass
class JobPlan:
    """A job's windows: frame ranges ``[start, stop)`` with capture times (seconds), and its crop.

    Attributes:
        job, key: the job and its result key (:func:`~.identity.input_key`).
        sha256: content hash of the video.
        num_frames, fps: frame count and frame rate of the whole video itself; ``fps_from``: whether that
            rate is stored in the file, given (``--fps``, manifest) or assumed (``file``/``given``/``assumed``).
        rate: frames/s the windows are made at: the bundle's rate when the video was resampled
            (``resampled``), else the video's own.
        seg_start, seg_stop: the segment's frame range in the video's own frame numbers.
        starts, stops: ``[N]`` int64 window ranges in the frames as read (:meth:`open`: resampled or not);
            ``first_frames``, ``last_frames``: ``[N]`` int64 the video's own numbers of each window's first
            and last frame; ``t_first``, ``t_last``: ``[N]`` float64 their capture times in seconds.
        roi: ``(x0, y0, x1, y1)`` or None (full frame).
        intensity: the segment's held raw intensity window ``(lo, hi)``, or None (the spec's per-window rule).
    """

    job: Segment
    key: str
    sha256: str
    num_frames: int
    fps: float
    seg_start: int
    seg_stop: int
    starts: np.ndarray
    stops: np.ndarray
    t_first: np.ndarray
    t_last: np.ndarray
    roi: tuple[int, int, int, int] | None
    notes: list[str] = field(default_factory=list)
    intensity: tuple[float, float] | None = None
    fps_from: str = "file"
    rate: float = 0.0
    resampled: bool = False
    first_frames: np.ndarray | None = None
    last_frames: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.rate = self.rate or self.fps
        if self.first_frames is None:
            self.first_frames, self.last_frames = self.starts, self.stops - 1

    @property
    def num_windows(self) -> int:
        return int(len(self.starts))

    def open(self):
        """The job's source as planned: at :attr:`rate` (resampled when :attr:`resampled`)."""
        return open_job(self.job, self.rate if self.resampled else None)

    def ranges(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in zip(self.starts, self.stops, strict=True)]


def open_job(job: Segment, fps: float | None = None):
    """The job's open :class:`~semiostream.sources.source.Source` (raises ``SourceError``), read at
    ``fps`` frames/s when given (:func:`~semiostream.sources.rate.at_rate`)."""
    from semiostream.sources.rate import at_rate
    from semiostream.sources.readers import open_source

    src = open_source(job.path, stream=job.stream, fps=job.fps)
    return src if fps is None else at_rate(src, fps)


def plan_job(job: Segment, key: str, sha256: str, spec: Any, hop: int | None = None, detector: Any | None = None,
             detector_lock: threading.Lock | None = None) -> JobPlan:
    """Open ``job``'s video and plan its windows (see the module docstring).

    Args:
        spec: the bundle's :class:`~semiostream.core.preprocess_spec.PreprocessSpec` (window, fps, min_frames).
        hop: frames between window starts (None = ``spec.window``, non-overlapping).
        detector: a :class:`~semiostream.detectors.base.RoiDetector` for jobs without an ROI, or None.
        detector_lock: serialises ``detector`` calls when plans run in several threads.

    Raises:
        SourceError: the video cannot be opened or read, or its frame rate is too low to be resampled.
        PlanError: the frames are smaller or larger than :mod:`.guard` allows, the segment is empty or shorter
            than ``spec.min_frames``, or the ROI is invalid.
    """
    from semiostream.core.roi import as_roi
    from semiostream.dali_pipes.event_intensity import holds_window, segment_window
    from semiostream.sources.rate import ResampledSource, gap_note, source_index, source_rate
    from semiostream.sources.windows import plan_windows
    from semiostream.trainer.features import segment_frames

    with open_job(job, spec.fps) as src:
        if problem := frame_size_problem(src.width, src.height):
            raise PlanError(problem)
        n, fps = int(src.num_frames), float(src.fps)  # of the frames as read (at the bundle's rate)
        start, stop = segment_frames(job, n, fps)
        if stop <= start:
            raise PlanError(f"the segment onset={job.onset} s .. offset={job.offset} s lies outside the video "
                            f"({n} frames at {fps:g} fps = {n / fps:.2f} s); fix onset/offset in the manifest")
        ranges = [(start + a, start + b) for a, b in plan_windows(stop - start, spec.window, hop, spec.min_frames)]
        if not ranges:
            raise PlanError(f"too short: the segment has {stop - start} frames, fewer than the bundle's "
                            f"min_frames={spec.min_frames}; nothing to score")
        notes: list[str] = []
        if job.roi is not None:
            try:
                roi = as_roi(job.roi, src.width, src.height).as_tuple()
            except ValueError as e:
                raise PlanError(f"{e} (manifest roi); fix the roi column") from e
            if problem := frame_size_problem(roi[2] - roi[0], roi[3] - roi[1], "the manifest roi's crops",
                                             "widen the roi column"):
                raise PlanError(problem)
        elif detector is not None:
            frame = src.read(start, start + 1)[0]
            with detector_lock or threading.Lock():
                choice = detector.locate(frame)
            roi = choice.roi.as_tuple()
            if choice.fallback:
                notes.append(choice.message)
        else:
            roi = None
        intensity = None
        if holds_window(spec):  # one intensity window for the whole segment, as in training
            intensity = segment_window(src.read(start, min(stop, start + spec.percentile_frames)), roi, spec)
        starts = np.array([a for a, _ in ranges], np.int64)
        stops = np.array([b for _, b in ranges], np.int64)
        times = np.asarray(src.frame_times(start, stop), np.float64)  # [stop - start] seconds
        t_first, t_last = times[starts - start], times[stops - 1 - start]
        resampled = isinstance(src, ResampledSource)
        own = src.source if resampled else src
        seg = source_index(src, np.array([start, stop - 1]))
        if note := gap_note(own.frame_times(int(seg[0]), int(seg[1]) + 1), source_rate(src)):
            notes.append(note)
        if getattr(own, "cut", None):
            notes.append("the file ends inside its last frame (the recording stopped mid-frame); read without it")
        return JobPlan(job, key, sha256, int(own.num_frames), source_rate(src), int(seg[0]), int(seg[1]) + 1,
                       starts, stops, t_first, t_last, roi, notes, intensity,
                       fps_from=getattr(src, "fps_from", "file"), rate=fps, resampled=resampled,
                       first_frames=source_index(src, starts), last_frames=source_index(src, stops - 1))
