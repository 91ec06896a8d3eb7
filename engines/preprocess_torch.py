"""Preprocessing in plain torch on the engine's device: the stack for machines without DALI.

``[T, H, W]`` uint16 windows in host memory -> ``[1, T, size, size]`` float32 in [-1, 1] on the device,
with the math of :func:`semiostream.dali_pipes.reference.preprocess` (that very function runs on the
device: crop -> intensity window -> bilinear resize -> ``2x - 1`` -> centre padding). What this module
adds is how the frames get there without making the host wait:

* the crop is taken while the frames are copied into **pinned** (page-locked) host buffers, so only the
  crop crosses the bus; the copy to the device is ``non_blocking`` on torch's current stream (the Scorer's
  stream inside a Scorer), so it overlaps the host's next copy and earlier GPU work;
* the pinned buffers are reused (a small ring per size); a buffer is refilled only after the CUDA event
  recorded behind its last transfer has completed, so a reused buffer never races its copy;
* the uint16 values travel as their 16 bits and become float32 on the device (``int16 -> int32 & 0xFFFF
  -> float32``: exact, and independent of how much uint16 support the installed torch's CUDA kernels have);
* a percentile intensity window (``spec.intensity_mode == "percentile"``) is computed on the device from the
  crop, by the reference's rule (:func:`~semiostream.dali_pipes.intensity.intensity_window`: numpy-"linear"
  percentiles from an exact integer histogram, interpolated in float64), with no host synchronisation: the
  histogram is a ``scatter_add`` into 65,536 bins and ``(lo, hi)`` stay 0-d device tensors; a held
  ``(lo, hi)`` is used as given;
* large crops are copied into the staging buffer by a few threads (numpy releases the GIL while copying),
  so one host core's memory bandwidth does not cap the windows per second.

Inputs already on the device (torch tensors) are cropped there. On the CPU (``device="cpu"``) the same
steps run without pinning: the output equals the reference exactly, which is how this module is tested.
Importable without DALI and without a GPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from semiostream.core.device import Device
from semiostream.core.roi import as_roi
from semiostream.dali_pipes.intensity import intensity_window
from semiostream.dali_pipes.reference import preprocess as reference_preprocess

#: pinned buffers kept per crop size (transfers of up to this many windows of one size can be in flight)
RING = 4
#: crops above this many bytes are copied into staging buffers by several threads
PARALLEL_COPY_BYTES = 4 << 20
_copy_pool: ThreadPoolExecutor | None = None


def staged_copy(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` for ``[T, h, w]`` arrays; split over frames between threads when large."""
    global _copy_pool
    t = src.shape[0]
    workers = min(4, os.cpu_count() or 1, t)
    if src.nbytes < PARALLEL_COPY_BYTES or workers < 2:
        np.copyto(dst, src)
        return
    if _copy_pool is None:
        _copy_pool = ThreadPoolExecutor(4, thread_name_prefix="semiostream-stage")
    step = math.ceil(t / workers)
    list(_copy_pool.map(lambda i: np.copyto(dst[i:i + step], src[i:i + step]), range(0, t, step)))


def device_intensity_window(x: torch.Tensor, spec) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's percentile window of a cropped ``[T, h, w]`` float32 (integer values 0..65535) tensor,
    as 0-d float64 tensors on its device, computed without waiting for the device.

    Same rule as :func:`semiostream.dali_pipes.intensity.intensity_window` (first ``spec.percentile_frames``
    frames, numpy "linear" percentiles from the exact histogram, a flat window gets ``hi = lo + 1``).
    """
    values = x[: spec.percentile_frames].reshape(-1).to(torch.int64)
    n = values.numel()
    counts = torch.zeros(65536, dtype=torch.int64, device=x.device).scatter_add_(0, values, torch.ones_like(values))
    cdf = torch.cumsum(counts, 0)
    out = []
    for q in (spec.percentile_lo, spec.percentile_hi):
        pos = q / 100.0 * (n - 1)
        k0 = math.floor(pos)
        k1 = min(k0 + 1, n - 1)
        ranks = torch.tensor([k0, k1], dtype=cdf.dtype).to(x.device, non_blocking=True)
        v = torch.searchsorted(cdf, ranks, right=True).to(torch.float64)
        out.append(v[0] + (pos - k0) * (v[1] - v[0]))
    lo, hi = out
    return lo, torch.where(hi > lo, hi, lo + 1.0)


class _PinnedRing:
    """Reusable pinned int16 host buffers by element count, each with the event of its last transfer."""

    def __init__(self, depth: int = RING) -> None:
        self.depth = depth
        self._rings: dict[int, list[list[Any]]] = {}
        self._next: dict[int, int] = {}

    def take(self, numel: int) -> list[Any]:
        """A ``[buffer, event]`` slot for ``numel`` int16 values, free to refill (waits for its event)."""
        ring = self._rings.setdefault(numel, [])
        if len(ring) < self.depth:
            ring.append([torch.empty(numel, dtype=torch.int16, pin_memory=True), None])
            return ring[-1]
        i = self._next.get(numel, 0)
        self._next[numel] = (i + 1) % self.depth
        slot = ring[i]
        if slot[1] is not None:
            slot[1].synchronize()  # its previous transfer has been read by the device
        return slot


def uint16_bits_to_float(x: torch.Tensor) -> torch.Tensor:
    """int16 (the bits of uint16 values) or uint16 -> float32 with values 0..65535, on ``x``'s device."""
    if x.dtype == torch.int16:
        return x.to(torch.int32).bitwise_and_(0xFFFF).to(torch.float32)
    return x.to(torch.float32)


