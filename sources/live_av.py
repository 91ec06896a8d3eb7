"""Network video streams through PyAV (FFmpeg): IP cameras over RTSP, RTP/UDP, SRT, HTTP, TCP, RTMP.

8-bit streams (H.264/H.265, the usual IP camera, IR at night included) give the luma plane as values
0..255 (``bit_depth == 8``); streams with more than 8 bits per sample are converted to ``gray16le``.

* RTSP runs over TCP by default (``transport="tcp"``: interleaved in the control connection, passes
  firewalls and loses no packets); ``rtsps://`` is RTSP over TLS.
* ``listen=True`` waits for a camera that pushes: RTSP ANNOUNCE/RECORD (``rtsp_flags=listen``), TCP,
  HTTP and RTMP servers (``listen=1``), SRT in listener mode. ``udp://`` and ``rtp://`` always receive.
* Opening gives up after ``open_timeout_s`` and a stream that delivers nothing for ``read_timeout_s``
  counts as stalled; either way the source reconnects (see :class:`~.live.LiveSource`).
* Capture times come from the frames' presentation timestamps, anchored to the wall clock when the
  connection's first frame is decoded (network and decoder latency are not subtracted).
* A login comes from :class:`~.live_urls.Credentials` and is put into the address only when it is
  opened; the address in messages is always redacted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .live import STREAM_SCHEMES, Backoff, LiveError, LiveSource
from .live_urls import Credentials, check_no_secret, redact, with_credentials
from .source import SourceError

log = logging.getLogger(__name__)

TRANSPORTS = ("tcp", "udp")
LISTEN_SCHEMES = ("rtsp", "tcp", "srt", "rtmp", "http")
#: undecodable packets in a row (after a network loss) before the connection counts as broken
MAX_BAD_PACKETS = 100


class StreamSource(LiveSource):
    """A live network video stream.

    Args:
        url: stream address without secrets (``rtsp://cam-07:554/stream1``).
        credentials: login put into the address when it is opened (never logged).
        transport: RTSP lower transport, ``"tcp"`` (default) or ``"udp"``.
        listen: wait for the camera to push to ``url`` instead of connecting to it.
        fps: frame rate to assume instead of the stream's.
        open_timeout_s: a connection that is not streaming after this long is retried.
        read_timeout_s: a stream silent this long is stalled (retried).
        options: further FFmpeg options (strings), e.g. ``{"buffer_size": "4194304"}`` for UDP.
    """

    def __init__(self, url: str, *, credentials: Credentials | None = None, transport: str = "tcp",
                 listen: bool = False, fps: float | None = None, backoff: Backoff | None = None,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 5.0,
                 options: dict[str, str] | None = None) -> None:
        name = redact(url)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in STREAM_SCHEMES:
            raise SourceError(name, f"scheme {scheme!r} is not a stream PyAV reads",
                              f"use one of {', '.join(STREAM_SCHEMES)}")
        try:
            check_no_secret(url)
        except ValueError as e:
            raise SourceError(name, str(e)) from None
        if transport not in TRANSPORTS:
            raise SourceError(name, f"unknown RTSP transport {transport!r}", "use tcp or udp")
        if listen and scheme not in LISTEN_SCHEMES + ("udp", "rtp"):
            raise SourceError(name, f"{scheme}:// cannot listen for a pushing camera",
                              f"listening works with {', '.join(LISTEN_SCHEMES)} (udp and rtp always receive)")
        super().__init__(name, fps=fps, backoff=backoff)
        self.scheme, self.transport, self.listen = scheme, transport, listen
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s
        self._url, self._credentials = url, credentials
        self._extra = dict(options or {})
        self._container: Any = None
        self._stream: Any = None
        self._to_format = "gray"

    def ffmpeg_options(self) -> dict[str, str]:
        """The FFmpeg demuxer/protocol options this source opens its stream with."""
        opts: dict[str, str] = {}
        wait_s = max(1, int(round(self.open_timeout_s)))  # a listener's bounded wait for the camera
        if self.scheme in ("rtsp", "rtsps"):
            opts["rtsp_transport"] = "tcp" if self.scheme == "rtsps" else self.transport
            if self.listen:  # FFmpeg's default (-1: forever) fails with ERANGE; seconds here
                opts["rtsp_flags"] = "listen"
                opts["listen_timeout"] = str(wait_s)
        elif self.listen and self.scheme in ("tcp", "rtmp", "http"):
            opts["listen"] = "1"
            if self.scheme == "tcp":
                opts["listen_timeout"] = str(wait_s * 1000)  # milliseconds
        elif self.scheme == "srt":
            opts["mode"] = "listener" if self.listen else "caller"
        opts.update(self._extra)
        return opts

    def _connect(self) -> None:
        import av

        self._disconnect()
        url = with_credentials(self._url, self._credentials)
        # while listening, give the camera a bounded wait per attempt so stop requests are noticed
        timeout = (self.open_timeout_s, self.read_timeout_s)
        started = time.monotonic()
        try:
            container = av.open(url, mode="r", options=self.ffmpeg_options(), timeout=timeout)
        except av.error.HTTPUnauthorizedError:
            raise SourceError(self.name, "the camera refused the login (401 Unauthorized)",
                              "check the user and password given by --credentials-file / --credentials-env") from None
        except av.error.HTTPForbiddenError:
            raise SourceError(self.name, "the camera forbids this stream to this login (403 Forbidden)",
                              "give the user access to the stream in the camera's settings") from None
        except av.error.HTTPNotFoundError:
            raise SourceError(self.name, "the camera has no stream at this path (404 Not Found)",
                              "check the stream path in the camera's manual or web page") from None
        except (av.error.FFmpegError, OSError) as e:
            # the timeout interrupts FFmpeg, which reports whatever the interrupted read saw
            if isinstance(e, av.error.ExitError) or time.monotonic() - started >= 0.9 * self.open_timeout_s:
                what = "no camera pushed a stream" if self.listen else "the stream did not start"
                raise LiveError(f"{what} within {self.open_timeout_s:g} s") from None
            raise LiveError(f"cannot open the stream: {_describe(e)}") from None
        self._container = container
        videos = [s for s in container.streams if s.type == "video"]
        if not videos:
            self._disconnect()
            raise SourceError(self.name, "carries no video stream",
                              "check the address (an audio-only or metadata stream?)")
        stream = self._stream = videos[0]
        cc = stream.codec_context
        if cc is None or not cc.width or not cc.height or cc.format is None:
            self._disconnect()
            raise LiveError(f"the video stream ({stream.codec_context.name if cc else '?'}) has no picture size yet")
        self.width, self.height = int(cc.width), int(cc.height)
        bits = max(comp.bits for comp in cc.format.components)
        self.bit_depth = 16 if bits > 8 else 8
        self._to_format = "gray16le" if self.bit_depth == 16 else "gray"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        self._set_fps(float(rate) if rate else None)

    def _grab(self) -> Iterator[tuple[np.ndarray, float | None]]:
        import av

        bad = 0
        last = time.monotonic()
        try:
            for packet in self._container.demux(self._stream):
                last = time.monotonic()
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:  # a damaged packet after a network loss: skip it
                    bad += 1
                    if bad > MAX_BAD_PACKETS:
                        raise LiveError(f"{bad} undecodable packets in a row") from None
                    continue
                bad = 0
                for frame in decoded:
                    yield self._image(frame), frame.time
        except (av.error.FFmpegError, OSError) as e:
            if isinstance(e, av.error.ExitError) or time.monotonic() - last >= 0.9 * self.read_timeout_s:
                raise LiveError(f"no data for {self.read_timeout_s:g} s (stalled)") from None
            raise LiveError(f"the stream broke: {_describe(e)}") from None

    def _image(self, frame: Any) -> np.ndarray:
        arr = frame.to_ndarray(format=self._to_format)
        if arr.shape != (self.height, self.width):
            log.warning("%s: picture size changed from %dx%d to %dx%d", self.name, self.width, self.height,
                        arr.shape[1], arr.shape[0])
            self.height, self.width = arr.shape
        return arr.astype(np.uint16) if arr.dtype != np.uint16 else arr

    def _disconnect(self) -> None:
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not raise
                pass


def _describe(e: BaseException) -> str:
    """An FFmpeg/OS error as text without the address (which may hold credentials)."""
    strerror = getattr(e, "strerror", None)
    text = strerror if strerror else str(e)
    return redact(text)
