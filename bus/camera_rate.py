"""A bed camera's frame rate: live windows are defined in time, by the archives' rule
(:mod:`~semiostream.sources.rate`).

The model's window is ``spec.window`` frames at ``spec.fps`` (2 s at 30 fps). Each bed's frames pass
through a :class:`CameraRate`, which gives the frames its window buffer takes:

* **measuring**: the stream's first frames are held until they span :data:`PROBE_S` of capture time
  (``t_ns``) or fill a window; the camera's rate is ``(last seq - first seq) / (last t - first t)``;
* **as is**: a camera at the bundle's rate (within 1 %) whose measured frames are evenly spaced is used
  frame for frame, exactly as before (:func:`~semiostream.sources.rate.as_is`), until it drops a
  frame (a sequence gap): from then on it is resampled, on a grid continuing its frames (frame ``k``
  so far starts at the last one's capture time ``- (k_last - k) / fps``), so the dropped frame's time
  shows the frame before it;
* **resampled**: any other camera is resampled on its capture times: frame ``k`` shows the camera frame
  on display at the middle of ``[t0 + k / fps, t0 + (k + 1) / fps)`` (``t0`` = the first frame's
  capture time; :func:`~semiostream.sources.rate.slot_middles`,
  :func:`~semiostream.sources.rate.on_display`), the frames a file at that rate would give, so every
  window spans ``window / fps`` seconds of capture time. A frame is decided when the next one arrives;
  a capture-time jump longer than a window is an outage (the window buffer starts afresh);
* **refused**: a camera slower than a sixth of the bundle's rate, or whose capture times do not advance
  (:func:`~semiostream.sources.rate.check_rate`); its frames are refused as ``frame_rate``.

Memory: the held frames are the measuring frames (at most one window) or, once decided, the window
buffer's frames (at most one window: a resampled window refers to the camera frames it shows, each
held once) plus the last camera frame, so a bed holds at most ``window + 1`` frames whatever its rate.
"""

from __future__ import annotations

import numpy as np

from semiostream.sources.rate import as_is, check_rate, on_display, slot_middles

#: capture time (seconds) over which a new stream's rate is measured (or one window of frames, if sooner)
PROBE_S = 1.0

#: (image [H, W] uint16, seq, t_ns) of one frame for the window buffer
Slot = tuple[np.ndarray, int, int]


class CameraRate:
    """One bed stream's rate and resampling (see the module docstring).

    Args:
        fps: the bundle's rate (frames/s).
        window: frames per window (bounds the measuring frames and the outage gap).
    """

    def __init__(self, fps: float, window: int) -> None:
        self.fps, self.window = float(fps), int(window)
        self.mode = "measuring"  # measuring | as is | resampled | refused
        self.refused: str | None = None  # why, when refused
        self.camera_fps: float | None = None  # measured: frames per second of capture time
        self._probe: list[Slot] = []
        self._first: tuple[int, int] | None = None  # (seq, t_ns) of the stream's first frame
        self._t0 = 0  # t_ns of resampled frame 0's start
        self._k = 0  # next resampled frame
        self._last: Slot | None = None  # the camera frame on display

    @property
    def fps_used(self) -> float | None:
        """The rate the bed's windows are made at (None while measuring or refused)."""
        return self.fps if self.mode in ("as is", "resampled") else None

    def describe(self) -> str:
        """One line for the status: the camera's rate and what is done with it."""
        if self.mode == "refused":
            return f"refused: {self.refused}"
        if self.camera_fps is None:
            return "measuring"
        cam = f"camera {self.camera_fps:.4g} fps"
        if self.mode == "resampled":
            dropped = " with dropped frames" if abs(self.camera_fps - self.fps) <= 0.01 * self.fps else ""
            return f"{cam}{dropped}, resampled to the bundle's {self.fps:g} fps"
        return f"{cam}, at the bundle's rate" if self.mode == "as is" else f"{cam}, measuring"

    def push(self, image: np.ndarray, seq: int, t_ns: int) -> list[Slot] | None:
        """The frames (in order) the window buffer takes after camera frame ``seq`` captured at ``t_ns``;
        [] while measuring or refused (see :attr:`refused`); None when its capture time jumped by more than
        a window since the last frame (an outage: start the window buffer and this object afresh, then push
        it again)."""
        if self._first is None:
            self._first = (seq, t_ns)
        elif t_ns > self._first[1]:
            self.camera_fps = (seq - self._first[0]) * 1e9 / (t_ns - self._first[1])
        if self.mode == "refused":
            return []
        if self.mode == "as is":
            if self._last is not None and seq > self._last[1] + 1:  # a dropped frame: resampled from here on
                self.mode, self._t0 = "resampled", self._last[2] - round((self._k - 1) * 1e9 / self.fps)
                return self._resample((image, seq, t_ns))
            self._last, self._k = (image, seq, t_ns), self._k + 1
            return [(image, seq, t_ns)]
        if self.mode == "resampled":
            return self._resample((image, seq, t_ns))
        self._probe.append((image, seq, t_ns))
        span_ns = t_ns - self._probe[0][2]
        if span_ns < PROBE_S * 1e9 and len(self._probe) < self.window:
            return []
        return self._decide()

    def _decide(self) -> list[Slot]:
        probe, self._probe = self._probe, []
        (_, seq0, t0), (_, seq1, t1) = probe[0], probe[-1]
        if t1 <= t0:
            self.mode = "refused"
            self.refused = (f"the capture times (t_ns) of {len(probe)} frames do not advance; send each "
                            "frame's capture time")
            return []
        rate = (seq1 - seq0) * 1e9 / (t1 - t0)
        self.camera_fps = rate
        try:
            check_rate(rate, self.fps)
        except ValueError as e:
            self.mode, self.refused = "refused", f"the camera's {e}; stream at a higher frame rate"
            return []
        times = np.array([t for _, _, t in probe], np.float64)
        if as_is((times - t0) / 1e9, rate, self.fps):
            self.mode, self._last, self._k = "as is", probe[-1], len(probe)
            return probe
        self.mode, self._t0 = "resampled", t0
        out: list[Slot] = []
        for frame in probe:
            slots = self._resample(frame)
            if slots is None:  # an outage among the measuring frames: start after it
                out, self._t0, self._k, self._last = [], frame[2], 0, frame
            else:
                out.extend(slots)
        return out

    def _resample(self, frame: Slot) -> list[Slot] | None:
        last, self._last = self._last, frame
        if last is None:
            return []
        tp, tn = (last[2] - self._t0) / 1e9, (frame[2] - self._t0) / 1e9
        if tn - tp > self.window / self.fps:
            self._last = last
            return None
        tn = max(tn, tp)  # a capture time going backwards shows nothing before it
        stop = self._k + int(np.ceil((tn - tp) * self.fps)) + 2
        shown = on_display(np.array([tp, tn]), slot_middles(0.0, self._k, stop, self.fps))
        n = int(np.count_nonzero(shown <= 0))  # decided: the frame on display is the last one, not this one
        self._k += n
        return [last] * n
