"""The scorer's beds: which streams are admitted, who may feed them, and what they may hold.

:class:`BedTable` decides, for every decoded frame, whether it joins its bed's stream:

* **assignment**: with ``beds:`` in the config only those beds are accepted (``unassigned_bed``);
* **frame size**: a bed with a configured ``size`` accepts only that size, others at most
  ``limits.frame_pixels`` pixels (``frame_size``);
* **ownership** (CURVE only): a bed with a configured ``camera`` accepts frames only from that key;
  any other bed is owned by the first key that streams it until it is forgotten (``not_owner``);
* **gaps**: frames missing from the sequence are counted; after a gap longer than a window (an outage,
  not a few frames dropped under load) the bed's window buffer starts afresh, so no window mixes frames
  from before and after it;
* **restarts**: a sequence number that goes backwards, jumps forward by more than a minute of frames,
  or a changed frame size starts the bed's stream afresh. With CURVE the owner may do so at any time;
  without CURVE (loopback) only after the stream was silent for ``windows.restart_quiet_s``, so a
  stray sender cannot silence a bed by replaying ``seq=0`` (``restart_refused``);
* **frame rate** (:mod:`.camera_rate`): the camera's rate is measured from the frames' capture times;
  a camera at another rate than the bundle's is resampled to it, so every window spans the same time
  (too slow a camera is refused: ``frame_rate``);
* **global bounds** (:mod:`.bounds`): a new stream reserves a full window of its frame size (plus the
  camera frame on display) from the frame budget and takes one of ``limits.beds`` places (when
  ``beds:`` is omitted); if either is
  exhausted, beds that went quiet are evicted least recently seen first, and a new bed is refused
  while every held bed is streaming (``capacity``).

Windows waiting for the model are counted per bed *id* (so a restarted stream does not get a fresh
allowance) and over all beds, in number and in bytes (:meth:`reserve_window`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from semiostream.bus.config import BedConfig, WindowConfig
from semiostream.core.frames import Frame
from semiostream.sources.windows import WindowAssembler

from .bounds import Bounds
from .camera_rate import CameraRate
from .metrics import BusMetrics
from .refusals import Refusals

if TYPE_CHECKING:
    from semiostream.core.preprocess_spec import PreprocessSpec

log = logging.getLogger(__name__)

BYTES_PER_PIXEL = 2
MAX_JUMP_SECONDS = 60.0


@dataclass
class BedState:
    """One admitted bed stream. ``shape`` is ``(H, W)``; ``roi`` is ``(x0, y0, x1, y1)`` in pixels."""

    bed: str
    assembler: WindowAssembler
    shape: tuple[int, int]
    roi: tuple[int, int, int, int] | None
    reserved_bytes: int
    owner: str | None = None
    tracker: Any = None
    last_seq: int = -1
    last_seen: float = 0.0
    frames: int = 0
    gaps: int = 0
    windows_scored: int = 0
    last_p: float | None = None
    last_latency_ms: float | None = None
    stale: bool = False
    detected_roi: tuple[int, int, int, int] | None = None
    roi_source: str = "full frame"  # config | camera | detected | full frame (nothing detected)
    roi_error: str | None = None
    intensity: tuple[float, float] | None = None  # raw (lo, hi) held for the stream / its open event
    rate: CameraRate | None = None  # the camera's measured rate and the resampling to the bundle's


class BedTable:
    """Admission and accounting of bed streams (see the module docstring).

    Args:
        spec: the bundle's preprocessing spec (window length, min frames).
        hop: frames between windows of one bed.
        windows: the config's window settings (stale/forget times, max in-flight, restart quiet time).
        bounds: global bounds.
        beds: the configured beds, or None to accept any bed id.
        fps: nominal frame rate (sizes the forward-jump limit).
        curve: True when frames are authenticated (peers have a ZAP User-Id).
        metrics, refuse: where admissions and refusals are counted.
        detector_factory: ``() -> RoiDetector`` for beds without a static ROI, or None.
        redetect_every: frames between re-detections (0: only at stream start).
    """

    def __init__(self, spec: PreprocessSpec, hop: int, windows: WindowConfig, bounds: Bounds,
                 beds: list[BedConfig] | None, fps: float, curve: bool, metrics: BusMetrics, refuse: Refusals,
                 detector_factory: Callable[[], Any] | None = None, redetect_every: int = 0) -> None:
        self.spec, self.hop, self.wcfg, self.bounds = spec, hop, windows, bounds
        self.configured = {b.id: b for b in beds} if beds is not None else None
        self.curve, self.metrics, self.refuse = curve, metrics, refuse
        self.detector_factory, self.redetect_every = detector_factory, redetect_every
        self.max_jump = max(spec.window, int(fps * MAX_JUMP_SECONDS))
        self.max_gap = spec.window  # frames missing beyond which the window buffer restarts (an outage)
        self.beds: OrderedDict[str, BedState] = OrderedDict()  # least recently seen first
        self.owners: dict[str, str] = {}  # bed -> key name that owns it (CURVE, no configured camera)
        self.inflight: dict[str, int] = {}  # bed id -> windows waiting for the model
        self.held_bytes = 0  # reserved by bed window buffers
        self.queued_bytes = 0  # held by windows waiting for the model
        self.queued = 0

    # ------------------------------------------------------------------------------ frames
    def admit(self, frame: Frame, peer: str | None, now: float | None = None) -> BedState | None:
        """The state ``frame`` belongs to (new, restarted or continuing), or None if it is refused
        (already counted). ``peer``: the sender's ZAP User-Id (CURVE) or None."""
        now = time.monotonic() if now is None else now
        bed = frame.bed
        conf = None
        if self.configured is not None:
            conf = self.configured.get(bed)
            if conf is None:
                self.refuse("unassigned_bed", f"bed {bed} is not assigned to this scorer")
                return None
        h, w = frame.image.shape
        if conf is not None and conf.size is not None:
            if (w, h) != tuple(conf.size):
                self.refuse("frame_size", f"bed {bed}: {w}x{h} frame, configured size {conf.size[0]}x{conf.size[1]}")
                return None
        elif h * w > self.bounds.frame_pixels:
            self.refuse("frame_size", f"bed {bed}: {w}x{h} frame is over limits.frame_pixels="
                                      f"{self.bounds.frame_pixels}; configure the bed's size")
            return None
        if self.curve and not self._owned_by(bed, conf, peer):
            self.refuse("not_owner", f"key {peer!r} sent a frame for bed {bed}, which it does not own")
            return None
        state = self.beds.get(bed)
        if state is not None:
            restart = self._restart_reason(state, frame)
            if restart == "duplicate":
                self.refuse("duplicate", f"bed {bed}: sequence number {frame.seq} again")
                return None
            if restart is not None:
                if not self.curve and now - state.last_seen < self.wcfg.restart_quiet_s:
                    self.refuse("restart_refused", f"bed {bed}: {restart} while its stream is live "
                                                   f"(seq {state.last_seq} -> {frame.seq})")
                    return None
                log.warning("bed %s: %s (seq %d -> %d); new stream", bed, restart, state.last_seq, frame.seq)
                self.metrics.restarts.labels(restart.split()[0]).inc()
                self._drop(bed)
                state = None
        if state is None:
            state = self._new(frame, conf, peer, now)
            if state is None:
                return None
        elif frame.seq > state.last_seq + 1:
            missing = frame.seq - state.last_seq - 1
            state.gaps += missing
            self.metrics.gaps.labels(bed).inc(missing)
            if missing > self.max_gap:  # no window spans an outage: the next one starts after it
                self.cut_windows(state)
        state.last_seq = frame.seq
        state.last_seen = now
        state.frames += 1
        self.beds.move_to_end(bed)
        if state.stale:
            state.stale = False
            log.info("bed %s: streaming again", bed)
        self.metrics.frames.labels(bed).inc()
        return state

    def cut_windows(self, state: BedState) -> None:
        """Drop the frames buffered before a gap, so the next window holds only frames after it (the
        camera's rate is measured afresh)."""
        state.assembler = WindowAssembler(state.bed, self.spec.window, self.hop, self.spec.min_frames)
        state.rate = CameraRate(self.spec.fps, self.spec.window)

    def _owned_by(self, bed: str, conf: BedConfig | None, peer: str | None) -> bool:
        if peer is None:
            return False
        if conf is not None and conf.camera is not None:
            return peer == conf.camera
        owner = self.owners.get(bed)  # set when the bed is admitted, so refused bed ids leave nothing behind
        return owner is None or owner == peer

    def _restart_reason(self, state: BedState, frame: Frame) -> str | None:
        if frame.image.shape != state.shape:
            return "frame_size changed"
        if frame.seq == state.last_seq:
            return "duplicate"
        if frame.seq < state.last_seq:
            return "sequence restarted"
        if frame.seq - state.last_seq > self.max_jump:
            return "sequence jumped"
        return None

    def _new(self, frame: Frame, conf: BedConfig | None, peer: str | None, now: float) -> BedState | None:
        bed = frame.bed
        h, w = frame.image.shape
        need = (self.spec.window + 1) * h * w * BYTES_PER_PIXEL  # see camera_rate: at most window + 1 frames
        limit_beds = self.configured is None
        while (self.held_bytes + self.queued_bytes + need > self.bounds.frame_bytes
               or (limit_beds and len(self.beds) >= self.bounds.beds)):
            victim = next(iter(self.beds.values()), None)
            if victim is None or now - victim.last_seen < self.wcfg.stale_after_s:
                self.refuse("capacity", f"bed {bed}: no room for a {w}x{h} stream ({len(self.beds)} beds, "
                                        f"{(self.held_bytes + self.queued_bytes) >> 20} MiB of frames held); "
                                        "raise limits.frame_bytes / limits.beds")
                return None
            log.warning("bed %s: quiet for %.0f s; evicted to make room for bed %s", victim.bed,
                        now - victim.last_seen, bed)
            self.forget(victim.bed)
        roi, roi_source, roi_error = None, "full frame", None
        static = conf.roi if conf is not None else None
        if static is not None:
            x0, y0, x1, y1 = static
            if x1 <= w and y1 <= h:
                roi, roi_source = static, "config"
            else:
                roi_error = (f"configured roi {list(static)} lies outside the {w}x{h} frame; using "
                             f"{'detection' if self.detector_factory else 'the full frame'} instead")
                log.error("bed %s: %s", bed, roi_error)
        if roi is None and frame.roi is not None:
            roi, roi_source = frame.roi, "camera"
        tracker = None
        if roi is None and self.detector_factory is not None:
            from semiostream.detectors.base import RoiTracker

            tracker = RoiTracker(self.detector_factory(), self.redetect_every)
        state = BedState(
            bed=bed, assembler=WindowAssembler(bed, self.spec.window, self.hop, self.spec.min_frames),
            shape=(h, w), roi=roi, reserved_bytes=need, owner=peer, tracker=tracker, roi_source=roi_source,
            roi_error=roi_error, last_seen=now, rate=CameraRate(self.spec.fps, self.spec.window),
        )
        self.beds[bed] = state
        if peer is not None:
            self.owners.setdefault(bed, peer)
        self.held_bytes += need
        self.metrics.beds.set(len(self.beds))
        log.info("bed %s: stream started (%dx%d)%s", bed, w, h, f" from {peer}" if peer else "")
        return state

    # ------------------------------------------------------------------------------ windows
    def reserve_window(self, bed: str, nbytes: int) -> str | None:
        """Account one window of ``nbytes`` about to wait for the model; returns the refusal reason
        (``backlog``: the bed's own allowance; ``queue_full``: over all beds; ``memory``: frame budget),
        or None when reserved."""
        if self.inflight.get(bed, 0) >= self.wcfg.max_inflight:
            return "backlog"
        if self.queued >= self.bounds.queued_windows:
            return "queue_full"
        if self.held_bytes + self.queued_bytes + nbytes > self.bounds.frame_bytes:
            return "memory"
        self.inflight[bed] = self.inflight.get(bed, 0) + 1
        self.queued += 1
        self.queued_bytes += nbytes
        return None

    def release_window(self, bed: str, nbytes: int) -> None:
        left = self.inflight.get(bed, 0) - 1
        if left > 0:
            self.inflight[bed] = left
        else:
            self.inflight.pop(bed, None)
        self.queued -= 1
        self.queued_bytes -= nbytes

    def hold_bytes(self, nbytes: int) -> bool:
        """Reserve ``nbytes`` of the frame budget for frames kept beyond their window (event evidence)."""
        if self.held_bytes + self.queued_bytes + nbytes > self.bounds.frame_bytes:
            return False
        self.held_bytes += nbytes
        return True

    def release_bytes(self, nbytes: int) -> None:
        self.held_bytes -= nbytes

    # ------------------------------------------------------------------------------ forgetting
    def _drop(self, bed: str) -> None:
        state = self.beds.pop(bed, None)
        if state is not None:
            self.held_bytes -= state.reserved_bytes
        self.metrics.beds.set(len(self.beds))

    def forget(self, bed: str) -> None:
        """Drop a bed's stream, its ownership and its per-bed metric series."""
        self._drop(bed)
        self.owners.pop(bed, None)
        for series in (self.metrics.frames, self.metrics.gaps, self.metrics.windows, self.metrics.staleness,
                       self.metrics.camera_fps):
            try:
                series.remove(bed)
            except KeyError:
                pass

    def housekeeping(self, now: float) -> None:
        """Mark silent beds stale and forget those silent for ``forget_after_s``."""
        for bed, s in list(self.beds.items()):
            age = now - s.last_seen
            if age > self.wcfg.forget_after_s and not self.inflight.get(bed):
                log.warning("bed %s: silent for %.0f s; forgetting its stream", bed, age)
                self.forget(bed)
                continue
            self.metrics.staleness.labels(bed).set(age)
            if age > self.wcfg.stale_after_s and not s.stale:
                s.stale = True
                log.warning("bed %s: stale (no frames for %.1f s)", bed, age)
        self.metrics.beds.set(sum(1 for s in self.beds.values() if not s.stale))
