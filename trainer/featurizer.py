"""The engines' Scorer plus held intensity windows (``PreprocessSpec.intensity_scope="video"``).

:class:`IntensityScorer` is the engines' :class:`~semiostream.engines.scorer.Scorer` (same engines,
batching, padding) whose :meth:`~IntensityScorer.features` and :meth:`~IntensityScorer.score_windows`
also accept each window's held intensity window ``(lo, hi)``
(:func:`semiostream.dali_pipes.event_intensity.segment_window` for a video or seizure segment,
:class:`~semiostream.dali_pipes.event_intensity.EventIntensity` for a live event), and whose
:meth:`~IntensityScorer.batcher` takes ``(window, roi, intensity)`` requests. Feature extraction
(``semiostream extract|train``) uses it, so training applies exactly the rule the bundle records.

Held windows go to :meth:`Scorer.preprocess` where it takes them (DALI or the reference, as the Scorer
chooses); with a Scorer that does not, they are applied by the plain-torch reference
(:func:`semiostream.dali_pipes.reference.preprocess`, ``window=``), the definition the DALI pipelines are
tested against (within 1e-3).
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from semiostream.engines.batcher import DynamicBatcher
from semiostream.engines.scorer import Scorer

Intensity = tuple[float, float]


def per_window(intensity: Intensity | Sequence[Intensity | None] | None, n: int) -> list[Intensity | None]:
    """One ``(lo, hi)`` or None per window, from None, one pair for all ``n`` windows, or a sequence of them.

    Raises:
        ValueError: a sequence of another length, or a pair with ``hi <= lo``.
    """
    if intensity is None:
        return [None] * n
    if len(intensity) == 2 and all(isinstance(v, int | float | np.floating) for v in intensity):
        items: list[Any] = [intensity] * n
    else:
        items = list(intensity)
        if len(items) != n:
            raise ValueError(f"{n} windows but {len(items)} intensity windows; pass one (lo, hi) or None per window")
    out: list[Intensity | None] = []
    for it in items:
        if it is None:
            out.append(None)
            continue
        lo, hi = float(it[0]), float(it[1])
        if not hi > lo:
            raise ValueError(f"intensity window ({lo}, {hi}) must have hi > lo")
        out.append((lo, hi))
    return out


def _native_intensities() -> bool:
    """True once :meth:`Scorer.preprocess` itself takes per-window held intensity windows."""
    return "intensities" in inspect.signature(Scorer.preprocess).parameters


class IntensityScorer(Scorer):
    """A :class:`Scorer` whose scoring calls take an optional held intensity window per window.

    ``intensities`` arguments: None (the spec's own rule), one ``(lo, hi)`` for every window of the call,
    or a sequence with one ``(lo, hi)`` or None per window. Where :meth:`Scorer.preprocess` accepts held
    windows itself they are passed on (DALI or reference, as the Scorer chooses); otherwise they are
    applied by the torch reference here. Calls with held windows are serialised by their own lock (the
    held windows are state of the call); the Scorer's lock still serialises engine use.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: list[Intensity | None] | None = None
        self._held_lock = threading.Lock()

    @contextlib.contextmanager
    def _holding(self, windows: Sequence[Any], intensities: Any) -> Iterator[None]:
        held = per_window(intensities, len(windows))
        if all(h is None for h in held):
            yield
            return
        with self._held_lock:
            self._held = held
            try:
                yield
            finally:
                self._held = None

    def features(self, windows: Sequence[Any], rois: Sequence[Any] | None = None,
                 intensities: Intensity | Sequence[Intensity | None] | None = None) -> np.ndarray:
        """I3D features ``[N, 7, 1024]`` float32 (pre-padded with rows of -1) of ``N`` ``[T, H, W]`` uint16
        windows; ``intensities`` as in the class docstring."""
        with self._holding(windows, intensities):
            return super().features(windows, rois)

    def score_windows(self, windows: Sequence[Any], rois: Sequence[Any] | None = None,
                      intensities: Intensity | Sequence[Intensity | None] | None = None) -> np.ndarray:
        """p(TLE) ``[N]`` float32 per ``[T, H, W]`` uint16 window; ``intensities`` as in the class docstring."""
        with self._holding(windows, intensities):
            return super().score_windows(windows, rois)

    def batcher(self, max_batch: int | None = None, max_wait_ms: float = 20.0,
                on_batch: Callable[[int], None] | None = None) -> DynamicBatcher:
        """A :class:`DynamicBatcher` whose requests are ``(window, roi)`` or ``(window, roi, intensity)``
        (``intensity`` = ``(lo, hi)`` or None) and whose results are p(TLE) floats."""

        def run(items: list[tuple[Any, ...]]) -> np.ndarray:
            held = [it[2] if len(it) == 3 else None for it in items]
            return self.score_windows([it[0] for it in items], [it[1] for it in items], held)

        def validate(item: Any) -> None:
            if not (isinstance(item, tuple) and len(item) in (2, 3)):
                raise ValueError("a scoring request is a (window, roi) pair or a (window, roi, intensity) triple")
            self.check_window(item[0], item[1])
            if len(item) == 3:
                per_window([item[2]], 1)

        return DynamicBatcher(run, max_batch or self.max_batch, max_wait_ms, validate=validate,
                              name=f"scorer-{self.backend}", on_batch=on_batch)

    def preprocess(self, windows: Sequence[Any], rois: Sequence[Any] | None = None,
                   intensities: Sequence[Intensity | None] | None = None) -> list[torch.Tensor]:
        """As :meth:`Scorer.preprocess`, with the held windows of the running call (or ``intensities``):
        ``[1, T, size, size]`` float32 in [-1, 1] per window."""
        held = per_window(intensities, len(windows)) if intensities is not None else self._held
        if _native_intensities():
            return super().preprocess(windows, rois, held)  # type: ignore[call-arg]
        if held is None or all(h is None for h in held):
            return super().preprocess(windows, rois)
        from semiostream.dali_pipes.reference import preprocess

        rois = self._check_all(windows, rois)
        device = getattr(self.device, "torch", self.device)
        on_stream = getattr(self, "_on_stream", contextlib.nullcontext)
        out = []
        with on_stream():
            for w, r, h in zip(windows, rois, held, strict=True):
                a = getattr(w, "frames", w)
                t = torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
                out.append(preprocess(t.to(device), r, self.spec, window=h))
        return out
