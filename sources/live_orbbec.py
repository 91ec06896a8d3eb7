"""Orbbec depth cameras (Femto Bolt / Femto Mega, the Azure Kinect's successors), through
``pyorbbecsdk`` (the ``orbbec`` extra: ``pip install ".[orbbec]"``, the ``pyorbbecsdk2`` wheel).

Streams the IR sensor (default) or the depth sensor (``stream="depth"``) of device ``index`` in
``Y16`` when the device offers it (else its default profile: ``Y8`` gives ``bit_depth == 8``).
Capture times are the frames' device timestamps anchored to the wall clock at the first frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .live import Backoff, LiveError, LiveSource
from .source import SourceError

POLL_MS = 100  # wait_for_frames slice, so a stall is noticed after read_timeout_s


def load_orbbec() -> Any:
    """The ``pyorbbecsdk`` module, or :class:`SourceError` saying why it cannot be used."""
    try:
        import pyorbbecsdk
    except ImportError as e:
        raise SourceError("orbbec://", f"pyorbbecsdk cannot be loaded ({str(e).splitlines()[0]})",
                          'pip install ".[orbbec]" (the pyorbbecsdk2 wheel)') from None
    return pyorbbecsdk


class OrbbecSource(LiveSource):
    """An Orbbec depth camera.

    Args:
        index: device index (0 = the first connected device).
        stream: ``"ir"`` or ``"depth"``.
        fps: frame rate of the profile to ask for (default: the device's default profile).
        read_timeout_s: no frame for this long counts as a stall (reconnect).
    """

    def __init__(self, index: int = 0, *, stream: str = "ir", fps: float | None = None,
                 backoff: Backoff | None = None, read_timeout_s: float = 5.0) -> None:
        super().__init__(f"orbbec://{index}", fps=fps, backoff=backoff)
        self.index, self.stream, self.read_timeout_s = index, stream, read_timeout_s
        self._ob = load_orbbec()
        self._pipeline: Any = None

    def _connect(self) -> None:
        ob = self._ob
        self._disconnect()
        try:
            devices = ob.Context().query_devices()
            count = devices.get_count()
        except ob.OBError as e:
            raise LiveError(f"cannot list devices ({e})") from None
        if count <= self.index:
            problem = f"no Orbbec device with index {self.index} ({count} connected)"
            if self.stats.connections == 0:
                raise SourceError(self.name, problem, "check the USB cable and power, or run OrbbecViewer")
            raise LiveError(problem)
        sensor = ob.OBSensorType.DEPTH_SENSOR if self.stream == "depth" else ob.OBSensorType.IR_SENSOR
        try:
            pipeline = ob.Pipeline(devices.get_device_by_index(self.index))
            profiles = pipeline.get_stream_profile_list(sensor)
            try:
                profile = profiles.get_video_stream_profile(0, 0, ob.OBFormat.Y16, int(self.fps_override or 0))
            except ob.OBError:
                profile = profiles.get_default_video_stream_profile()
            config = ob.Config()
            config.enable_stream(profile)
            pipeline.start(config)
        except ob.OBError as e:
            raise LiveError(f"cannot start the {self.stream} stream ({e})") from None
        self._pipeline = pipeline
        self.width, self.height = profile.get_width(), profile.get_height()
        self.bit_depth = 8 if profile.get_format() == ob.OBFormat.Y8 else 16
        self._set_fps(float(profile.get_fps()))

    def _grab(self) -> Iterator[tuple[np.ndarray, float | None]]:
        ob = self._ob
        waited_ms = 0
        while self._pipeline is not None:
            try:
                frames = self._pipeline.wait_for_frames(POLL_MS)
            except ob.OBError as e:
                raise LiveError(f"the device failed ({e})") from None
            frame = None if frames is None else (
                frames.get_depth_frame() if self.stream == "depth" else frames.get_ir_frame())
            if frame is None:
                waited_ms += POLL_MS
                if waited_ms >= self.read_timeout_s * 1000:
                    raise LiveError(f"no frame for {self.read_timeout_s:g} s (stalled or unplugged)")
                continue
            waited_ms = 0
            h, w = frame.get_height(), frame.get_width()
            fmt = frame.get_format()
            if fmt not in (ob.OBFormat.Y16, ob.OBFormat.Y8):
                raise LiveError(f"the device sends {fmt}, not Y16/Y8 frames")
            data = np.asarray(frame.get_data()).view(np.uint16 if fmt == ob.OBFormat.Y16 else np.uint8)
            image = data[: h * w].reshape(h, w).astype(np.uint16)
            self.height, self.width = h, w
            stamp_us = frame.get_timestamp_us()
            yield image, (stamp_us / 1e6 if stamp_us else None)

    def _disconnect(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            try:
                pipeline.stop()
            except Exception:  # noqa: BLE001 - an unplugged device cannot be stopped
                pass
