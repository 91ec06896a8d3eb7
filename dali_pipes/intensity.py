"""The 16 -> 8-bit step: which raw intensities map to [0, 1] (design.md, "intensity window").

The paper does not specify it; ours is explicit and recorded in the bundle's
:class:`~semiostream.core.preprocess_spec.PreprocessSpec`:

* ``intensity_mode="fixed"``: raw ``[intensity_lo, intensity_hi]`` -> [0, 1], values outside clipped;
* ``intensity_mode="percentile"``: ``lo``/``hi`` = the ``percentile_lo``/``percentile_hi`` percentiles of
  the window's first ``percentile_frames`` frames **inside the crop** (design.md orders crop before the
  intensity window, so a hot radiator outside the bed does not flatten the patient's contrast).

Percentiles use numpy's default ("linear") definition, computed exactly from an integer histogram, so
the torch reference and the DALI pipelines share the same ``lo``/``hi`` bit for bit.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from semiostream.core.roi import Roi, as_roi


def as_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A torch view of a numpy array (a copy only if it is read-only or not C-contiguous)."""
    if isinstance(frames, torch.Tensor):
        return frames
    if not frames.flags.writeable or not frames.flags.c_contiguous:
        frames = np.array(frames, order="C")
    return torch.from_numpy(frames)


def spec_for_bit_depth(spec, bit_depth: int):
    """The spec to use for a source of ``bit_depth`` bits.

    8-bit sources (ordinary video) are scaled as 0..255: in ``"fixed"`` mode their window becomes
    ``[0, 255]``; percentile mode is unchanged. 16-bit sources use the spec as is.
    """
    if bit_depth <= 8 and spec.intensity_mode == "fixed":
        return dataclasses.replace(spec, intensity_lo=0.0, intensity_hi=255.0)
    return spec


def _percentiles_int(values: torch.Tensor, qs: tuple[float, float]) -> tuple[float, float]:
    """numpy-"linear" percentiles of a 1-D integer tensor (0..65535) via a histogram; any device."""
    n = values.numel()
    counts = torch.bincount(values.to(torch.int64), minlength=1)
    cdf = torch.cumsum(counts, 0)
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        k0 = math.floor(pos)
        k1 = min(k0 + 1, n - 1)
        ranks = torch.tensor([k0, k1], device=cdf.device, dtype=cdf.dtype)
        v0, v1 = torch.searchsorted(cdf, ranks, right=True).tolist()
        out.append(v0 + (pos - k0) * (v1 - v0))
    return out[0], out[1]


def intensity_window(frames: np.ndarray | torch.Tensor, roi: Roi | tuple | None, spec) -> tuple[float, float]:
    """Raw ``(lo, hi)`` that map to 0 and 1 for this window.

    Args:
        frames: ``[T, H, W]`` uint16 (numpy or torch, any device).
        roi: crop ``(x0, y0, x1, y1)`` in pixels, or None for the full frame.
        spec: the bundle's ``PreprocessSpec``.

    Returns:
        ``(lo, hi)`` as floats with ``hi > lo`` (a flat window gets ``hi = lo + 1``).
    """
    if spec.intensity_mode == "fixed":
        return float(spec.intensity_lo), float(spec.intensity_hi)
    t = as_tensor(frames)
    h, w = int(t.shape[-2]), int(t.shape[-1])
    r = as_roi(roi, w, h)
    sub = t[: spec.percentile_frames, r.y0 : r.y1, r.x0 : r.x1]
    sub = sub.to(torch.int32) if sub.dtype == torch.uint16 else sub
    lo, hi = _percentiles_int(sub.reshape(-1), (spec.percentile_lo, spec.percentile_hi))
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def to_uint8(frame: np.ndarray, spec, roi: Roi | tuple | None = None) -> np.ndarray:
    """One ``[H, W]`` uint16 frame -> ``[H, W]`` uint8 through the spec's intensity window (for detectors)."""
    lo, hi = intensity_window(frame[None], roi, spec)
    x = (frame.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
