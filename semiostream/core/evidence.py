"""An event's evidence: what its review report shows, gathered by whoever scored it (live scorer or archive run).

One set of types for both: the live scorer (:mod:`semiostream.bus.reports`) fills an :class:`EventEvidence`
while the event is open (:meth:`EventEvidence.note` each window, :meth:`EventEvidence.offer` the raw frames
of the most decisive ones, within a memory budget) and closes it with the event's decision
(:meth:`EventEvidence.closed`); the archive run fills one at once; the report writer
(:mod:`semiostream.review.report`) reads it and nothing else. Everything is validated when an evidence is
made or closed, so a wrong shape or dtype fails where the evidence is gathered, with a message saying what
was wrong, rather than halfway through drawing a report.

Times are ns since the Unix epoch (live) or ns since the start of the video (archive); the report only
uses differences, and prints absolute UTC times when ``start_t_ns`` looks like an epoch time (after 2001).

Imports nothing of this project above :mod:`semiostream.core`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .decision import DECISION_THRESHOLD
from .detection import Detection
from .frames import Box

__all__ = ["DECISIVE_KEPT", "DecisiveWindow", "Detection", "EventEvidence", "WindowRecord", "WindowStatus",
           "pick_decisive"]

WindowStatus = Literal["scored", "dropped", "failed"]
WINDOW_STATUSES = ("scored", "dropped", "failed")
DECISIVE_KEPT = 2
"""Most decisive windows whose raw frames an event keeps for its report."""
MAX_WINDOW_RECORDS = 100_000
"""Window records one event keeps (about 55 h of 2-s windows); later windows are not noted."""
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")


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


def margin(p: float) -> float:
    """How decisive a window is: ``|p - threshold|`` for the default :data:`~.decision.DECISION_THRESHOLD`."""
    return abs(p - DECISION_THRESHOLD)


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
        first_seq, first_t_ns: its first frame's sequence number and capture time (ns).
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

    @property
    def margin(self) -> float:
        """``|p(TLE) - 0.5|``: how decisive the window is."""
        return margin(self.p_tle)


@dataclass
class EventEvidence:
    """Everything an event review report shows (see :func:`semiostream.review.report.write_event_report`).

    Attributes:
        bed, event_id: names (1-128 of ``A-Z a-z 0-9 _ . -``; they become folder names).
        start_t_ns, stop_t_ns: event start and stop, ns (``stop_t_ns`` None while a live event is open).
        windows: every window of the event in time order, scored, dropped or failed.
        p_tle, label: the event's decision (mean of the scored windows' p(TLE)); None when nothing was
            scored, or while a live event is open.
        bundle_id: id of the bundle that scored it (must match the bundle the report reads; set when closed).
        first_frame: ``[H, W]`` uint16, the event's first frame (None: not kept).
        roi: the crop used ``(x0, y0, x1, y1)``, None = full frame.
        roi_source: where the crop came from (``"config"``, ``"camera"``, ``"detected"``, ``"full frame"``,
            ``"manifest"`` ...).
        detections: the detector's boxes on the first frame (:class:`~.detection.Detection`, labels
            ``"person"``/``"bed"``, frame pixels).
        decisive: up to :data:`DECISIVE_KEPT` :class:`DecisiveWindow` (the caller keeps the ones with the
            largest ``|p - 0.5|``: :meth:`offer` while an event is open, most decisive first;
            :func:`pick_decisive` from candidates, in time order).
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
    stop_t_ns: int | None = None
    windows: list[WindowRecord] = field(default_factory=list)
    p_tle: float | None = None
    label: str | None = None
    bundle_id: str = ""
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
        if self.stop_t_ns is not None and self.stop_t_ns < self.start_t_ns:
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
                raise ValueError(f"event {self.event_id}: detections must be Detection objects "
                                 f"(semiostream.core.detection), got {type(d).__name__}")

    @property
    def duration_s(self) -> float:
        return ((self.stop_t_ns or self.start_t_ns) - self.start_t_ns) / 1e9

    def scored_p(self) -> np.ndarray:
        """``[N]`` float64 p(TLE) of the scored windows, in time order."""
        return np.array([w.p_tle for w in self.windows if w.status == "scored"], np.float64)

    # ------------------------------------------------------------ gathering while a live event is open
    def note(self, record: WindowRecord) -> None:
        """Record one window (at most :data:`MAX_WINDOW_RECORDS`; later ones are not noted)."""
        if len(self.windows) < MAX_WINDOW_RECORDS:
            self.windows.append(record)

    def offer(self, window: DecisiveWindow, hold: Callable[[int], bool]) -> int:
        """Keep ``window`` if it is among the :data:`DECISIVE_KEPT` most decisive so far; ``hold(nbytes) ->
        bool`` reserves memory for its frames (False: no room, not kept). Returns the bytes released (of a
        window pushed out)."""
        if len(self.decisive) >= DECISIVE_KEPT and window.margin <= self.decisive[-1].margin:
            return 0
        if not hold(window.frames.nbytes):
            return 0
        self.decisive.append(window)
        self.decisive.sort(key=lambda d: -d.margin)
        released = 0
        while len(self.decisive) > DECISIVE_KEPT:
            released += self.decisive.pop().frames.nbytes
        return released

    def held_bytes(self) -> int:
        """Bytes of the raw frames kept in :attr:`decisive`."""
        return sum(d.frames.nbytes for d in self.decisive)

    def closed(self, stop_t_ns: int, p_tle: float | None, label: str | None, bundle_id: str) -> EventEvidence:
        """This evidence with the event's stop and decision, validated again (the lists are shared)."""
        return dataclasses.replace(self, stop_t_ns=stop_t_ns, p_tle=p_tle, label=label, bundle_id=bundle_id)


def pick_decisive(candidates: list[DecisiveWindow], keep: int = DECISIVE_KEPT) -> list[DecisiveWindow]:
    """The ``keep`` windows with the largest ``|p - 0.5|``, in time order (ties: the earlier window)."""
    ranked = sorted(enumerate(candidates), key=lambda iw: (-iw[1].margin, iw[0]))[:keep]
    return [w for _, w in sorted(ranked, key=lambda iw: iw[0])]
