"""Output geometry shared by the torch reference and the DALI pipelines (one rule, used by both).

A crop of ``h x w`` pixels is resized so that its longer side becomes ``size`` (224) and the shorter side
``max(1, floor(short * size / long + 0.5))``, aspect preserved; it is then centre-padded to
``size x size`` with ``(size - w_out) // 2`` columns on the left and ``(size - h_out) // 2`` rows on top.
"""

from __future__ import annotations

import math


def fit_size(h: int, w: int, size: int = 224) -> tuple[int, int]:
    """``(h_out, w_out)`` of an ``h x w`` crop resized so the longer side is ``size``."""
    if h < 1 or w < 1:
        raise ValueError(f"empty crop {w}x{h}")
    if w >= h:
        return max(1, math.floor(h * size / w + 0.5)), size
    return size, max(1, math.floor(w * size / h + 0.5))


def pad_offsets(h_out: int, w_out: int, size: int = 224) -> tuple[int, int]:
    """``(top, left)`` offset of the resized crop inside the ``size x size`` output."""
    return (size - h_out) // 2, (size - w_out) // 2
