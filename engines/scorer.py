"""The Scorer: uint16 IR windows -> p(TLE) per window -> per-event decision.

``Scorer(bundle, backend=None)`` chains

1. preprocessing with the bundle's :class:`~semiostream.core.preprocess_spec.PreprocessSpec` (DALI's pipeline,
   :class:`semiostream.dali_pipes.pipeline.DaliPreprocessor`, on the backend's device; where DALI is absent,
   on a GPU the reference's math on the device from pinned host buffers
   (:class:`~semiostream.engines.preprocess_torch.TorchPreprocessor`), on the CPU the plain-torch
   reference :func:`semiostream.dali_pipes.reference.preprocess`) -> one
   ``[1, T, 224, 224]`` float32 tensor in [-1, 1] per window;
2. the feature engine on batches of equally long windows (grouped by T, never padded in time: padding
   frames would change the features) -> ``[T', 1024]`` per window;
3. pre-padding with rows of -1 to 7 steps (:func:`~semiostream.models.classifier.pad_features`);
4. the classifier engine -> p(TLE) per window;
5. optionally the mean over an event's windows (:func:`semiostream.core.decision.aggregate_event`).

It is what the bus service, archive reprocessing, the trainer's feature extraction and the benchmarks
call. Calls are serialised by a lock (engines are not re-entrant); use :meth:`Scorer.batcher` to batch
requests from many threads.

Devices: the Scorer's :attr:`~Scorer.device` is a :class:`semiostream.core.device.Device` (the backend's kind,
``cuda:N`` with the ``device`` argument or torch's current GPU); the engines are created on it and DALI
gets it as ``device="gpu", device_id=N``. On a GPU the Scorer owns one dedicated CUDA stream
(:attr:`~Scorer.stream`): DALI's preprocessing (inputs and outputs), the engines (torch, ONNX Runtime's
``user_compute_stream``, TensorRT's ``execute_async_v3``) and the copies all run on it, so the steps are
ordered by the stream and the host waits once, for the probabilities.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from semiostream.core.batching import SCORER_MAX_BATCH
from semiostream.core.decision import DECISION_THRESHOLD, EventDecision, aggregate_event
from semiostream.core.device import Device
from semiostream.models.bundle import Bundle, load_bundle
from semiostream.models.classifier import NUM_STEPS, pad_features

from .base import EngineError
from .batcher import DynamicBatcher
from .registry import create_engine, get_backend
from .select import select_backend
from .stack import dali_importable as _dali_importable
from .streams import on_stream

log = logging.getLogger(__name__)

PREPROCESSORS = ("auto", "dali", "torch", "reference")


@dataclass(frozen=True)
class PreparedWindow:
    """A window already preprocessed by its reader (e.g. HTJ2K decoded and preprocessed in one DALI graph,
    :mod:`semiostream.dali_pipes.pipeline_htj2k`): ``input`` is ``[1, T, size, size]`` float32 in [-1, 1],
    on the Scorer's device and ready (its producer synchronised). Accepted wherever a raw window is; its
    ROI and intensity window were applied by the producer."""

    input: torch.Tensor

Intensity = tuple[float, float]
#: held intensity windows of a call: None, one ``(lo, hi)`` for every window, or one ``(lo, hi)`` / None each
Intensities = Intensity | Sequence[Intensity | None] | None


def held_windows(intensities: Intensities, n: int) -> list[Intensity | None]:
    """One raw ``(lo, hi)`` or None per window, from None, one pair for all ``n`` windows, or a sequence.

    Raises:
        ValueError: a sequence of another length, or a pair with ``hi <= lo``.
    """
    if intensities is None:
        return [None] * n
    if len(intensities) == 2 and all(isinstance(v, int | float | np.floating) for v in intensities):
        items: list[Any] = [intensities] * n
    else:
        items = list(intensities)
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


class Scorer:
    """Score IR windows with a model bundle.

    Args:
        bundle: a bundle directory or a loaded :class:`~semiostream.models.bundle.Bundle`.
        backend: backend name (``torch-cpu-bf16``, ``onnxruntime-cpu-fp32``, ``tensorrt-fp16`` ...); None
            picks the fastest backend verified for this bundle on this machine (:mod:`.select`).
        preprocessing: ``"auto"`` (DALI when installed; else on a GPU ``"torch"``, on the CPU the torch
            reference), ``"dali"``, ``"torch"`` (:mod:`.preprocess_torch`: pinned host buffers, non-blocking
            copies, the reference's math on the device) or ``"reference"``.
        max_batch: windows per feature-engine call (and per DALI batch).
        engine_options: extra keyword arguments for the backend's engines (e.g. ``{"compile": False}``
            for the torch backends, ``{"graph_level": "basic"}`` for ONNX Runtime).
        device: which device of the backend's kind (``"cuda:1"``, a :class:`~semiostream.core.device.Device`);
            None = the CPU for CPU backends, torch's current GPU for CUDA backends.
        stream: CUDA backends: the ``torch.cuda.Stream`` to run on (a caller's own, so the Scorer's work
            is ordered after it); None = a new dedicated stream on ``device``.
    """

    def __init__(self, bundle: Bundle | str | os.PathLike, backend: str | None = None, *,
                 preprocessing: str = "auto", max_batch: int = SCORER_MAX_BATCH,
                 engine_options: dict[str, Any] | None = None, device: Device | str | None = None,
                 stream: Any = None) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.spec = self.bundle.spec
        self.backend = select_backend(self.bundle, backend)
        info = get_backend(self.backend)
        self.device = Device.parse(info.device if device is None else device)
        if self.device.kind != info.device:
            raise ValueError(f"backend {self.backend} runs on {info.device}, not on {self.device}; "
                             "choose a backend of that device or drop the device argument")
        self.max_batch = int(max_batch)
        if self.max_batch < 1:
            raise ValueError(f"max_batch={max_batch} must be >= 1")
        #: the one CUDA stream of this Scorer's GPU work (None on the CPU)
        self.stream = None
        opts = dict(engine_options or {}, device=self.device)
        if self.device.is_cuda:
            self.stream = stream if stream is not None else torch.cuda.Stream(device=self.device.torch)
            opts["stream"] = self.stream
        self.feature_engine = create_engine(self.backend, self.bundle, "features", **opts)
        try:
            cls_opts = {k: v for k, v in opts.items() if k not in ("compile", "fold_bn", "channels_last", "graphs")}
            self.classifier_engine = create_engine(self.backend, self.bundle, "classifier", **cls_opts)
        except Exception:
            self.feature_engine.close()
            raise
        self.min_frames = max(int(self.spec.min_frames), self.feature_engine.io.dims["frames"][0])
        self.max_frames = self.feature_engine.io.dims["frames"][1]
        self.max_batch = min(self.max_batch, self.feature_engine.io.dims["batch"][1])
        if preprocessing not in PREPROCESSORS:
            raise ValueError(f"preprocessing={preprocessing!r}; use one of {PREPROCESSORS}")
        if preprocessing == "auto":
            preprocessing = "dali" if _dali_importable() else "torch" if self.device.is_cuda else "reference"
        self._preprocessor = None
        if preprocessing == "dali":
            from semiostream.dali_pipes.pipeline import DaliPreprocessor

            self._preprocessor = DaliPreprocessor(self.spec, device=self.device, max_batch=self.max_batch,
                                                  num_threads=max(1, min(4, os.cpu_count() or 1)))
        elif preprocessing == "torch":
            from .preprocess_torch import TorchPreprocessor

            self._preprocessor = TorchPreprocessor(self.spec, device=self.device)
        self.preprocessing = preprocessing
        self.timings: dict[str, float] = {}
        self._lock = threading.Lock()

    def _on_stream(self) -> contextlib.AbstractContextManager:
        """Make :attr:`stream` torch's current stream (and the device current); nothing on the CPU."""
        if self.stream is None:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        stack.enter_context(self.device.activate())
        stack.enter_context(on_stream(self.stream, self.device))
        return stack

    # ----------------------------------------------------------------------------------------------
    def check_window(self, window: Any, roi: Any = None) -> None:
        """Raise :class:`ValueError` saying what is wrong with one ``[T, H, W]`` uint16 window / ROI."""
        if isinstance(window, PreparedWindow):
            shape = tuple(window.input.shape)
            size = self.spec.size
            if len(shape) != 4 or shape[0] != 1 or shape[2:] != (size, size):
                raise ValueError(f"a prepared window must be [1, T, {size}, {size}], got {shape}")
            if not self.min_frames <= shape[1] <= self.max_frames:
                raise ValueError(f"prepared window has {shape[1]} frames; this scorer takes "
                                 f"{self.min_frames}..{self.max_frames}")
            return
        frames = getattr(window, "frames", window)  # sources.windows.Window objects carry .frames
        if not isinstance(frames, np.ndarray | torch.Tensor):
            raise ValueError(f"a window must be a [T, H, W] uint16 array, got {type(frames).__name__}")
        if frames.ndim != 3:
            raise ValueError(f"a window must be [T, H, W] uint16 frames, got shape {tuple(frames.shape)}")
        if frames.dtype not in (np.uint16, torch.uint16):
            raise ValueError(f"a window must be uint16, got {frames.dtype}; 8-bit sources: .astype(np.uint16) "
                             "with a bundle spec for 8-bit data")
        t, h, w = (int(s) for s in frames.shape)
        if t < self.min_frames:
            raise ValueError(f"window has {t} frames; the bundle needs at least {self.min_frames} "
                             "(drop shorter leftovers, as sources.windows does)")
        if t > self.max_frames:
            raise ValueError(f"window has {t} frames; the {self.backend} feature engine takes at most "
                             f"{self.max_frames} (use windows of spec.window={self.spec.window})")
        if roi is not None:
            from semiostream.core.roi import as_roi

            try:
                as_roi(roi, w, h)  # raises ValueError naming the ROI and the frame size
            except TypeError as e:
                raise ValueError(f"ROI {roi!r} must be (x0, y0, x1, y1) integers: {e}") from None

    def _check_all(self, windows: Sequence[Any], rois: Sequence[Any] | None) -> list[Any]:
        rois = [None] * len(windows) if rois is None else list(rois)
        if len(rois) != len(windows):
            raise ValueError(f"{len(windows)} windows but {len(rois)} ROIs; pass one ROI (or None) per window")
        for i, (w, r) in enumerate(zip(windows, rois, strict=True)):
            try:
                self.check_window(w, r)
            except ValueError as e:
                raise ValueError(f"window {i}: {e}") from None
        return rois

    # ----------------------------------------------------------------------------------------------
    def preprocess(self, windows: Sequence[Any], rois: Sequence[Any] | None = None,
                   intensities: Intensities = None) -> list[torch.Tensor]:
        """``[T, H, W]`` uint16 windows -> one ``[1, T, size, size]`` float32 tensor in [-1, 1] each, on
        :attr:`device` (on the GPU: ready on :attr:`stream`). ``intensities``: held raw intensity windows
        (a video's, seizure's or live event's, :mod:`semiostream.dali_pipes.event_intensity`), see
        :func:`held_windows`; None applies the spec's own rule to each window."""
        rois = self._check_all(windows, rois)
        lohi = held_windows(intensities, len(rois))
        out: list[Any] = [w.input.to(self.device.torch) if isinstance(w, PreparedWindow) else None for w in windows]
        raw = [i for i, o in enumerate(out) if o is None]
        if raw:
            arrays = [getattr(windows[i], "frames", windows[i]) for i in raw]
            done = self._preprocess_raw(arrays, [rois[i] for i in raw], [lohi[i] for i in raw])
            for i, x in zip(raw, done, strict=True):
                out[i] = x
        return out

    def _preprocess_raw(self, arrays: list[Any], rois: list[Any], lohi: list[Any]) -> list[torch.Tensor]:
        with self._on_stream():
            if self._preprocessor is not None:
                return self._preprocessor(arrays, rois, stream=self.stream, intensities=lohi)
            from semiostream.dali_pipes.reference import preprocess

            out = []
            for a, r, iw in zip(arrays, rois, lohi, strict=True):
                if self.device.is_cuda and isinstance(a, np.ndarray):
                    a = torch.from_numpy(np.ascontiguousarray(a)).to(self.device.torch, non_blocking=True)
                out.append(preprocess(a, r, self.spec, window=iw))
            return out

    def _features(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Preprocessed ``[1, T_i, S, S]`` tensors -> ``[N, 7, 1024]`` float32 on :attr:`device`, pre-padded
        with -1 (on the GPU nothing waits for the host: the result is ready on :attr:`stream`)."""
        by_len: dict[int, list[int]] = {}
        for i, x in enumerate(inputs):
            by_len.setdefault(int(x.shape[1]), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(inputs)
        with self._on_stream():
            for idx in by_len.values():
                for s in range(0, len(idx), self.max_batch):
                    chunk = idx[s:s + self.max_batch]
                    batch = torch.stack([inputs[i] for i in chunk]).to(torch.float32)  # [B, 1, T, S, S]
                    feats = self.feature_engine.infer(batch)  # [B, T', 1024]
                    padded = pad_features(feats.float()).to(self.device.torch)
                    for j, i in enumerate(chunk):
                        out[i] = padded[j]
            return torch.stack(out) if out else torch.empty(0, NUM_STEPS, 1024, device=self.device.torch)

    def _classify(self, feats: torch.Tensor) -> np.ndarray:
        """``[N, 7, 1024]`` float32 (any device) -> p(TLE) ``[N]`` float32 numpy (the one host wait)."""
        cmax = self.classifier_engine.io.dims["batch"][1]
        with self._on_stream():
            probs = [self.classifier_engine.infer(feats[s:s + cmax].contiguous()).float()
                     for s in range(0, feats.shape[0], cmax)]
            return torch.cat(probs).cpu().numpy() if probs else np.zeros(0, np.float32)

    # ----------------------------------------------------------------------------------------------
    def features(self, windows: Sequence[Any], rois: Sequence[Any] | None = None,
                 intensities: Intensities = None) -> np.ndarray:
        """I3D features of each window: ``[N, 7, 1024]`` float32, pre-padded with rows of -1.

        Args:
            windows: ``N`` windows, each ``[T, H, W]`` uint16 (numpy or torch; T from ``min_frames`` to the
                engine's maximum, 60 normally; lengths may differ).
            rois: one ``(x0, y0, x1, y1)`` crop or None (full frame) per window; None for all full frames.
            intensities: held intensity windows (:func:`held_windows`), or None for the spec's rule.
        """
        with self._lock:
            t0 = time.perf_counter()
            inputs = self.preprocess(windows, rois, intensities)
            t1 = time.perf_counter()
            with self._on_stream():
                feats = self._features(inputs).cpu()
            self.timings = {"preprocess_s": t1 - t0, "features_s": time.perf_counter() - t1, "windows": len(inputs)}
            return feats.numpy()

    def score_features(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """p(TLE) ``[N]`` float32 for pre-padded feature sequences ``[N, 7, 1024]`` float32."""
        f = torch.as_tensor(np.asarray(features, dtype=np.float32)) if not isinstance(features, torch.Tensor) \
            else features.float()
        if f.dim() != 3:
            raise ValueError(f"features must be [N, {NUM_STEPS}, 1024], got {tuple(f.shape)}")
        with self._lock:
            return self._classify(f)

    def score_windows(self, windows: Sequence[Any], rois: Sequence[Any] | None = None,
                      intensities: Intensities = None) -> np.ndarray:
        """p(TLE) ``[N]`` float32, one per window (arguments as :meth:`features`; ``intensities`` as
        :meth:`preprocess`).

        Raises:
            ValueError: a window or ROI is invalid (the message names its index and the problem).
        """
        with self._lock:
            t0 = time.perf_counter()
            inputs = self.preprocess(windows, rois, intensities)
            t1 = time.perf_counter()
            feats = self._features(inputs)
            t2 = time.perf_counter()
            probs = self._classify(feats)
            self.timings = {"preprocess_s": t1 - t0, "features_s": t2 - t1,
                            "classifier_s": time.perf_counter() - t2, "windows": len(inputs)}
            return probs

    def score_event(self, windows: Sequence[Any], rois: Sequence[Any] | None = None,
                    threshold: float = DECISION_THRESHOLD) -> EventDecision:
        """One decision for a seizure: mean p(TLE) over its windows, label from ``bundle.labels``."""
        return aggregate_event(self.score_windows(windows, rois), self.bundle.labels, threshold)

    def batcher(self, max_batch: int | None = None, max_wait_ms: float = 20.0,
                on_batch: Callable[[int], None] | None = None) -> DynamicBatcher:
        """A :class:`DynamicBatcher` whose requests are ``(window, roi)`` pairs, or ``(window, roi,
        intensity)`` with a held raw ``(lo, hi)`` (or None), and results p(TLE) floats.

        A bad window fails only its own future (checked on submit by :meth:`check_window`).
        """
        def run(items: list[tuple[Any, ...]]) -> np.ndarray:
            return self.score_windows([it[0] for it in items], [it[1] for it in items],
                                      [it[2] if len(it) == 3 else None for it in items])

        def validate(item: Any) -> None:
            if not (isinstance(item, tuple) and len(item) in (2, 3)):
                raise ValueError("a scoring request is a (window, roi) pair or a (window, roi, intensity) triple")
            self.check_window(item[0], item[1])
            if len(item) == 3:
                held_windows([item[2]], 1)

        return DynamicBatcher(run, max_batch or self.max_batch, max_wait_ms, validate=validate,
                              name=f"scorer-{self.backend}", on_batch=on_batch)

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> float:
        """Run standard-length (``spec.window``) dummy inputs through both engines so that compilation,
        oneDNN / TensorRT kernel selection and allocations happen now, not on the first live window.

        Returns:
            Seconds spent.
        """
        t0 = time.perf_counter()
        s, c = self.spec.size, self.bundle.in_channels
        with self._lock, self._on_stream():
            for b in batch_sizes:
                b = min(int(b), self.max_batch)
                x = torch.zeros(b, c, min(self.spec.window, self.max_frames), s, s, device=self.device.torch)
                feats = pad_features(self.feature_engine.infer(x).float())
                self.classifier_engine.infer(feats).cpu()
        return time.perf_counter() - t0

    # ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        for e in (self.feature_engine, self.classifier_engine):
            e.close()
        self._preprocessor = None

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Scorer bundle={self.bundle.bundle_id} backend={self.backend} "
                f"preprocessing={self.preprocessing} max_batch={self.max_batch}>")


__all__ = ["Scorer", "EngineError"]
