"""Live IR sources: cameras and streams that never end, behind one interface.

A file :class:`~.source.Source` has ``num_frames`` and random access; a :class:`LiveSource` is
unbounded and read in order. ``frames()`` yields :class:`~semiostream.core.frames.Frame` s (``[H, W] uint16``
image, frame number ``seq``, capture time ``t_ns``) for as long as it runs, and survives the camera:

* **reconnects**: a dropped or stalled connection is closed and opened again with exponential
  backoff (:class:`Backoff`), and the source says so in the log (address redacted);
* **frame numbers keep going**: across a reconnect the frame number advances by the frames the
  outage cost (time missed x frame rate), so a consumer such as the bus publisher sends them as
  sequence numbers and the scorer sees a *gap*, not a restarted stream;
* **capture times** come from the stream's own timestamps, anchored to the wall clock at the first
  frame of each connection (:class:`FrameClock`); when a stream has none, or they drift from the
  wall clock by more than :data:`CLOCK_TOLERANCE_S`, the wall clock at decoding is used.

Problems that retrying cannot fix (unknown address scheme, SDK not installed, no such device, login
refused, no such stream) raise :class:`~.source.SourceError` from the first connection; after a
source has streamed once, every failure is retried, since cameras reboot.

Kinds: one module each (``live_av``, ``live_aravis``, ``live_k4a``, ``live_orbbec``), opened by
:func:`semiostream.sources.cameras.open_live` from an address.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from semiostream.core.frames import Frame

from .source import SourceError

log = logging.getLogger(__name__)

#: stream timestamps further than this from the wall clock are not trusted (re-anchored)
CLOCK_TOLERANCE_S = 2.0
#: frame rates outside this range reported by a stream are treated as unknown
FPS_RANGE = (1.0, 240.0)
DEFAULT_FPS = 30.0

STREAM_SCHEMES = ("rtsp", "rtsps", "rtp", "udp", "srt", "http", "https", "tcp", "rtmp", "rtmps")
DEVICE_SCHEMES = ("genicam", "k4a", "orbbec")


class LiveError(RuntimeError):
    """A live connection failed in a way that reconnecting may fix (dropped, stalled, refused).

    Its message never holds credentials."""


@dataclass
class LiveStats:
    """What a live source has been through (for logs, tests and the publisher's summary)."""

    connections: int = 0
    frames: int = 0
    lost: int = 0  # frames estimated lost: outages x frame rate, plus gaps in stream timestamps
    outages: list[float] = field(default_factory=list)  # seconds from losing the stream to the next frame
    last_error: str | None = None


class Backoff:
    """Waits between reconnection attempts: ``initial_s``, doubling up to ``max_s``; :meth:`reset`
    after a frame arrives."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 2.0) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.next_s = initial_s

    def reset(self) -> None:
        self.next_s = self.initial_s

    def wait(self, stop: threading.Event | None) -> bool:
        """Sleep the current delay (then double it); True if ``stop`` was set meanwhile."""
        delay, self.next_s = self.next_s, min(self.max_s, self.next_s * 2)
        if stop is None:
            time.sleep(delay)
            return False
        return stop.wait(delay)


class FrameClock:
    """Capture times and frame numbers of one source across all its connections.

    Stream timestamps (seconds on the stream's own clock) are anchored to the wall clock at the first
    frame of each connection; frame numbers advance by the frames missed between two frames (from the
    stream's timestamps within a connection, from the wall clock across connections).
    """

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._anchor: tuple[float, int] | None = None  # (stream seconds, wall ns)
        self._last_t: int | None = None
        self._index = -1
        self._fresh = True
        self.resyncs = 0

    def new_connection(self, fps: float) -> None:
        self.fps, self._anchor, self._fresh = fps, None, True

    def stamp(self, stream_s: float | None, now_ns: int | None = None) -> tuple[int, int, int]:
        """``(t_ns, index, missed)`` of the next frame; ``stream_s``: its stream timestamp or None."""
        now = time.time_ns() if now_ns is None else now_ns
        trusted = stream_s is not None
        if trusted and self._anchor is None:
            self._anchor = (stream_s, now)
        if trusted:
            t = self._anchor[1] + int(round((stream_s - self._anchor[0]) * 1e9))
            if abs(t - now) > CLOCK_TOLERANCE_S * 1e9:  # a timestamp jump or a clock that runs off
                self.resyncs += 1
                self._anchor, t = (stream_s, now), now
        else:
            t = now
        missed = 0
        if self._last_t is not None:
            t = max(t, self._last_t + 1)  # capture times never go backwards
            if trusted or self._fresh:  # wall-clock steps within a connection are jitter, not loss
                missed = max(0, int(round((t - self._last_t) * self.fps / 1e9)) - 1)
        self._fresh = False
        self._last_t = t
        self._index += 1 + missed
        return t, self._index, missed


class LiveSource(ABC):
    """An unbounded source of ``[H, W] uint16`` frames that reconnects by itself.

    Attributes (known after the first connection): ``height``, ``width``, ``fps`` (from the stream or
    device, or the ``fps`` given), ``bit_depth`` (8 or 16). ``name`` is the source's address with any
    credentials redacted: the only form that may be logged. ``stats``: :class:`LiveStats`.

    Subclasses implement :meth:`_connect`, :meth:`_grab` and :meth:`_disconnect`.
    """

    name: str
    stream: str = "ir"
    height: int = 0
    width: int = 0
    fps: float = DEFAULT_FPS
    bit_depth: int = 16

    def __init__(self, name: str, fps: float | None = None, backoff: Backoff | None = None) -> None:
        self.name = name
        self.fps_override = fps
        if fps is not None:
            self.fps = float(fps)
        self.backoff = backoff or Backoff()
        self.stats = LiveStats()
        self.clock = FrameClock(self.fps)
        self.connected = threading.Event()
        self._logged_reason: str | None = None

    @property
    def source_id(self) -> str:
        return self.name if self.stream == "ir" else f"{self.name}#{self.stream}"

    # -- what each kind implements
    @abstractmethod
    def _connect(self) -> None:
        """Open the camera or stream and set ``height``, ``width``, ``fps`` (unless overridden) and
        ``bit_depth``. Raise :class:`SourceError` for problems retrying cannot fix, :class:`LiveError`
        for the others."""

    @abstractmethod
    def _grab(self) -> Iterator[tuple[np.ndarray, float | None]]:
        """Frames of the open connection: ``([H, W] uint16, stream timestamp in s or None)``. Returns
        at the end of the stream; raises :class:`LiveError` when it drops or stalls."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Release the connection (idempotent, never raises)."""

    def _set_fps(self, reported: float | None) -> None:
        if self.fps_override is not None:
            return
        if reported is not None and FPS_RANGE[0] <= reported <= FPS_RANGE[1]:
            self.fps = float(reported)
        else:
            self.fps = DEFAULT_FPS
            log.warning("%s: reports no usable frame rate (%s); assuming %g fps (set it with --fps)",
                        self.name, reported, DEFAULT_FPS)

    # -- the reconnecting loop shared by every kind
    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        """Frames until ``stop`` is set (or the consumer stops iterating), reconnecting as needed.

        Raises:
            SourceError: the first connection failed in a way retrying cannot fix.
        """
        lost_at: float | None = None  # monotonic time the stream was lost
        while stop is None or not stop.is_set():
            try:
                self._connect()
            except SourceError as e:
                self._disconnect()
                if self.stats.connections == 0:
                    raise
                self._retry_later(str(e))
                lost_at = lost_at or time.monotonic()
                if self.backoff.wait(stop):
                    return
                continue
            except LiveError as e:
                self._disconnect()
                self._retry_later(str(e))
                if self.backoff.wait(stop):
                    return
                continue
            self.stats.connections += 1
            self.clock.new_connection(self.fps)
            first = True
            try:
                for image, stream_s in self._grab():
                    t_ns, index, missed = self.clock.stamp(stream_s)
                    self.stats.frames += 1
                    self.stats.lost += missed
                    if first:
                        first = False
                        self.backoff.reset()
                        self.connected.set()
                        self._announce(lost_at, missed)
                        lost_at = None
                    yield Frame(image, index, t_ns)
                    if stop is not None and stop.is_set():
                        return
                reason = "the stream ended"
            except LiveError as e:
                reason = str(e)
            finally:
                self._disconnect()
                self.connected.clear()
            if lost_at is None:
                lost_at = time.monotonic()
            self._retry_later(reason)
            if self.backoff.wait(stop):
                return

    def _announce(self, lost_at: float | None, missed: int) -> None:
        self._logged_reason = None
        if lost_at is None:
            log.info("%s: streaming %dx%d, %d-bit, %g fps", self.source_id, self.width, self.height,
                     self.bit_depth, self.fps)
            return
        outage = time.monotonic() - lost_at
        self.stats.outages.append(outage)
        log.warning("%s: streaming again after %.1f s; about %d frames lost (a gap in the sequence numbers)",
                    self.source_id, outage, missed)

    def _retry_later(self, reason: str) -> None:
        """Log why the source reconnects: a new reason as a warning, a repeated one at debug level."""
        loud = reason != self._logged_reason
        self.stats.last_error = self._logged_reason = reason
        (log.warning if loud else log.debug)("%s: %s; reconnecting (next try in %.1f s)", self.source_id,
                                             reason, self.backoff.next_s)

    def close(self) -> None:
        self._disconnect()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        size = f"{self.width}x{self.height}" if self.width else "not connected yet"
        return f"{type(self).__name__}({self.source_id!r}, {size}, {self.fps:g} fps, {self.bit_depth}-bit)"
