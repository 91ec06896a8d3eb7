"""The feature extractor of ``semiostream extract|train``: the engines' Scorer, plus held intensity windows.

:class:`IntensityScorer` is the engines' :class:`~semiostream.engines.scorer.Scorer` (same engines,
batching, padding) whose :meth:`~IntensityScorer.features` also accepts the seizure's held intensity
window ``(lo, hi)`` (``PreprocessSpec.intensity_scope="video"``,
:func:`semiostream.dali_pipes.event_intensity.segment_window`). Such windows are preprocessed by the
plain-torch reference with that fixed window (:func:`semiostream.dali_pipes.reference.preprocess`,
``window=``), the definition the DALI pipelines are tested against; without one the Scorer's own
preprocessing runs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from semiostream.engines.scorer import Scorer


class IntensityScorer(Scorer):
    """A :class:`Scorer` whose :meth:`features` takes an optional held intensity window.

    Calls with an intensity window are serialised by their own lock (the held window is state of the
    call); the Scorer's lock still serialises engine use.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: tuple[float, float] | None = None
        self._held_lock = threading.Lock()

    def features(self, windows: Sequence[Any], rois: Sequence[Any] | None = None,
                 intensity: tuple[float, float] | None = None) -> np.ndarray:
        """I3D features ``[N, 7, 1024]`` float32 (pre-padded with rows of -1) of ``N`` windows.

        Args:
            windows: ``[T, H, W]`` uint16 windows (one seizure's, when ``intensity`` is given).
            rois: one crop or None per window.
            intensity: raw ``(lo, hi)`` mapped to [0, 1] for every window; None = the spec's rule.
        """
        if intensity is None:
            return super().features(windows, rois)
        lo, hi = float(intensity[0]), float(intensity[1])
        if not hi > lo:
            raise ValueError(f"intensity window ({lo}, {hi}) must have hi > lo")
        with self._held_lock:
            self._held = (lo, hi)
            try:
                return super().features(windows, rois)
            finally:
                self._held = None

    def preprocess(self, windows: Sequence[Any], rois: Sequence[Any] | None = None) -> list[torch.Tensor]:
        """As :meth:`Scorer.preprocess`; during a :meth:`features` call with an intensity window, the
        torch reference with that fixed window (``[1, T, size, size]`` float32 in [-1, 1] each)."""
        held = self._held
        if held is None:
            return super().preprocess(windows, rois)
        from semiostream.dali_pipes.reference import preprocess

        rois = self._check_all(windows, rois)
        device = getattr(self.device, "torch", self.device)
        on_stream = getattr(self, "_on_stream", contextlib.nullcontext)
        out = []
        with on_stream():
            for w, r in zip(windows, rois, strict=True):
                a = getattr(w, "frames", w)
                t = torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
                out.append(preprocess(t.to(device), r, self.spec, window=held))
        return out
