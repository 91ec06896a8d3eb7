"""The scorer service: frames of many beds in, p(TLE) per window and per event out.

One thread owns every socket (ZeroMQ sockets are not thread-safe) and runs :meth:`Service.run`:

* frames (SUB): decode and validate each message (:mod:`.protocol`), identify the sender from ZAP
  (CURVE), admit it to its bed's stream (:mod:`.beds`: ownership, restarts, global bounds). Per bed a
  :class:`~semiostream.sources.windows.WindowAssembler` cuts a window of ``spec.window`` frames every
  ``hop`` frames of the camera's stream at the bundle's rate (:mod:`.camera_rate`: resampled on the
  frames' capture times when the camera's rate differs), submitted to the engines' dynamic batcher,
  so windows of many beds share one batch.
* results (XPUB): ``score/<bed>`` per window, ``event/<bed>`` when an event closes, each appended to
  the results database (:mod:`.store`) as it is published.
* control (ROUTER): ``event start|stop <bed>``, ``status``, ``ping`` (:mod:`.control`, :mod:`.events`).

Nothing a client sends ends or stalls the loop: every message is handled within a bounded budget per
turn, every refusal is counted by reason and logged at a bounded rate (:mod:`.refusals`), and memory
is bounded over all beds (:mod:`.bounds`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

from semiostream.bus.config import ServiceConfig
from semiostream.core.batching import live_max_batch
from semiostream.core.decision import decide
from semiostream.core.evidence import DecisiveWindow, WindowRecord
from semiostream.core.frames import Window

from .beds import BedState, BedTable
from .bounds import Bounds
from .control import ControlRefused, Request, parse_request, split_envelope
from .endpoints import Sockets, bind_sockets
from .events import Event, EventBook
from .metrics import BusMetrics
from .protocol import ProtocolError, ScoreResult, decode_frame, encode_result
from .refusals import Refusals
from .reports import ReportWriter
from .roles import Role
from .store import StoreError

if TYPE_CHECKING:
    from semiostream.core.preprocess_spec import PreprocessSpec

log = logging.getLogger(__name__)

#: submit(frames [T, H, W] uint16, roi (x0, y0, x1, y1) | None, intensity (lo, hi) | None) -> Future[p(TLE)]
SubmitFn = Callable[[np.ndarray, tuple[int, int, int, int] | None, tuple[float, float] | None], Future]

FRAME_BUDGET = 512  # frame messages handled per loop turn (then control, results, housekeeping)
CONTROL_BUDGET = 64
RELOAD_EVERY_S = 2.0
PRUNE_SLICE = 5000  # windows deleted per retention slice (~50 ms); slices follow each other between turns
RECLAIM_PAGES = 8192  # pages (32 MiB) given back to the filesystem per retention pass


@dataclass
class _Pending:
    bed: str
    future: Future
    nbytes: int
    first_seq: int
    last_seq: int
    first_t_ns: int
    last_t_ns: int
    event: Event | None
    frames: np.ndarray | None = None  # kept while the window's event gathers evidence for its report
    roi: tuple[int, int, int, int] | None = None
    intensity: tuple[float, float] | None = None


class Service:
    """Scorer service bound to the endpoints of ``config``.

    Args:
        config: validated :class:`~semiostream.bus.config.ServiceConfig`.
        submit: scores one window asynchronously (the engines batcher's submit); see :data:`SubmitFn`.
        spec: the bundle's preprocessing spec (window length, min frames).
        labels: (negative, positive) label names, e.g. ("FLE", "TLE").
        bundle_id: the model bundle's id, sent with every result.
        detector_factory: optional ``() -> RoiDetector`` for beds without a static ROI.
        metrics: Prometheus metrics (a fresh set by default).
        bounds: global bounds (derived from ``config.limits`` and this machine by default, for the CPU's
            batch when ``batching.max_batch`` is null; :class:`~.runtime.ScorerRuntime` passes its own).
        sockets: already bound sockets (:func:`~.endpoints.bind_sockets`); bound in :meth:`run` if None.
        store: results database (:class:`~.store.ResultStore`) or None; its open events are restored.
        refusals: where refusals are counted (one per metrics; the sockets' authenticator uses it too).
        reports: writes an event review report per closed event (:mod:`.reports`), or None.
    """

    def __init__(self, config: ServiceConfig, submit: SubmitFn, spec: PreprocessSpec,
                 labels: tuple[str, str], bundle_id: str, detector_factory: Callable[[], Any] | None = None,
                 metrics: BusMetrics | None = None, bounds: Bounds | None = None, sockets: Sockets | None = None,
                 store=None, refusals: Refusals | None = None, reports: ReportWriter | None = None) -> None:
        self.cfg, self.submit, self.spec = config, submit, spec
        self.labels, self.bundle_id = tuple(labels), bundle_id
        self.metrics = metrics or BusMetrics()
        self.refuse = refusals or Refusals(self.metrics.dropped)
        self.bounds = bounds or Bounds.derive(config.limits, live_max_batch(config.batching.max_batch, on_gpu=False))
        self.sockets = sockets
        self.store = store
        self.hop = min(config.windows.hop, spec.window)
        self._holds_intensity = (spec.intensity_mode == "percentile"
                                 and getattr(spec, "intensity_scope", "window") == "video")
        self.table = BedTable(spec, self.hop, config.windows, self.bounds, config.beds, config.fps,
                              curve=config.security.secret_key is not None, metrics=self.metrics,
                              refuse=self.refuse, detector_factory=detector_factory,
                              redetect_every=config.detector.redetect_every)
        self.reports = reports
        self.events = EventBook(self.bounds.open_events, store, evidence=reports is not None)
        self._released: deque[int] = deque()  # frame bytes the report thread no longer needs
        self.pending: list[_Pending] = []
        self.reload_requested = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._pruning = False  # a retention pass is under way (one slice per turn)
        self._error: BaseException | None = None

    @property
    def beds(self) -> dict[str, BedState]:
        return self.table.beds

    # ---------------------------------------------------------------- lifecycle
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
        if self.sockets is None:
            beds = [b.id for b in self.cfg.beds] if self.cfg.beds is not None else None
            self.sockets = bind_sockets(self.cfg, self.bounds, self.refuse, beds)
            if self.cfg.metrics_port:
                self.metrics.serve(self.cfg.metrics_port)
        s = self.sockets
        self._ready.set()
        poller = zmq.Poller()
        for sock in (s.frames, s.control, s.results, *s.monitors):
            poller.register(sock, zmq.POLLIN)
        self._last = {"housekeeping": 0.0, "reload": 0.0, "prune": 0.0}
        try:
            while not self._stop.is_set():
                try:
                    self._turn(poller)
                except Exception:  # a bug must not end the scorer: count, log, go on
                    self.metrics.dropped.labels("internal_error").inc()
                    log.exception("internal error in the service loop")
                    time.sleep(0.01)
        finally:
            self._close()

    def _turn(self, poller: zmq.Poller) -> None:
        """One turn of the loop: bounded work on each socket, then results and housekeeping."""
        s = self.sockets
        events = dict(poller.poll(timeout=5))
        if s.frames in events:
            self._drain_frames()
        if s.control in events:
            self._serve_control()
        if s.monitors:  # first: the results guard learns of new connections before subscriptions are read
            s.poll_monitors(self.refuse, events, lambda name: self.metrics.disconnects.labels(name).inc())
        if s.results in events:
            s.grant_subscriptions(self.refuse)
        self._publish_done()
        while self._released:
            self.table.release_bytes(self._released.popleft())
        now, last = time.monotonic(), self._last
        if now - last["housekeeping"] > 0.5:
            self.table.housekeeping(now)
            last["housekeeping"] = now
        if s.auth is not None and (self.reload_requested.is_set() or now - last["reload"] > RELOAD_EVERY_S):
            self.reload_requested.clear()
            s.auth.reload()
            last["reload"] = now
        if self.store is not None and (self._pruning or now - last["prune"] > self.cfg.store.prune_every_s):
            self._prune_slice(now)

    def _prune_slice(self, now: float) -> None:
        """One slice of the retention pass (a short transaction between socket turns); when the pass is
        done, give a slice of the freed pages back to the filesystem."""
        if not self._pruning:
            self._pruning, self._last["prune"] = True, now
        n = self._guard("pruning the results database", self.store.prune, None, PRUNE_SLICE)
        if n is None or n < PRUNE_SLICE:
            self._pruning = False
            self._guard("reclaiming free space in the results database", self.store.reclaim, RECLAIM_PAGES)

    def _close(self) -> None:
        if self.sockets is not None:
            self.sockets.close()
            self.sockets = None
        self.metrics.close()

    def _guard(self, doing: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn``; a failure is logged and counted, never raised into the loop (a results-database
        failure, e.g. a full disk, is counted and logged at a bounded rate, without a traceback)."""
        try:
            return fn(*args)
        except StoreError as e:
            self.refuse("store_error", f"{doing}: {e}")
            return None
        except Exception:
            self.metrics.dropped.labels("internal_error").inc()
            log.exception("internal error while %s", doing)
            return None

    # ---------------------------------------------------------------- frames
    def _drain_frames(self) -> None:
        sock = self.sockets.frames
        for _ in range(FRAME_BUDGET):  # drain, but keep serving control and results
            try:
                parts = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.handle_frame_message(parts)

    def handle_frame_message(self, parts: list) -> None:
        """Decode one message and feed it to its bed; any problem is counted, never raised."""
        try:
            frame = decode_frame(parts)
        except ProtocolError as e:
            self.refuse(e.reason, str(e)[:200])
            return
        peer = None
        if self.sockets is not None and self.sockets.curve:
            peer = parts[0].get("User-Id") if hasattr(parts[0], "get") else None
            if peer is None or not self.sockets.auth.allowed(Role.CAMERA, peer):
                self.refuse("revoked_key", f"frame of bed {frame.bed} from key {peer!r}, no longer a camera")
                return
        self._guard(f"a frame of bed {frame.bed}", self._ingest, frame, peer)

    def _ingest(self, frame, peer: str | None) -> None:
        state = self.table.admit(frame, peer)
        if state is None:
            return
        if frame.roi is not None and state.roi_source != "config":
            state.roi, state.roi_source = frame.roi, "camera"
        rate = state.rate
        was = rate.mode
        slots = rate.push(frame.image, frame.seq, frame.t_ns)
        if slots is None:  # capture time jumped by more than a window: no window spans the outage
            self.table.cut_windows(state)
            rate = state.rate
            slots = rate.push(frame.image, frame.seq, frame.t_ns)
        if rate.camera_fps is not None:
            self.metrics.camera_fps.labels(state.bed).set(rate.camera_fps)
        if rate.mode != was:
            log.log(logging.INFO if rate.mode == "as is" else logging.WARNING, "bed %s: %s", state.bed,
                    rate.describe())
        if rate.refused is not None:
            self.refuse("frame_rate", f"bed {state.bed}: {rate.refused}")
            return
        for image, seq, t_ns in slots:  # frames at the bundle's rate (see bus.camera_rate)
            for window in state.assembler.push(image, t_ns, seq):
                self._submit_window(state, window)

    def _submit_window(self, state: BedState, window: Window) -> None:
        nbytes = window.frames.nbytes
        first_seq, last_seq, first_t, last_t = window.first_seq, window.last_seq, window.first_t_ns, window.last_t_ns
        event = self.events.open.get(state.bed)
        evidence = event.evidence if event is not None else None
        refused = self.table.reserve_window(state.bed, nbytes)
        if refused is not None:
            self.refuse(refused, f"bed {state.bed}: window dropped, the model is behind")
            if evidence is not None:
                evidence.note(WindowRecord(first_seq, last_seq, first_t, last_t, None, "dropped"))
            return
        roi = state.roi
        if roi is None and state.tracker is not None:
            roi = state.tracker.roi_for(window.frames[0], window.start).as_tuple()
            choice = state.tracker.choice
            state.roi_source = "full frame" if choice is None or choice.fallback else "detected"
            state.detected_roi = roi
        if state.intensity is None and self._holds_intensity:  # fixed by the stream's / event's first window
            from semiostream.dali_pipes.event_intensity import segment_window

            state.intensity = segment_window(window.frames, roi, self.spec)
        try:
            future = self.submit(window.frames, roi, state.intensity)
        except Exception as e:
            self.table.release_window(state.bed, nbytes)
            self.metrics.window_errors.inc()
            log.error("bed %s: window not accepted by the model: %s", state.bed, e)
            return
        if event is not None:
            event.pending += 1
        if evidence is not None and evidence.first_frame is None:
            choice = state.tracker.choice if state.tracker is not None else None
            evidence.first_frame = np.array(window.frames[0])
            evidence.roi, evidence.roi_source = roi, state.roi_source
            evidence.detections = [d for d in (getattr(choice, "person", None), getattr(choice, "bed", None)) if d]
            evidence.notes = [m for m in (getattr(choice, "message", ""), state.roi_error) if m]
        self.pending.append(_Pending(state.bed, future, nbytes, first_seq, last_seq, first_t, last_t, event,
                                     window.frames if evidence is not None else None, roi, state.intensity))

    # ---------------------------------------------------------------- results
    def _label(self, p: float) -> str:
        return decide(p, self.labels, self.cfg.threshold)

    def _send(self, parts: list[bytes]) -> None:
        try:
            self.sockets.results.send_multipart(parts, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.refuse("results_backlog", "results socket full")

    def _publish_done(self) -> None:
        if self.pending:
            still = []
            for item in self.pending:
                if item.future.done():
                    self._guard(f"publishing a window of bed {item.bed}", self._publish_window, item)
                else:
                    still.append(item)
            self.pending = still
        for ev in self.events.finished():  # recorded before it is published, like every window
            summary = ev.summary(self.labels, self.bundle_id, self.cfg.threshold)
            if self.reports is not None and ev.evidence is not None:
                summary = dataclasses.replace(summary, report=str(self.reports.path_for(ev.event_id)))
                self.reports.submit(ev.evidence, summary, self._released.append)
            self._guard(f"recording event {ev.event_id}", self.events.record, summary)
            self._send(encode_result(summary))

    def _publish_window(self, item: _Pending) -> None:
        self.table.release_window(item.bed, item.nbytes)
        if item.event is not None:
            item.event.pending -= 1
        evidence = item.event.evidence if item.event is not None else None
        try:
            p = float(item.future.result())
        except Exception as e:
            self.metrics.window_errors.inc()
            log.error("bed %s: scoring window %d-%d failed: %s", item.bed, item.first_seq, item.last_seq, e)
            if evidence is not None:
                evidence.note(WindowRecord(item.first_seq, item.last_seq, item.first_t_ns, item.last_t_ns, None,
                                           "failed"))
            return
        if evidence is not None:
            evidence.note(WindowRecord(item.first_seq, item.last_seq, item.first_t_ns, item.last_t_ns, p, "scored"))
            if item.frames is not None:
                kept = DecisiveWindow(item.frames, item.roi, p, item.first_seq, item.first_t_ns, item.intensity)
                self.table.release_bytes(evidence.offer(kept, self.table.hold_bytes))
        latency_ms = (time.time_ns() - item.last_t_ns) / 1e6
        self.metrics.latency.observe(latency_ms / 1e3)
        state = self.table.beds.get(item.bed)
        if state is not None:
            self.metrics.windows.labels(item.bed).inc()
            state.windows_scored += 1
            state.last_p, state.last_latency_ms = p, latency_ms
        if item.event is not None:
            item.event.probs.append(p)
        result = ScoreResult(
            bed=item.bed, first_seq=item.first_seq, last_seq=item.last_seq, first_t_ns=item.first_t_ns,
            last_t_ns=item.last_t_ns, p_tle=p, label=self._label(p), bundle_id=self.bundle_id,
            latency_ms=round(latency_ms, 3), event_id=item.event.event_id if item.event else None,
        )
        if self.store is not None:
            self._guard(f"recording a window of bed {item.bed}", self.store.add_window, result)
        self._send(encode_result(result))

    # ---------------------------------------------------------------- control
    def _serve_control(self) -> None:
        sock = self.sockets.control
        for _ in range(CONTROL_BUDGET):
            try:
                parts = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                envelope, body = split_envelope([p.bytes for p in parts])
            except ControlRefused as e:
                self.refuse(f"control_{e.reason}", str(e))
                if len(parts) >= 1:  # a DEALER may still read the reason
                    self._reply([parts[0].bytes], {"ok": False, "error": str(e)})
                continue
            reply = self._guard("a control request", self.control_request, body, parts[-1])
            self._reply(envelope, reply or {"ok": False, "error": "internal error; see the scorer's log"})

    def _reply(self, envelope: list[bytes], reply: dict) -> None:
        try:  # ROUTER drops replies to peers that are gone or not reading (their queue is full)
            self.sockets.control.send_multipart([*envelope, json.dumps(reply).encode()], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            self.refuse("control_reply", "control reply could not be queued")

    def control_request(self, body: bytes, frame: Any = None) -> dict:
        """Handle one control request body; returns the JSON-able reply."""
        if self.sockets is not None and self.sockets.curve:
            peer = frame.get("User-Id") if hasattr(frame, "get") else None
            if peer is None or not self.sockets.auth.allowed(Role.OPERATOR, peer):
                self.refuse("revoked_key", f"control request from key {peer!r}, no longer an operator")
                return {"ok": False, "error": "this key is not on the operators allow-list"}
        try:
            req = parse_request(body)
        except ControlRefused as e:
            self.refuse(f"control_{e.reason}", str(e))
            return {"ok": False, "error": str(e)}
        return self.control(req)

    def control(self, req: Request) -> dict:
        if req.cmd == "ping":
            return {"ok": True, "pong": True}
        if req.cmd == "status":
            return {"ok": True, "status": self.status()}
        if self.table.configured is not None and req.bed not in self.table.configured:
            self.refuse("control_bed", f"event {req.action} for bed {req.bed}, not assigned to this scorer")
            return {"ok": False, "error": f"bed {req.bed!r} is not assigned to this scorer"}
        if req.action == "start":
            reply = self.events.start(req.bed)
            state = self.table.beds.get(req.bed)
            if reply["ok"] and state is not None:
                state.intensity = None  # the event's first window fixes its intensity window
            return reply
        return self.events.stop(req.bed)

    def status(self) -> dict:
        now = time.monotonic()
        beds = {}
        for bed, s in self.table.beds.items():
            event = self.events.open.get(bed)
            beds[bed] = {
                "frames": s.frames, "last_seq": s.last_seq, "gaps": s.gaps, "age_s": round(now - s.last_seen, 3),
                "stale": s.stale, "windows_scored": s.windows_scored, "inflight": self.table.inflight.get(bed, 0),
                "last_p_tle": s.last_p, "last_latency_ms": s.last_latency_ms,
                "roi": s.roi or s.detected_roi, "roi_source": s.roi_source, "roi_error": s.roi_error,
                "event": event.event_id if event else None, "size": [s.shape[1], s.shape[0]],
                "owner": s.owner, "camera_fps": None if s.rate.camera_fps is None else round(s.rate.camera_fps, 3),
                "fps_used": s.rate.fps_used, "rate": s.rate.describe(),
            }
        t = self.table
        return {"bundle_id": self.bundle_id, "beds": beds, "dropped": self.refuse.counts(),
                "disconnects": dict(self.sockets.disconnects) if self.sockets is not None else {},
                "pending_windows": len(self.pending), "open_events": sorted(self.events.open),
                "events": {bed: {"event_id": ev.event_id, "start_t_ns": ev.start_t_ns,
                                 "windows_so_far": len(ev.probs), "pending": ev.pending}
                           for bed, ev in sorted(self.events.open.items())},
                "memory": {"frame_bytes_held": t.held_bytes + t.queued_bytes,
                           "frame_bytes_limit": self.bounds.frame_bytes, "queued_windows": t.queued,
                           "queued_windows_limit": self.bounds.queued_windows}}
