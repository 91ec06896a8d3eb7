"""Open any live source with one call: :func:`open_live` (the live counterpart of :mod:`.readers`).

The address names the kind; the kind's module is imported only when its source is opened. The interface all
of them implement (reconnects, frame numbers, capture times) is :class:`~.live.LiveSource`.

Kinds (one module each):

=====================================================  ============================================
address                                                source
=====================================================  ============================================
``rtsp://``, ``rtsps://``, ``rtp://``, ``udp://``,     :class:`~.live_av.StreamSource` (PyAV /
``srt://``, ``http(s)://``, ``tcp://``, ``rtmp://``    FFmpeg), 8-bit H.264/H.265 or 16-bit streams
``genicam://[DEVICE_ID]``                              :class:`~.live_aravis.GenicamSource` (Aravis)
``k4a://[INDEX]``                                      :class:`~.live_k4a.K4aDeviceSource` (pyk4a)
``orbbec://[INDEX]``                                   :class:`~.live_orbbec.OrbbecSource`
=====================================================  ============================================
"""

from __future__ import annotations

import re

from .live import DEVICE_SCHEMES, STREAM_SCHEMES, Backoff, LiveSource
from .source import SourceError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def live_scheme(address: str) -> str | None:
    """The scheme of ``address`` if it names a live source (``rtsp``, ``genicam`` ...), else None."""
    m = _SCHEME.match(address)
    if m is None:
        return None
    scheme = m.group(1).lower()
    return scheme if scheme in STREAM_SCHEMES + DEVICE_SCHEMES else None


def open_live(address: str, *, stream: str = "ir", fps: float | None = None, credentials=None,
              transport: str = "tcp", listen: bool = False, backoff: Backoff | None = None,
              read_timeout_s: float = 5.0) -> LiveSource:
    """The live source for ``address`` (nothing is opened until :meth:`LiveSource.frames` runs).

    Args:
        address: a stream URL without secrets (``rtsp://cam-07/stream1``) or a device address
            (``genicam://Fake_1``, ``k4a://0``, ``orbbec://0``).
        stream: ``"ir"`` or ``"depth"`` for depth sensors (Azure Kinect, Orbbec).
        fps: frame rate to assume instead of the stream's.
        credentials: :class:`~.live_urls.Credentials` for streams that need a login.
        transport: RTSP over ``"tcp"`` (default: interleaved, through firewalls, no packet loss) or ``"udp"``.
        listen: wait for a camera that pushes (RTSP ANNOUNCE/RECORD, TCP, SRT listener, RTMP, HTTP).
        backoff: reconnection delays.
        read_timeout_s: a stream silent this long counts as stalled (reconnect).

    Raises:
        SourceError: unknown scheme, a secret in the address, options that do not fit the kind.
    """
    scheme = live_scheme(address)
    if scheme is None:
        raise SourceError(address, "is not a live source address",
                          f"use one of {', '.join(s + '://' for s in STREAM_SCHEMES + DEVICE_SCHEMES)}")
    if stream not in ("ir", "depth"):
        raise SourceError(address, f"unknown stream {stream!r}", "use ir or depth")
    if scheme in STREAM_SCHEMES:
        from .live_av import StreamSource

        if stream != "ir":
            raise SourceError(address, "a video stream has one picture", "leave --stream at ir")
        return StreamSource(address, credentials=credentials, transport=transport, listen=listen, fps=fps,
                            backoff=backoff, read_timeout_s=read_timeout_s)
    if credentials is not None or listen:
        raise SourceError(address, "a local device takes no credentials and cannot listen",
                          "drop --credentials-* / --listen")
    device = address[len(scheme) + 3:]
    if scheme == "genicam":
        from .live_aravis import GenicamSource

        if stream != "ir":
            raise SourceError(address, "GenICam cameras have one picture", "leave --stream at ir")
        return GenicamSource(device or None, fps=fps, backoff=backoff, read_timeout_s=read_timeout_s)
    if scheme == "k4a":
        from .live_k4a import K4aDeviceSource

        return K4aDeviceSource(_device_index(address, device), stream=stream, fps=fps, backoff=backoff,
                               read_timeout_s=read_timeout_s)
    from .live_orbbec import OrbbecSource

    return OrbbecSource(_device_index(address, device), stream=stream, fps=fps, backoff=backoff,
                        read_timeout_s=read_timeout_s)


def _device_index(address: str, device: str) -> int:
    if device == "":
        return 0
    if not device.isdigit():
        raise SourceError(address, f"device {device!r} is not an index", "use k4a://0, orbbec://1 ...")
    return int(device)
