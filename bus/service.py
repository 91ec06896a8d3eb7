"""The scorer service: frames of many beds in, p(TLE) per window and per event out.

One thread owns every socket (ZeroMQ sockets are not thread-safe) and runs :meth:`Service.run`:

* SUB (bound, frames): decode and validate each message (:mod:`.protocol`); bad ones are counted by
  reason and dropped. Per bed, a :class:`~semiostream.dali_pipes.windows.WindowAssembler` cuts a
  window of ``spec.window`` frames every ``hop`` frames, which is submitted to the engines' dynamic
  batcher, so windows of many beds share one model batch.
* PUB (bound, results): ``score/<bed>`` per window, ``event/<bed>`` when an event closes.
* REP (bound, control): ``event start <bed>``, ``event stop <bed>``, ``status``, ``ping``
  (plain text or JSON ``{"cmd": "event", "action": "start", "bed": "bed-01"}``).

Memory stays bounded when the model is slower than the cameras: ZeroMQ queues hold a few seconds of
frames per camera (high-water marks from the frame rate), each bed keeps at most one window of frames,
and at most ``max_inflight`` windows per bed wait for the model; newer windows are dropped and counted
(``dropped{reason="backlog"}``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from semiostream.config import ServiceConfig
from semiostream.dali_pipes.windows import Window, WindowAssembler
from semiostream.models.bundle import PreprocessSpec

from .metrics import BusMetrics
from .protocol import (
    FRAME_PREFIX,
    EventResult,
    Frame,
    ProtocolError,
    ScoreResult,
    decode_frame,
    encode_result,
)
from .publisher import hwm_for
from .security import ServerSecurity

log = logging.getLogger(__name__)

#: submit(frames [T, H, W] uint16, roi (x0, y0, x1, y1) | None) -> Future[p(TLE)]
SubmitFn = Callable[[np.ndarray, tuple[int, int, int, int] | None], Future]


@dataclass
class Event:
    """An open (or closing) seizure event on one bed."""

    event_id: str
    start_t_ns: int
    stop_t_ns: int | None = None
    probs: list[float] = field(default_factory=list)
    pending: int = 0


@dataclass
class BedState:
    bed: str
    assembler: WindowAssembler
    shape: tuple[int, int]
    roi: tuple[int, int, int, int] | None
    tracker: Any = None
    last_seq: int = -1
    last_seen: float = 0.0
    frames: int = 0
    gaps: int = 0
    inflight: int = 0
    windows_scored: int = 0
    last_p: float | None = None
    last_latency_ms: float | None = None
    stale: bool = False
    detected_roi: tuple[int, int, int, int] | None = None
    roi_source: str = "full frame"  # config | camera | detected | full frame (nothing detected)
    seq_times: deque = field(default_factory=deque)  # (stream index, seq, t_ns) of buffered frames
    index: int = 0


@dataclass
class _Pending:
    bed: str
    future: Future
    first_seq: int
    last_seq: int
    first_t_ns: int
    last_t_ns: int
    event: Event | None


class Service:
    """Scorer service bound to the endpoints of ``config``.

    Args:
        config: validated :class:`~semiostream.config.ServiceConfig`.
        submit: scores one window asynchronously (the engines batcher's submit); see :data:`SubmitFn`.
        spec: the bundle's preprocessing spec (window length, min frames).
        labels: (negative, positive) label names, e.g. ("FLE", "TLE").
        bundle_id: the model bundle's id, sent with every result.
        detector_factory: optional ``() -> RoiDetector`` for beds without a static ROI.
    """

    def __init__(self, config: ServiceConfig, submit: SubmitFn, spec: PreprocessSpec,
                 labels: tuple[str, str], bundle_id: str, detector_factory: Callable[[], Any] | None = None,
                 metrics: BusMetrics | None = None) -> None:
        self.cfg, self.submit, self.spec = config, submit, spec
        self.labels, self.bundle_id = tuple(labels), bundle_id
        self.detector_factory = detector_factory
        self.metrics = metrics or BusMetrics()
        self.beds: dict[str, BedState] = {}
        self.events: dict[str, Event] = {}
        self.closing: list[tuple[str, Event]] = []
        self.pending: list[_Pending] = []
        self.static_rois = {b.id: b.roi for b in config.beds} if config.beds else {}
        self.assigned = {b.id for b in config.beds} if config.beds else None
        self.hop = min(config.windows.hop, spec.window)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ctx = zmq.Context()
        self._auth = None
        self._sockets_open = False

    # ---------------------------------------------------------------- lifecycle
    def _open(self) -> None:
        ep, sec = self.cfg.endpoints, self.cfg.security
        server = ServerSecurity(sec.secret_key, sec.allowed_clients, sec.insecure)
        for endpoint in (ep.frames, ep.results, ep.control):
            server.check(endpoint)
        self._auth = server.start_authenticator(self._ctx)
        self.frames_sock = self._ctx.socket(zmq.SUB)
        self.frames_sock.rcvhwm = hwm_for(self.cfg.fps, self.cfg.queue_seconds)
        self.frames_sock.linger = 0
        server.apply(self.frames_sock)
        if self.assigned is None:
            self.frames_sock.setsockopt(zmq.SUBSCRIBE, FRAME_PREFIX)
        else:
            for bed in sorted(self.assigned):
                self.frames_sock.setsockopt(zmq.SUBSCRIBE, FRAME_PREFIX + bed.encode())
        self.frames_sock.bind(ep.frames)
        self.results_sock = self._ctx.socket(zmq.PUB)
        self.results_sock.linger = 0
        self.results_sock.sndhwm = 10_000
        server.apply(self.results_sock)
        self.results_sock.bind(ep.results)
        self.control_sock = self._ctx.socket(zmq.REP)
        self.control_sock.linger = 0
        server.apply(self.control_sock)
        self.control_sock.bind(ep.control)
        if self.cfg.metrics_port:
            self.metrics.serve(self.cfg.metrics_port)
        self._sockets_open = True

    def start(self) -> Service:
        """Run in a background thread; returns once the sockets are bound (raises if binding failed)."""
        self._thread = threading.Thread(target=self._run_guarded, name="semiostream-service", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run_guarded(self) -> None:
        try:
            self.run()
        except BaseException as e:  # reported to start() or stop()
            self._error = e
            self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Serve until :meth:`stop` (or KeyboardInterrupt). Never raises on bad input."""
        self._open()
        self._ready.set()
        poller = zmq.Poller()
        poller.register(self.frames_sock, zmq.POLLIN)
        poller.register(self.control_sock, zmq.POLLIN)
        last_housekeeping = 0.0
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(timeout=5))
                if self.frames_sock in events:
                    for _ in range(512):  # drain, but keep serving control and results
                        try:
                            parts = self.frames_sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                        except zmq.Again:
                            break
                        self.handle_frame_message(parts)
                if self.control_sock in events:
                    self._serve_control()
                self._publish_done()
                now = time.monotonic()
                if now - last_housekeeping > 0.5:
                    self._housekeeping(now)
                    last_housekeeping = now
        finally:
            self._close()

    def _close(self) -> None:
        if self._sockets_open:
            for s in (self.frames_sock, self.results_sock, self.control_sock):
                s.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self.metrics.close()
        self._ctx.term()

    # ---------------------------------------------------------------- frames
    def handle_frame_message(self, parts: list) -> None:
        """Decode one message and feed it to its bed; any problem is counted, never raised."""
        try:
            frame = decode_frame(parts)
        except ProtocolError as e:
            self.metrics.dropped.labels(e.reason).inc()
            log.debug("dropped message: %s", e)
            return
        if self.assigned is not None and frame.bed not in self.assigned:
            self.metrics.dropped.labels("unassigned_bed").inc()
            return
        try:
            self._ingest(frame)
        except Exception:  # a bug must not take the service down; count and log it
            self.metrics.dropped.labels("internal_error").inc()
            log.exception("internal error on a frame of bed %s", frame.bed)

    def _new_bed(self, frame: Frame) -> BedState:
        roi = self.static_rois.get(frame.bed) or frame.roi
        tracker = None
        if roi is None and self.detector_factory is not None:
            from semiostream.dali_pipes.roi import RoiTracker

            tracker = RoiTracker(self.detector_factory(), self.cfg.detector.redetect_every)
        state = BedState(
            bed=frame.bed,
            assembler=WindowAssembler(frame.bed, self.spec.window, self.hop, self.spec.min_frames),
            shape=frame.image.shape, roi=roi, tracker=tracker,
            roi_source="config" if frame.bed in self.static_rois and roi else "camera" if roi else "full frame",
        )
        self.beds[frame.bed] = state
        self.metrics.beds.set(len(self.beds))
        log.info("bed %s: stream started (%dx%d)", frame.bed, frame.image.shape[1], frame.image.shape[0])
        return state

    def _ingest(self, frame: Frame) -> None:
        state = self.beds.get(frame.bed)
        if state is not None and frame.image.shape != state.shape:
            log.warning("bed %s: frame size changed %s -> %s; re-initialising", frame.bed, state.shape,
                        frame.image.shape)
            self.metrics.restarts.labels("frame_size").inc()
            state = None
        elif state is not None and frame.seq <= state.last_seq:
            if frame.seq == state.last_seq:
                self.metrics.dropped.labels("duplicate").inc()
                return
            log.warning("bed %s: sequence restarted at %d (publisher restart); new stream", frame.bed, frame.seq)
            self.metrics.restarts.labels("sequence").inc()
            state = None
        if state is None:
            state = self._new_bed(frame)
        elif frame.seq > state.last_seq + 1:
            missing = frame.seq - state.last_seq - 1
            state.gaps += missing
            self.metrics.gaps.labels(frame.bed).inc(missing)
        state.last_seq = frame.seq
        state.last_seen = time.monotonic()
        state.frames += 1
        if state.stale:
            state.stale = False
            log.info("bed %s: streaming again", frame.bed)
        self.metrics.frames.labels(frame.bed).inc()
        state.seq_times.append((state.index, frame.seq, frame.t_ns))
        state.index += 1
        if frame.roi is not None and frame.bed not in self.static_rois:
            state.roi, state.roi_source = frame.roi, "camera"
        for window in state.assembler.push(frame.image, frame.t_ns / 1e9):
            self._submit_window(state, window)
        while len(state.seq_times) > self.spec.window:
            state.seq_times.popleft()

    def _submit_window(self, state: BedState, window: Window) -> None:
        if state.inflight >= self.cfg.windows.max_inflight:
            self.metrics.dropped.labels("backlog").inc()
            return
        base = state.seq_times[0][0]
        _, first_seq, first_t = state.seq_times[window.start - base]
        _, last_seq, last_t = state.seq_times[window.last - base]
        roi = state.roi
        if roi is None and state.tracker is not None:
            roi = state.tracker.roi_for(window.frames[0], window.start).as_tuple()
            choice = state.tracker.choice
            state.roi_source = "full frame" if choice is None or choice.fallback else "detected"
            state.detected_roi = roi
        event = self.events.get(state.bed)
        try:
            future = self.submit(window.frames, roi)
        except Exception as e:
            self.metrics.window_errors.inc()
            log.error("bed %s: window not accepted by the model: %s", state.bed, e)
            return
        state.inflight += 1
        if event is not None:
            event.pending += 1
        self.pending.append(_Pending(state.bed, future, first_seq, last_seq, first_t, last_t, event))

    # ---------------------------------------------------------------- results
    def _label(self, p: float) -> str:
        return self.labels[1] if p >= 0.5 else self.labels[0]

    def _send(self, result: ScoreResult | EventResult) -> None:
        try:
            self.results_sock.send_multipart(encode_result(result), flags=zmq.NOBLOCK)
        except zmq.Again:
            self.metrics.dropped.labels("results_backlog").inc()

    def _publish_done(self) -> None:
        if not self.pending:
            return
        still = []
        for item in self.pending:
            if not item.future.done():
                still.append(item)
                continue
            state = self.beds.get(item.bed)
            if state is not None:
                state.inflight = max(0, state.inflight - 1)
            if item.event is not None:
                item.event.pending -= 1
            try:
                p = float(item.future.result())
            except Exception as e:
                self.metrics.window_errors.inc()
                log.error("bed %s: scoring window %d-%d failed: %s", item.bed, item.first_seq, item.last_seq, e)
                continue
            latency_ms = (time.time_ns() - item.last_t_ns) / 1e6
            self.metrics.latency.observe(latency_ms / 1e3)
            self.metrics.windows.labels(item.bed).inc()
            if state is not None:
                state.windows_scored += 1
                state.last_p, state.last_latency_ms = p, latency_ms
            if item.event is not None:
                item.event.probs.append(p)
            self._send(ScoreResult(
                bed=item.bed, first_seq=item.first_seq, last_seq=item.last_seq, first_t_ns=item.first_t_ns,
                last_t_ns=item.last_t_ns, p_tle=p, label=self._label(p), bundle_id=self.bundle_id,
                latency_ms=round(latency_ms, 3), event_id=item.event.event_id if item.event else None,
            ))
        self.pending = still
        self._close_finished_events()

    def _close_finished_events(self) -> None:
        remaining = []
        for bed, ev in self.closing:
            if ev.pending > 0:
                remaining.append((bed, ev))
                continue
            p = float(np.mean(ev.probs)) if ev.probs else None
            self._send(EventResult(
                bed=bed, event_id=ev.event_id, start_t_ns=ev.start_t_ns, stop_t_ns=ev.stop_t_ns or 0,
                windows=len(ev.probs), p_tle=p, label=self._label(p) if p is not None else None,
                bundle_id=self.bundle_id,
            ))
            log.info("bed %s: event %s closed, %d windows, p(TLE)=%s", bed, ev.event_id, len(ev.probs), p)
        self.closing = remaining

    # ---------------------------------------------------------------- control
    def _serve_control(self) -> None:
        try:
            raw = self.control_sock.recv(flags=zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            reply = self.control(raw)
        except Exception as e:  # never leave REP without a reply
            log.exception("control request failed")
            reply = {"ok": False, "error": f"internal error: {e}"}
        self.control_sock.send(json.dumps(reply).encode())

    def control(self, raw: bytes) -> dict:
        """Handle one control request; returns the JSON-able reply."""
        if len(raw) > 4096:
            return {"ok": False, "error": "request too long"}
        text = raw.decode("utf-8", "replace").strip()
        if text.startswith("{"):
            try:
                req = json.loads(text)
                words = [str(req.get("cmd", "")), str(req.get("action", "")), str(req.get("bed", ""))]
            except (json.JSONDecodeError, AttributeError):
                return {"ok": False, "error": "bad JSON request"}
        else:
            words = text.split()
        words = [w for w in words if w]
        if words == ["ping"]:
            return {"ok": True, "pong": True}
        if words == ["status"]:
            return {"ok": True, "status": self.status()}
        if len(words) == 3 and words[0] == "event" and words[1] in ("start", "stop"):
            return self._event(words[1], words[2])
        return {"ok": False, "error": f"unknown request {text[:80]!r}; use 'event start BED', "
                                      "'event stop BED', 'status' or 'ping'"}

    def _event(self, action: str, bed: str) -> dict:
        if self.assigned is not None and bed not in self.assigned:
            return {"ok": False, "error": f"bed {bed!r} is not assigned to this scorer"}
        now = time.time_ns()
        if action == "start":
            if bed in self.events:
                return {"ok": False, "error": f"an event is already open on {bed}",
                        "event_id": self.events[bed].event_id}
            ev = Event(event_id=f"{bed}-{uuid.uuid4().hex[:8]}", start_t_ns=now)
            self.events[bed] = ev
            log.info("bed %s: event %s started", bed, ev.event_id)
            return {"ok": True, "event_id": ev.event_id}
        ev = self.events.pop(bed, None)
        if ev is None:
            return {"ok": False, "error": f"no open event on {bed}"}
        ev.stop_t_ns = now
        self.closing.append((bed, ev))
        self._close_finished_events()
        return {"ok": True, "event_id": ev.event_id, "windows_so_far": len(ev.probs), "pending": ev.pending}

    def status(self) -> dict:
        now = time.monotonic()
        beds = {}
        for bed, s in self.beds.items():
            beds[bed] = {
                "frames": s.frames, "last_seq": s.last_seq, "gaps": s.gaps, "age_s": round(now - s.last_seen, 3),
                "stale": s.stale, "windows_scored": s.windows_scored, "inflight": s.inflight,
                "last_p_tle": s.last_p, "last_latency_ms": s.last_latency_ms,
                "roi": s.roi or s.detected_roi, "roi_source": s.roi_source,
                "event": self.events[bed].event_id if bed in self.events else None,
                "size": [s.shape[1], s.shape[0]],
            }
        dropped = {}
        for metric in self.metrics.dropped.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    dropped[sample.labels["reason"]] = int(sample.value)
        return {"bundle_id": self.bundle_id, "beds": beds, "dropped": dropped,
                "pending_windows": len(self.pending), "open_events": sorted(self.events)}

    # ---------------------------------------------------------------- housekeeping
    def _housekeeping(self, now: float) -> None:
        w = self.cfg.windows
        for bed, s in list(self.beds.items()):
            age = now - s.last_seen
            self.metrics.staleness.labels(bed).set(age)
            if age > w.forget_after_s and s.inflight == 0:
                log.warning("bed %s: silent for %.0f s; forgetting its stream", bed, age)
                del self.beds[bed]
                self.metrics.staleness.remove(bed)
            elif age > w.stale_after_s and not s.stale:
                s.stale = True
                log.warning("bed %s: stale (no frames for %.1f s)", bed, age)
        self.metrics.beds.set(sum(1 for s in self.beds.values() if not s.stale))
