"""One intensity window per video / seizure segment / live event (``PreprocessSpec.intensity_scope``).

The paper converted each whole 16-bit video to 8 bits once, so all 2-s windows of a seizure share one
contrast. With ``intensity_scope="video"`` (and ``intensity_mode="percentile"``) the raw ``(lo, hi)`` is
computed **once** from the first ``percentile_frames`` frames of the segment, inside its crop (the same
numbers :func:`~.intensity.intensity_window` gives for the segment's first window), and held for every
window of that segment. The rule is causal, so training, archive re-scoring and the live scorer can all
apply it: a live event's window is fixed by its first frames.

With ``intensity_scope="window"`` or ``intensity_mode="fixed"`` nothing is held: each window is
preprocessed with the spec as is.

API (the same for every caller):

* :func:`segment_window(head, roi, spec)` -> ``(lo, hi)`` or None: the held window of a segment whose
  first frames are ``head`` (``[T0, H, W]`` uint16, ``T0 >= 1``; at most ``percentile_frames`` are used);
* :func:`fixed_window_spec(spec, window)` -> the spec to preprocess that segment's windows with
  (``intensity_mode="fixed"`` at ``(lo, hi)``; ``spec`` itself when ``window`` is None);
* :class:`EventIntensity`: per stream / event state for live scoring (first window fixes it,
  :meth:`EventIntensity.reset` at the next event).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

import numpy as np
import torch

from semiostream.core.roi import Roi

from .intensity import intensity_window


def holds_window(spec) -> bool:
    """True when ``spec`` asks for one intensity window per video / event (percentile mode, video scope)."""
    return spec.intensity_mode == "percentile" and getattr(spec, "intensity_scope", "window") == "video"


def segment_window(
    head: np.ndarray | torch.Tensor, roi: Roi | Sequence[int] | None, spec
) -> tuple[float, float] | None:
    """The raw ``(lo, hi)`` held for every window of a segment, or None if the spec holds none.

    Args:
        head: the segment's first frames ``[T0, H, W]`` uint16 (numpy or torch, any device); the first
            ``spec.percentile_frames`` of them are used (fewer if the segment is shorter).
        roi: the segment's crop ``(x0, y0, x1, y1)`` or None (full frame); percentiles are taken inside it.
        spec: the bundle's :class:`~semiostream.core.preprocess_spec.PreprocessSpec`.

    Returns:
        ``(lo, hi)`` floats with ``hi > lo``, or None when ``spec`` is per-window or fixed
        (:func:`holds_window` is False).
    """
    if not holds_window(spec):
        return None
    if head.ndim != 3 or head.shape[0] < 1:
        raise ValueError(f"head must be the segment's first frames [T0 >= 1, H, W]; got shape {tuple(head.shape)}")
    return intensity_window(head[: spec.percentile_frames], roi, spec)


def fixed_window_spec(spec, window: tuple[float, float] | None):
    """``spec`` with its intensity step fixed at ``window`` (None: ``spec`` unchanged).

    Preprocessing a window with the returned spec (DALI or the torch reference) maps raw ``lo`` to 0
    and ``hi`` to 1, exactly as the segment's first window was mapped.
    """
    if window is None:
        return spec
    lo, hi = float(window[0]), float(window[1])
    return dataclasses.replace(spec, intensity_mode="fixed", intensity_lo=lo, intensity_hi=hi)


class EventIntensity:
    """The intensity window of one live stream's current event (thread-safe).

    ``window_for(frames, roi)`` returns None when the spec is per-window or fixed; otherwise the first
    call after construction or :meth:`reset` computes ``(lo, hi)`` from that window's first frames
    inside ``roi`` and every later call returns the same pair, whatever frames it is given, until
    :meth:`reset` (call it when an event starts, and when the crop changes).
    """

    def __init__(self, spec) -> None:
        self.spec = spec
        self._window: tuple[float, float] | None = None
        self._lock = threading.Lock()

    @property
    def window(self) -> tuple[float, float] | None:
        """The held ``(lo, hi)``, or None before the first window (or for per-window specs)."""
        return self._window

    def window_for(self, frames: np.ndarray | torch.Tensor,
                   roi: Roi | Sequence[int] | None) -> tuple[float, float] | None:
        """``(lo, hi)`` for a ``[T, H, W]`` uint16 window of this event (see the class docstring)."""
        if not holds_window(self.spec):
            return None
        with self._lock:
            if self._window is None:
                self._window = segment_window(frames, roi, self.spec)
            return self._window

    def reset(self) -> None:
        """Forget the held window: the next window starts a new event."""
        with self._lock:
            self._window = None