class TorchPreprocessor:
    """Windows -> model inputs with torch on ``device`` (see the module docstring).

    Args:
        spec: the bundle's :class:`~semiostream.core.preprocess_spec.PreprocessSpec`.
        device: a :class:`~semiostream.core.device.Device` or its spelling.
        pinned: stage host frames in pinned memory (default: on CUDA devices).
    """

    def __init__(self, spec, device: Device | str = "cpu", pinned: bool | None = None) -> None:
        self.spec = spec
        self.device = Device.parse(device)
        self.pinned = self.device.is_cuda if pinned is None else bool(pinned)
        self._ring = _PinnedRing() if self.pinned else None

    def _to_device(self, frames: np.ndarray, roi) -> torch.Tensor:
        """Crop a host ``[T, H, W]`` uint16 array into a staging buffer and send it -> float32 ``[T, h, w]``."""
        crop = frames[:, roi.y0:roi.y1, roi.x0:roi.x1]
        if self._ring is None:
            host = np.empty(crop.shape, np.uint16)
            staged_copy(host, crop)
            return torch.from_numpy(host).to(self.device.torch).to(torch.float32)
        slot = self._ring.take(crop.size)
        host = slot[0]
        staged_copy(host.numpy().reshape(crop.shape), crop.view(np.int16))
        dev = host.to(self.device.torch, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device.torch))
        slot[1] = event
        return uint16_bits_to_float(dev.view(crop.shape))

    def one(self, frames: np.ndarray | torch.Tensor, roi=None, window: tuple[float, float] | None = None
            ) -> torch.Tensor:
        """One ``[T, H, W]`` uint16 window (numpy, or a torch tensor on any device) -> ``[1, T, size, size]``
        float32 in [-1, 1] on :attr:`device`, enqueued on torch's current stream there."""
        if isinstance(frames, torch.Tensor) and frames.device.type == "cpu":
            frames = frames.numpy()
        if frames.ndim != 3:
            raise ValueError(f"frames must be [T, H, W], got shape {tuple(frames.shape)}")
        t, h, w = (int(s) for s in frames.shape)
        r = as_roi(roi, w, h)
        if isinstance(frames, torch.Tensor):  # already on a device: crop there
            x = uint16_bits_to_float(frames.to(self.device.torch)[:, r.y0:r.y1, r.x0:r.x1])
        else:
            x = self._to_device(np.asarray(frames), r)
        if window is not None:
            lo, hi = float(window[0]), float(window[1])
        elif self.spec.intensity_mode == "percentile":
            lo, hi = device_intensity_window(x, self.spec)
        else:
            lo, hi = intensity_window(frames, r, self.spec)  # the spec's fixed window
        return reference_preprocess(x, None, self.spec, window=(lo, hi))

    def __call__(self, windows: Sequence[Any], rois: Sequence[Any] | None = None, stream=None,
                 intensities: Sequence[tuple[float, float] | None] | None = None) -> list[torch.Tensor]:
        """``N`` windows -> ``N`` inputs (the DALI preprocessor's call signature).

        Args:
            windows: ``[T, H, W]`` uint16 arrays (lengths and frame sizes may differ).
            rois: one ``(x0, y0, x1, y1)`` or None per window (None: full frames).
            stream: CUDA only: the ``torch.cuda.Stream`` to enqueue on (None: torch's current stream).
            intensities: one held raw ``(lo, hi)`` or None (the spec's rule) per window.
        """
        n = len(windows)
        rois = [None] * n if rois is None else list(rois)
        held = [None] * n if intensities is None else list(intensities)
        if len(rois) != n or len(held) != n:
            raise ValueError(f"{n} windows need {n} ROIs and {n} intensity windows")
        if stream is not None and self.device.is_cuda:
            with torch.cuda.stream(stream):
                return [self.one(w, r, iw) for w, r, iw in zip(windows, rois, held, strict=True)]
        return [self.one(w, r, iw) for w, r, iw in zip(windows, rois, held, strict=True)]
