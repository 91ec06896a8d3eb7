"""GenICam cameras (GigE Vision, USB3 Vision: industrial and thermal cameras) through Aravis.

Needs the ``genicam`` extra (``pip install ".[genicam]"``: ``aravis-python``, which ships libaravis,
and PyGObject < 3.51, which builds against the system's ``libgirepository1.0-dev``).

The camera is set to ``Mono16`` (little-endian 16-bit) when it offers it, else to the deepest of
``Mono14``/``Mono12``/``Mono10`` (unpacked, 16-bit containers), else ``Mono8`` (``bit_depth == 8``).
Capture times are the camera's buffer timestamps anchored to the host's receive time of the first
buffer. ``genicam://`` opens the first camera found; ``genicam://DEVICE_ID`` a given one (Aravis'
device id, as ``arv-tool-0.8`` lists it); ``genicam://Fake_1`` is Aravis' simulated camera.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from .live import Backoff, LiveError, LiveSource
from .source import SourceError

log = logging.getLogger(__name__)

#: pixel formats tried in order, with their bit depth; all but Mono8 are 16-bit little-endian containers
PIXEL_FORMATS = (("Mono16", 16), ("Mono14", 16), ("Mono12", 16), ("Mono10", 16), ("Mono8", 8))
BUFFERS = 8  # frames the driver may hold while we copy one out
FAKE_PREFIX = "Fake"


def load_aravis() -> Any:
    """The ``Aravis`` GObject module, or :class:`SourceError` saying how to install it."""
    try:
        from aravis import Aravis  # aravis-python: loads its bundled libaravis and typelib
    except ImportError:
        try:
            import gi

            gi.require_version("Aravis", "0.8")
            from gi.repository import Aravis  # a system Aravis (Debian: gir1.2-aravis-0.8)
        except (ImportError, ValueError):
            raise SourceError("genicam://", "Aravis is not installed",
                              'pip install ".[genicam]" (on Debian first: apt-get install '
                              "libgirepository1.0-dev libcairo2-dev pkg-config)") from None
    return Aravis


class GenicamSource(LiveSource):
    """A GenICam camera through Aravis.

    Args:
        device_id: Aravis device id (None: the first camera found; ``Fake_1``: the simulated camera).
        fps: frame rate to set on the camera (default: leave the camera's).
        read_timeout_s: no buffer for this long counts as a stall (reconnect).
    """

    def __init__(self, device_id: str | None = None, *, fps: float | None = None, backoff: Backoff | None = None,
                 read_timeout_s: float = 5.0) -> None:
        super().__init__(f"genicam://{device_id or ''}", fps=fps, backoff=backoff)
        self.device_id = device_id
        self.read_timeout_s = read_timeout_s
        self.pixel_format: str | None = None
        self._aravis = load_aravis()
        self._camera: Any = None
        self._stream: Any = None

    def _connect(self) -> None:
        arv = self._aravis
        self._disconnect()
        if self.device_id is not None and self.device_id.startswith(FAKE_PREFIX):
            arv.enable_interface("Fake")
        try:
            self._camera = camera = arv.Camera.new(self.device_id)
        except Exception as e:  # GLib.Error: no such device
            found = _device_ids(arv)
            if self.stats.connections == 0:
                raise SourceError(self.name, f"no such GenICam camera ({_gerror(e)}); found: "
                                  f"{', '.join(found) or 'none'}",
                                  "check the device id and the camera's network or USB link") from None
            raise LiveError(f"camera not reachable ({_gerror(e)})") from None
        try:
            self.pixel_format, self.bit_depth = self._choose_format(camera)
            if self.fps_override is not None:
                camera.set_frame_rate(float(self.fps_override))
            self._set_fps(camera.get_frame_rate())
            _, _, self.width, self.height = camera.get_region()
            payload = camera.get_payload()
            self._stream = stream = camera.create_stream(None, None)
            for _ in range(BUFFERS):
                stream.push_buffer(arv.Buffer.new_allocate(payload))
            camera.start_acquisition()
        except SourceError:
            raise
        except Exception as e:  # GLib.Error from the device
            raise LiveError(f"cannot start acquisition ({_gerror(e)})") from None

    def _choose_format(self, camera: Any) -> tuple[str, int]:
        available = set(camera.dup_available_pixel_formats_as_strings())
        for fmt, bits in PIXEL_FORMATS:
            if fmt in available:
                camera.set_pixel_format_from_string(fmt)
                if fmt != "Mono16":
                    log.warning("%s: offers no Mono16; using %s", self.name, fmt)
                return fmt, bits
        raise SourceError(self.name, f"offers none of {', '.join(f for f, _ in PIXEL_FORMATS)} "
                                     f"(only {', '.join(sorted(available))})", "use a monochrome/IR camera")

    def _grab(self) -> Iterator[tuple[np.ndarray, float | None]]:
        arv = self._aravis
        dtype = np.dtype("<u2") if self.bit_depth == 16 else np.dtype(np.uint8)
        timeout_us = int(self.read_timeout_s * 1e6)
        incomplete = 0
        while self._stream is not None:
            buf = self._stream.timeout_pop_buffer(timeout_us)
            if buf is None:
                raise LiveError(f"no frame for {self.read_timeout_s:g} s (stalled or disconnected)")
            try:
                if buf.get_status() != arv.BufferStatus.SUCCESS:
                    incomplete += 1  # a frame lost on the link; its number shows as a gap
                    if incomplete > 100:
                        raise LiveError(f"{incomplete} incomplete frames in a row ({buf.get_status().value_nick})")
                    continue
                incomplete = 0
                h, w = buf.get_image_height(), buf.get_image_width()
                data = np.frombuffer(buf.get_data(), dtype=dtype, count=h * w)
                image = data.reshape(h, w).astype(np.uint16)  # copies: the buffer goes back to the driver
                stamp = buf.get_timestamp() or buf.get_system_timestamp()
            finally:
                if self._stream is not None:
                    self._stream.push_buffer(buf)
            yield image, (stamp / 1e9 if stamp else None)

    def _disconnect(self) -> None:
        camera, self._camera, self._stream = self._camera, None, None
        if camera is not None:
            try:
                camera.stop_acquisition()
            except Exception:  # noqa: BLE001 - a vanished camera cannot be stopped
                pass


def _device_ids(arv: Any) -> list[str]:
    arv.update_device_list()
    return [arv.get_device_id(i) for i in range(arv.get_n_devices())]


def _gerror(e: BaseException) -> str:
    return getattr(e, "message", None) or str(e)
