"""Camera publishers: send uint16 IR frames of one bed to a scorer, never blocking on it.

A publisher ``connect``s a PUB socket to the scorer's frame endpoint, so it keeps running (and
reconnects by itself) while the scorer restarts. PUB never blocks: when the scorer falls behind and
the send queue (sized in bytes: a few seconds of frames) is full, new frames are dropped, which the
scorer sees as sequence gaps. Live video favours bounded latency over backlog.

PUB also drops silently when no scorer is connected, or when the scorer has not subscribed to the
bed's topic. So the publisher's socket is an XPUB (the same on the wire), which sees the scorer's
subscriptions, and it watches its connection (:class:`~.connection.ConnectionWatch`):
:meth:`Publisher.wait_for_scorer` says within seconds whether a scorer is there, accepted the camera
key and takes this bed's frames; frames sent while none does are counted as ``undelivered``, and
losing or regaining the scorer is logged.

Live sources (:mod:`semiostream.sources.live`) are published with :meth:`Publisher.run_live`: their
frame numbers become the sequence numbers, so frames lost while a camera reconnects show up at the
scorer as a gap in the bed's stream, not as a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import zmq

from .connection import READY, ConnectionWatch, check_endpoint
from .protocol import check_bed, encode_frame, frame_topic
from .security import ClientSecurity

if TYPE_CHECKING:
    from semiostream.sources.live import LiveSource

log = logging.getLogger(__name__)


def hwm_for(fps: float, seconds: float) -> int:
    """High-water mark (in messages, per connection) holding about ``seconds`` of one camera's frames.

    ZeroMQ counts messages, not bytes; sizing from the frame rate bounds the queued bytes of one bed to
    ``seconds * fps * H * W * 2`` (2 s of 512x424 uint16 at 30 fps = 26 MB) instead of the default
    1000 frames (434 MB).
    """
    return max(2, int(round(seconds * fps)))


@dataclass
class PublisherStats:
    """Frames ``sent`` while a scorer was connected, ``undelivered`` (sent while none was: PUB discards
    them) and ``dropped`` (the send queue was full)."""

    sent: int = 0
    dropped: int = 0
    undelivered: int = 0


class Publisher:
    """One bed's frame publisher.

    Args:
        endpoint: the scorer's frame endpoint, e.g. ``tcp://127.0.0.1:5555``.
        bed: bed id (1-64 characters of A-Z a-z 0-9 _ . -), used as topic ``ir/<bed>``.
        security: CURVE client settings (required for non-local endpoints unless insecure).
        fps: the camera's frame rate (sizes the send queue; :meth:`run` stamps frames at it). The scorer
            measures each bed's rate from the capture times and resamples windows to its bundle's rate.
        queue_seconds: seconds of frames the send queue may hold before dropping.
        roi: optional static crop ``(x0, y0, x1, y1)`` sent with every frame.
    """

    def __init__(self, endpoint: str, bed: str, security: ClientSecurity | None = None, fps: float = 30.0,
                 queue_seconds: float = 2.0, roi: tuple[int, int, int, int] | None = None,
                 context: zmq.Context | None = None) -> None:
        security = security or ClientSecurity()
        check_endpoint(endpoint, "frame endpoint")
        security.check(endpoint)
        check_bed(bed)
        self.bed, self.fps, self.roi = bed, fps, roi
        self.queue_seconds = queue_seconds
        self.stats = PublisherStats()
        self.seq = 0
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)  # a PUB that reads the scorer's subscriptions
        self._sock.linger = 0
        try:
            self._sock.sndhwm = hwm_for(fps, queue_seconds)
            self._sock.setsockopt(zmq.RECONNECT_IVL, 200)
            self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
            security.apply(self._sock)
            self.endpoint = endpoint
            self.connection = ConnectionWatch(self._sock, endpoint, "camera", security)
            self._sock.connect(endpoint)
        except BaseException:  # e.g. an unreadable key file: leave no socket behind (its context may be ended)
            self._sock.close(linger=0)
            raise
        self._topic = frame_topic(bed)
        self._subscriptions = 0  # subscriptions that cover this bed's topic (one per scorer)
        self._delivering = False
        self._checked = 0.0

    @property
    def delivering(self) -> bool:
        """True while a scorer has accepted this publisher and subscribed to its bed."""
        return self._delivering

    def _read_subscriptions(self) -> None:
        while True:
            try:
                msg = self._sock.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] in (b"\x00", b"\x01") and self._topic.startswith(msg[1:]):
                self._subscriptions += 1 if msg[:1] == b"\x01" else -1

    def problem(self) -> str | None:
        """What keeps this bed's frames from a scorer (one line), or None while they are delivered."""
        self._check(force=True)
        problem = self.connection.problem()
        if problem is None and not self._delivering:
            return (f"the scorer at {self.endpoint} does not take frames of bed {self.bed}: add it to the "
                    "scorer's `beds:` list (or check the bed id)")
        return problem

    def wait_for_scorer(self, timeout_s: float = 5.0) -> str | None:
        """Wait until a scorer accepted this publisher and subscribed to its bed (at most ``timeout_s``);
        None when one did, else one line saying what is wrong (no scorer there, key refused, encryption
        mismatch, bed not served)."""
        deadline = time.monotonic() + timeout_s
        self.connection.wait(timeout_s)
        while True:
            self._check(force=True)
            if self._delivering or self.connection.state != READY or time.monotonic() >= deadline:
                return self.problem()
            time.sleep(0.02)

    def _check(self, force: bool = False) -> None:
        """Follow the connection and subscriptions; log when the scorer goes away or comes back. While
        frames are delivered this runs at most twice a second."""
        now = time.monotonic()
        if not force and self._delivering and now - self._checked < 0.5:
            return
        self._checked = now
        state = self.connection.poll()
        self._read_subscriptions()
        delivering = state == READY and self._subscriptions > 0
        if delivering != self._delivering:
            if delivering:
                log.info("bed %s: the scorer at %s takes its frames", self.bed, self.endpoint)
            else:
                log.warning("bed %s: %s; frames are discarded until a scorer takes them", self.bed,
                            self.connection.problem() or "the scorer unsubscribed")
        self._delivering = delivering

    def send(self, image: np.ndarray, t_ns: int | None = None, seq: int | None = None) -> int:
        """Send one ``[H, W]`` uint16 frame (capture time ``t_ns``, default now) as sequence number
        ``seq`` (default: one after the last; a larger one leaves a gap); returns the seq sent."""
        if seq is not None:
            if seq < self.seq:
                raise ValueError(f"bed {self.bed}: sequence number {seq} after {self.seq - 1}; "
                                 "sequence numbers only go up")
            self.seq = seq
        seq = self.seq
        parts = encode_frame(self.bed, seq, time.time_ns() if t_ns is None else t_ns, image, self.roi)
        self._check()
        try:
            self._sock.send_multipart(parts, copy=False, flags=zmq.NOBLOCK)
            if self._delivering:
                self.stats.sent += 1
            else:
                self.stats.undelivered += 1
        except zmq.Again:  # PUB drops silently at its HWM; Again only if the socket cannot queue at all
            self.stats.dropped += 1
        self.seq += 1
        return seq

    def run(self, frames: Iterable[np.ndarray], realtime: bool = True,
            stop: threading.Event | None = None, max_frames: int | None = None) -> PublisherStats:
        """Send ``frames`` at ``fps`` (``realtime``) or as fast as possible, until exhausted,
        ``max_frames`` sent, or ``stop`` set. Frame ``n`` is stamped as captured at ``n / fps`` s after the
        first (``t_ns``) either way: the scorer makes its windows on capture times, so a file sent fast
        is scored as the ``fps`` recording it is."""
        period = 1.0 / self.fps
        t0 = time.monotonic()
        t0_ns = time.time_ns()
        for n, image in enumerate(frames):
            if (stop is not None and stop.is_set()) or (max_frames is not None and n >= max_frames):
                break
            if realtime:
                delay = t0 + n * period - time.monotonic()
                if delay > 0:
                    if stop is not None:
                        if stop.wait(delay):
                            break
                    else:
                        time.sleep(delay)
            self.send(image, t0_ns + round(n * 1e9 / self.fps))
        return self.stats

    def run_live(self, source: LiveSource, stop: threading.Event | None = None, max_frames: int | None = None,
                 seconds: float | None = None) -> PublisherStats:
        """Send the frames of a live ``source`` as they arrive (its frame numbers as sequence numbers, its
        capture times as ``t_ns``), until ``stop`` is set, ``max_frames`` were sent or ``seconds`` passed
        (which sets ``stop``).

        Raises:
            SourceError: the source cannot be opened at all (bad address, no device, login refused).
        """
        stop = stop or threading.Event()
        timer = None
        if seconds is not None:  # also ends a run that is waiting for the camera to come back
            timer = threading.Timer(seconds, stop.set)
            timer.daemon = True
            timer.start()
        base = self.seq
        n = 0
        frames = source.frames(stop)
        try:
            for frame in frames:
                self.send(frame.image, frame.t_ns, seq=base + frame.seq)
                n += 1
                if max_frames is not None and n >= max_frames:
                    break
        finally:
            if timer is not None:
                timer.cancel()
            frames.close()
            source.close()
        return self.stats

    def close(self, flush_s: float = 2.0) -> None:
        """Close the socket. Frames still queued get up to ``flush_s`` to reach the scorer while the
        context lives on (a program that ends right after terminates its own context to wait for them:
        ``context.term()``); none when no scorer takes them."""
        self.connection.close()
        self._sock.close(linger=int(flush_s * 1000) if self._delivering else 0)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def source_frames(path: str, stream: str = "ir", loop: bool = False, chunk: int = 30) -> Iterator[np.ndarray]:
    """Frames ``[H, W]`` uint16 of any readable source, read in chunks (never the whole file)."""
    from semiostream.sources.readers import open_source

    with open_source(path, stream=stream) as src:
        while True:
            for start in range(0, src.num_frames, chunk):
                block = src.read(start, min(start + chunk, src.num_frames))
                yield from block
            if not loop:
                return


def synthetic_frames(label: str = "TLE", seed: int = 0, width: int = 320, height: int = 240, fps: float = 30.0,
                     seconds: float = 10.0, loop: bool = True) -> Iterator[np.ndarray]:
    """Frames of a SYNTHETIC bed (not patient data): one rendered clip, replayed when ``loop``."""
    from semiostream.sources.synth import SynthConfig, render_clip

    clip = render_clip(SynthConfig(width=width, height=height, fps=fps, seconds=seconds), seed, seed, label)
    while True:
        yield from clip.frames
        if not loop:
            return
