"""What an event review report is made from: plain data gathered by the caller (scorer or archive run).

The report writer (:mod:`.report`) reads nothing from sockets or databases; whoever closes an event
fills one :class:`EventEvidence` and hands it over. Everything here is validated on construction, so a
wrong shape or dtype fails where the evidence is gathered, with a message saying what was wrong, rather
than halfway through drawing a report.

Times are ns since the Unix epoch (live) or ns since the start of the video (archive); the report only
uses differences, and prints absolute UTC times when ``start_t_ns`` looks like an epoch time (after 2001).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from semiostream.detectors.base import Detection

__all__ = ["Detection", "DecisiveWindow", "EventEvidence", "WindowRecord", "WindowStatus", "pick_decisive"]

WindowStatus = Literal["scored", "dropped", "failed"]
WINDOW_STATUSES = ("scored", "dropped", "failed")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")

Box = tuple[int, int, int, int]


def _check_p(p: float | None, what: str) -> float | None:
    if p is None:
        return None
    p = float(p)
    if not (math.isfinite(p) and 0.0 <= p <= 1.0):
        raise ValueError(f"{what}: p(TLE) {p!r} is not a probability in [0, 1]")
    return p


def _check_roi(roi: Box | None, h: int, w: int, what: str) -> Box | None:
    if roi is None:
        return None
    try:
        x0, y0, x1, y1 = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: roi {roi!r} must be four integers (x0, y0, x1, y1)") from None
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"{what}: roi {(x0, y0, x1, y1)} lies outside the {w}x{h} frame; give (x0, y0, x1, y1) "
                         "with 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height")
    return (x0, y0, x1, y1)


@dataclass(frozen=True)
class WindowRecord:
    """One window of the event as the scorer saw it.

    Attributes:
        first_seq, last_seq: frame sequence numbers (live) or frame indices (archive), inclusive.
        first_t_ns, last_t_ns: capture times of the first and last frame, ns.
        p_tle: the window's p(TLE), None unless ``status == "scored"``.
        status: ``"scored"``; ``"dropped"`` (refused before scoring: the model was behind, memory bound);
            ``"failed"`` (the model raised on it).
    """

    first_seq: int
    last_seq: int
    first_t_ns: int
    last_t_ns: int
    p_tle: float | None
    status: WindowStatus = "scored"

    def __post_init__(self) -> None:
        if self.status not in WINDOW_STATUSES:
            raise ValueError(f"window {self.first_seq}-{self.last_seq}: status {self.status!r}; "
                             f"use one of {', '.join(WINDOW_STATUSES)}")
        if self.last_seq < self.first_seq or self.last_t_ns < self.first_t_ns:
            raise ValueError(f"window {self.first_seq}-{self.last_seq}: last frame precedes the first")
        p = _check_p(self.p_tle, f"window {self.first_seq}-{self.last_seq}")
        if (p is None) != (self.status != "scored"):
            raise ValueError(f"window {self.first_seq}-{self.last_seq}: a {self.status} window "
                             f"{'needs' if self.status == 'scored' else 'has no'} p(TLE)")
        object.__setattr__(self, "p_tle", p)


@dataclass
class DecisiveWindow:
    """One of the event's most decisive windows (largest ``|p - 0.5|``), kept raw for the report's montage
    and saliency.

    Attributes:
        frames: ``[T, H, W]`` uint16, the window exactly as it was submitted to the model.
        roi: the crop it was scored with ``(x0, y0, x1, y1)``, or None (full frame).
        p_tle: its p(TLE) as published.
        first_seq, first_t_ns: its first frame's sequence number and capture time.
        intensity: the raw ``(lo, hi)`` intensity window the scorer held for this window
            (``PreprocessSpec.intensity_scope == "video"``: fixed by the event's first frames), or None
            when the window was preprocessed with the bundle's spec alone.
    """

    frames: np.ndarray
    roi: Box | None
    p_tle: float
    first_seq: int
    first_t_ns: int
    intensity: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        what = f"decisive window at seq {self.first_seq}"
        if not isinstance(self.frames, np.ndarray) or self.frames.ndim != 3 or self.frames.dtype != np.uint16:
            got = (f"{self.frames.dtype} {tuple(self.frames.shape)}" if isinstance(self.frames, np.ndarray)
                   else type(self.frames).__name__)
            raise ValueError(f"{what}: frames must be a [T, H, W] uint16 numpy array, got {got}")
        if self.frames.shape[0] < 1:
            raise ValueError(f"{what}: no frames")
        self.roi = _check_roi(self.roi, self.frames.shape[1], self.frames.shape[2], what)
        self.p_tle = _check_p(self.p_tle, what)
        if self.p_tle is None:
            raise ValueError(f"{what}: a decisive window needs its p(TLE)")
        if self.intensity is not None:
            lo, hi = (float(v) for v in self.intensity)
            if not hi > lo:
                raise ValueError(f"{what}: intensity window ({lo}, {hi}) needs hi > lo")
            self.intensity = (lo, hi)


@dataclass
class EventEvidence:
    """Everything an event review report shows (see :func:`semiostream.review.report.write_event_report`).

    Attributes:
        bed, event_id: names (1-128 of ``A-Z a-z 0-9 _ . -``; they become folder names).
        start_t_ns, stop_t_ns: event start and stop, ns.
        windows: every window of the event in time order, scored, dropped or failed.
        p_tle, label: the event's decision (mean of the scored windows' p(TLE)); None when nothing was scored.
        bundle_id: id of the bundle that scored it (must match the bundle the report reads).
        first_frame: ``[H, W]`` uint16, the event's first frame (None: not kept).
        roi: the crop used ``(x0, y0, x1, y1)``, None = full frame.
        roi_source: where the crop came from (``"config"``, ``"camera"``, ``"detected"``, ``"full frame"``,
            ``"manifest"`` ...).
        detections: the detector's boxes on the first frame (:class:`~semiostream.detectors.base.Detection`,
            labels ``"person"``/``"bed"``, frame pixels).
        decisive: up to a few :class:`DecisiveWindow` (the caller keeps the ones with the largest
            ``|p - 0.5|``; :func:`pick_decisive` does it).
        source: free text naming what was scored (a video path for archives; empty for live beds).
        notes: lines the report prints as they are (e.g. a detection fallback message).
        title: what the report's heading names: the input (file name and segment) for an archived
            recording; empty for a live bed (the heading then names the bed).
        input_facts: what a reader needs to judge the input, shown as a table in this order, e.g.
            ``{"kind": "8-bit colour (yuv420p h264, colour)", "frame rate": "28 fps (stored in the file)",
            "person": "not found by the detector"}``.
    """

    bed: str
    event_id: str
    start_t_ns: int
    stop_t_ns: int
    windows: list[WindowRecord]
    p_tle: float | None
    label: str | None
    bundle_id: str
    first_frame: np.ndarray | None = None
    roi: Box | None = None
    roi_source: str = ""
    detections: list[Detection] = field(default_factory=list)
    decisive: list[DecisiveWindow] = field(default_factory=list)
    source: str = ""
    notes: list[str] = field(default_factory=list)
    title: str = ""
    input_facts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for what, name in (("bed", self.bed), ("event_id", self.event_id)):
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ValueError(f"{what} {name!r:.80} must be 1-128 characters of A-Z a-z 0-9 _ . - "
                                 "(it names the report's folder)")
        if self.stop_t_ns < self.start_t_ns:
            raise ValueError(f"event {self.event_id}: stop {self.stop_t_ns} precedes start {self.start_t_ns}")
        self.p_tle = _check_p(self.p_tle, f"event {self.event_id}")
        for w in self.windows:
            if not isinstance(w, WindowRecord):
                raise ValueError(f"event {self.event_id}: windows must be WindowRecord, got {type(w).__name__}")
        if self.first_frame is not None:
            f = self.first_frame
            if not isinstance(f, np.ndarray) or f.ndim != 2 or f.dtype != np.uint16:
                got = f"{f.dtype} {tuple(f.shape)}" if isinstance(f, np.ndarray) else type(f).__name__
                raise ValueError(f"event {self.event_id}: first_frame must be an [H, W] uint16 array, got {got}")
            self.roi = _check_roi(self.roi, f.shape[0], f.shape[1], f"event {self.event_id}")
        for d in self.detections:
            if not isinstance(d, Detection):
                raise ValueError(f"event {self.event_id}: detections must be detectors.base.Detection objects, "
                                 f"got {type(d).__name__}")

    @property
    def duration_s(self) -> float:
        return (self.stop_t_ns - self.start_t_ns) / 1e9

    def scored_p(self) -> np.ndarray:
        """``[N]`` float64 p(TLE) of the scored windows, in time order."""
        return np.array([w.p_tle for w in self.windows if w.status == "scored"], np.float64)


def pick_decisive(candidates: list[DecisiveWindow], keep: int = 2) -> list[DecisiveWindow]:
    """The ``keep`` windows with the largest ``|p - 0.5|``, in time order (ties: the earlier window)."""
    ranked = sorted(enumerate(candidates), key=lambda iw: (-abs(iw[1].p_tle - 0.5), iw[0]))[:keep]
    return [w for _, w in sorted(ranked, key=lambda iw: iw[0])]
