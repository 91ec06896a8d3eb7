"""Azure Kinect devices (live), through ``pyk4a`` (the ``k4a`` extra: ``pip install ".[k4a]"``).

Streams the 16-bit IR image (default; ``NFOV_UNBINNED``: 640x576, 30 fps) or the depth image
(``stream="depth"``, millimetres) of device ``index``; the colour camera stays off. Capture times are
the device's IR/depth timestamps (microseconds on the device clock) anchored to the wall clock at
the first capture. Recordings of these devices are read by :mod:`.read_k4a` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .live import Backoff, LiveError, LiveSource
from .source import SourceError

#: frame rates the device offers
DEVICE_FPS = (5, 15, 30)


def load_pyk4a() -> Any:
    """The ``pyk4a`` module, or :class:`SourceError` saying why it cannot be used."""
    try:
        import pyk4a
    except ImportError as e:
        why = str(e).splitlines()[0]
        if e.__cause__ is not None:  # e.g. a module built against NumPy 1.x under NumPy 2
            why += f"; cause: {str(e.__cause__).splitlines()[0]}"
        raise SourceError("k4a://", f"pyk4a cannot be loaded ({why})",
                          'pip install ".[k4a]" (the Azure Kinect SDK comes with pyk4a-bundle; under NumPy 2 '
                          "build pyk4a from source against the SDK instead)") from None
    return pyk4a


class K4aDeviceSource(LiveSource):
    """An Azure Kinect device.

    Args:
        index: device index (0 = the first connected device).
        stream: ``"ir"`` or ``"depth"``.
        fps: 5, 15 or 30 (default 30).
        read_timeout_s: no capture for this long counts as a stall (reconnect).
    """

    def __init__(self, index: int = 0, *, stream: str = "ir", fps: float | None = None,
                 backoff: Backoff | None = None, read_timeout_s: float = 5.0) -> None:
        super().__init__(f"k4a://{index}", fps=fps, backoff=backoff)
        if fps is not None and int(fps) not in DEVICE_FPS:
            raise SourceError(self.name, f"{fps:g} fps is not offered", f"use one of {DEVICE_FPS}")
        self.index, self.stream, self.read_timeout_s = index, stream, read_timeout_s
        self.fps = float(fps or 30)
        self._pyk4a = load_pyk4a()
        self._device: Any = None

    def _connect(self) -> None:
        k4a = self._pyk4a
        self._disconnect()
        count = k4a.connected_device_count()
        if count <= self.index:
            problem = f"no Azure Kinect with index {self.index} ({count} connected)"
            if self.stats.connections == 0:
                raise SourceError(self.name, problem, "check the USB cable and power, or run k4aviewer")
            raise LiveError(problem)
        config = k4a.Config(color_resolution=k4a.ColorResolution.OFF, depth_mode=k4a.DepthMode.NFOV_UNBINNED,
                            camera_fps=getattr(k4a.FPS, f"FPS_{int(self.fps)}"), synchronized_images_only=False)
        try:
            self._device = device = k4a.PyK4A(config, device_id=self.index)
            device.start()
        except k4a.K4AException as e:
            raise LiveError(f"cannot start the device ({e})") from None
        self.bit_depth = 16

    def _grab(self) -> Iterator[tuple[np.ndarray, float | None]]:
        k4a = self._pyk4a
        while self._device is not None:
            try:
                capture = self._device.get_capture(timeout=int(self.read_timeout_s * 1000))
            except k4a.K4ATimeoutException:
                raise LiveError(f"no capture for {self.read_timeout_s:g} s (stalled or unplugged)") from None
            except k4a.K4AException as e:
                raise LiveError(f"the device failed ({e})") from None
            image = capture.depth if self.stream == "depth" else capture.ir
            if image is None:
                continue
            stamp_us = capture.depth_timestamp_usec if self.stream == "depth" else capture.ir_timestamp_usec
            self.height, self.width = image.shape
            yield np.ascontiguousarray(image, dtype=np.uint16), (stamp_us / 1e6 if stamp_us else None)

    def _disconnect(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            try:
                device.stop()
            except Exception:  # noqa: BLE001 - an unplugged device cannot be stopped
                pass
