"""The preprocessing function in plain torch: the oracle every pipeline is tested against.

``[T, H, W]`` uint16 window + ROI -> ``[1, T, size, size]`` float32 in [-1, 1]:

1. crop ``frames[:, y0:y1, x0:x1]`` (ROI None = full frame);
2. intensity window to [0, 1]: ``clip((x - lo) * (1 / (hi - lo)), 0, 1)`` with ``(lo, hi)`` from
   :func:`~.intensity.intensity_window` (fixed, or percentiles of the first frames inside the crop);
3. resize so the longer side is ``size``: bilinear, ``align_corners=False``, no antialias, aspect
   preserved (:func:`~.geometry.fit_size`);
4. scale to [-1, 1] (``2x - 1``) and centre-pad to ``size x size`` with ``pad_value`` (-1)
   (:func:`~.geometry.pad_offsets`).

Importable without DALI.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from semiostream.core.roi import Roi, as_roi

from .geometry import fit_size, pad_offsets
from .intensity import as_tensor, intensity_window


def preprocess(
    frames: np.ndarray | torch.Tensor,
    roi: Roi | Sequence[int] | None,
    spec,
    dtype: torch.dtype = torch.float32,
    window: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Preprocess one window for the I3D.

    Args:
        frames: ``[T, H, W]`` uint16 (numpy or torch on any device; 8-bit sources as 0..255 values with a
            spec from :func:`~.intensity.spec_for_bit_depth`).
        roi: ``(x0, y0, x1, y1)`` pixels (``x1``/``y1`` exclusive) inside the frame, or None (full frame).
        spec: the bundle's :class:`~semiostream.core.preprocess_spec.PreprocessSpec`.
        dtype: output dtype (float32; float16 for half-precision engines). Computation is float32.
        window: optional precomputed ``(lo, hi)``; by default from ``spec``.

    Returns:
        ``[1, T, size, size]`` tensor of ``dtype`` in [-1, 1] on the input's device.
    """
    t = as_tensor(frames)
    if t.ndim != 3:
        raise ValueError(f"frames must be [T, H, W], got shape {tuple(t.shape)}")
    n, h, w = (int(s) for s in t.shape)
    r = as_roi(roi, w, h)
    lo, hi = window if window is not None else intensity_window(t, r, spec)
    x = t[:, r.y0 : r.y1, r.x0 : r.x1].to(torch.float32)
    x = ((x - lo) * (1.0 / (hi - lo))).clamp_(0.0, 1.0)
    size = spec.size
    oh, ow = fit_size(r.height, r.width, size)
    x = F.interpolate(x[:, None], size=(oh, ow), mode="bilinear", align_corners=False, antialias=False)[:, 0]
    top, left = pad_offsets(oh, ow, size)
    out = torch.full((1, n, size, size), float(spec.pad_value), dtype=torch.float32, device=x.device)
    out[0, :, top : top + oh, left : left + ow] = x * 2.0 - 1.0
    return out.to(dtype)
