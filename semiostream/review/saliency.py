"""Where a decision came from: occlusion sensitivity of the movement the I3D saw, per region of the input.

Method: **motion occlusion at I3D's ``Mixed_4f`` block** (an occlusion-sensitivity map, Zeiler & Fergus
2014, applied inside the network as in Ablation-CAM, Desai & Ramaswamy 2020). For a window preprocessed
exactly as the scorer does (``x``: ``[1, 1, T, 224, 224]`` float32 in [-1, 1]):

1. ``A = I3D[..Mixed_4f](x)``: ``[1, 832, T4, 14, 14]`` (T4 = ceil(T/4)), computed once;
2. the 14x14 grid is split into ``grid x grid`` regions (7: regions of 32x32 input pixels); for each region
   a copy of ``A`` has that region's activations replaced by their mean over time -- the still picture is
   kept, the **movement** there is removed -- and the rest of the model (``Mixed_5b`` ... classifier) is
   run on all copies as one batch;
3. a region's score is how much removing its movement lowers the window's decision score ``s``
   (``s = logit p(TLE)`` when the window was decided TLE, ``-logit`` when FLE): ``s(A) - s(A_region)``.
   The map shows the positive part (movement that supported the decision), scaled to [0, 1] by its maximum;
   :attr:`SaliencyMap.drops` keeps the signed values.

Why this and not Grad-CAM: Grad-CAM is a first-order estimate, and on this model its maps did not agree
with what happens when a region's movement is actually removed from the input (rank correlation -0.6 to
+0.5 over three windows of a real clip); an occlusion map is itself such an intervention. Why inside
the network and not on pixels: pixel occlusion needs one full I3D pass per region (49 passes: minutes per
window on two CPU cores); here the expensive trunk runs once and only the last blocks (at 7x7) run per
region, a few seconds per window. Why movement and not blanking: the question is which *moving* regions
drove p(TLE); blanking would also remove the patient's outline. Tested against the independent check
:func:`occlusion_drop` (movement removed from the input pixels, full model): removing the input movement
of the region this map marks as most important lowers the decision more than removing that of the least
important region, on a real clip with the real Kinetics I3D.

Models are loaded once per bundle (:class:`SaliencyModels`, cached by resolved bundle directory and
bundle id, thread-safe); nothing here changes the loaded modules (inference mode only), so several
threads may share one bundle.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semiostream.models.bundle import Bundle, load_bundle
from semiostream.models.classifier import pad_features

METHOD = "motion occlusion"
LAYER = "Mixed_4f"
_CACHE_SIZE = 2


@dataclass
class SaliencyMap:
    """One window's motion-occlusion map.

    Attributes:
        cam: ``[S, S]`` float32 in [0, 1] on the model input's grid (S = ``spec.size``, 224): how much the
            movement in each region supported the window's decision (0 = not at all or against it).
        drops: ``[grid, grid]`` float64, decision-score drop (logit units) when a region's movement is
            removed; NaN for regions that are mostly centre padding (not computed).
        p_tle: p(TLE) of the window recomputed here from ``x`` (the scorer's value for the same input).
        target: the label whose evidence the map shows (the window's decision).
        seconds: wall time of the computation.
        layer: the I3D block the movement was removed at.
    """

    cam: np.ndarray
    drops: np.ndarray
    p_tle: float
    target: str
    seconds: float
    layer: str = LAYER


class SaliencyModels:
    """The bundle's PyTorch I3D and classifier for saliency, loaded once per (bundle directory, bundle id).

    ``SaliencyModels.get(bundle_dir, device)`` returns a cached instance (at most two bundles are kept).
    """

    _cache: OrderedDict[tuple[str, str, str], SaliencyModels] = OrderedDict()
    _lock = threading.Lock()

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        self.bundle = bundle
        self.device = torch.device(device)
        self.labels = bundle.labels
        self._names = type(bundle.i3d).ENDPOINTS
        if LAYER not in self._names:
            raise ValueError(f"the bundle's I3D has no block {LAYER}; saliency needs an InceptionI3d")

    @classmethod
    def get(cls, bundle_dir: str | Path, device: str = "cpu") -> SaliencyModels:
        """The cached models of ``bundle_dir`` (verified and loaded on first use; raises ``BundleError``)."""
        from semiostream.models.bundle import read_bundle_json

        root = Path(bundle_dir).resolve()
        key = (str(root), read_bundle_json(root)["bundle_id"], str(device))
        with cls._lock:
            hit = cls._cache.get(key)
            if hit is not None:
                cls._cache.move_to_end(key)
                return hit
        models = cls(load_bundle(root, map_location=device), device)  # slow: outside the lock
        with cls._lock:
            models = cls._cache.setdefault(key, models)
            while len(cls._cache) > _CACHE_SIZE:
                cls._cache.popitem(last=False)
        return models

    def _trunk_until(self, x: torch.Tensor, layer: str = LAYER) -> torch.Tensor:
        i3d = self.bundle.i3d
        i3d._check_input(x)
        for name in self._names:
            x = getattr(i3d, name)(x)
            if name == layer:
                return x
        raise ValueError(f"unknown I3D block {layer!r}; use one of {', '.join(self._names)}")

    def _head(self, a: torch.Tensor, layer: str = LAYER) -> torch.Tensor:
        """Activations of ``layer`` (``Mixed_4f``: ``[B, 832, T4, 14, 14]``) -> pre-sigmoid score ``[B]``."""
        i3d = self.bundle.i3d
        names = self._names
        for name in names[names.index(layer) + 1:]:
            a = getattr(i3d, name)(a)
        feats = i3d.avg_pool(a).flatten(2).transpose(1, 2)  # [B, T', 1024]
        return self.bundle.classifier.logits(pad_features(feats))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> np.ndarray:
        """Pre-sigmoid p(TLE) scores ``[B]`` float64 of preprocessed inputs ``[B, 1, T, S, S]`` float32 in [-1, 1]
        (``sigmoid`` of them is p(TLE); logits do not saturate, so occlusion checks compare them)."""
        x = x.to(self.device, torch.float32)
        return self._head(self._trunk_until(x)).double().cpu().numpy()

    @torch.no_grad()
    def motion_occlusion(self, x: torch.Tensor, grid: int = 7) -> SaliencyMap:
        """The motion-occlusion map of one preprocessed window (see the module docstring).

        Args:
            x: ``[1, T, S, S]`` or ``[1, 1, T, S, S]`` float32 in [-1, 1] (the output of
                :func:`semiostream.dali_pipes.reference.preprocess`), T >= 9.
            grid: regions per side (7 = 32-pixel regions of a 224 input; at most the layer's 14).

        Returns:
            :class:`SaliencyMap` with ``cam`` ``[S, S]`` and ``drops`` ``[grid, grid]``.
        """
        t0 = time.perf_counter()
        if x.dim() == 4:
            x = x[None]
        if x.dim() != 5 or x.shape[0] != 1 or x.shape[1] != 1:
            raise ValueError(f"takes one window [1, T, S, S] or [1, 1, T, S, S]; got {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        size = int(x.shape[-1])
        a = self._trunk_until(x)  # [1, 832, T4, n, n], n = 14 for a 224 input
        n = int(a.shape[-1])
        if not 1 <= grid <= n:
            raise ValueError(f"grid={grid} must be between 1 and {n} (the {LAYER} grid)")
        valid = region_valid(x[0, 0], grid)  # regions mostly holding image, not padding
        still = a.mean(dim=2, keepdim=True).expand_as(a)
        cells = [(r, c) for r in range(grid) for c in range(grid) if valid[r, c]]
        logits = [self._head(a)]
        for k in range(0, len(cells), 8):  # batches of 8 copies bound the memory
            copies = []
            for r, c in cells[k:k + 8]:
                hidden = a.clone()
                sl = (..., slice(r * n // grid, (r + 1) * n // grid), slice(c * n // grid, (c + 1) * n // grid))
                hidden[sl] = still[sl]
                copies.append(hidden)
            logits.append(self._head(torch.cat(copies)))
        z = torch.cat(logits).double().cpu().numpy()
        tle = bool(z[0] >= 0.0)
        sign = 1.0 if tle else -1.0
        drops = np.full((grid, grid), np.nan)
        for (r, c), v in zip(cells, sign * (z[0] - z[1:]), strict=True):
            drops[r, c] = v
        support = np.clip(np.nan_to_num(drops, nan=0.0), 0.0, None)
        peak = support.max()
        support = support / peak if peak > 0 else support
        edges = [r * size // grid for r in range(grid + 1)]
        cam = np.repeat(np.repeat(support, np.diff(edges), axis=0), np.diff(edges), axis=1)
        return SaliencyMap(cam.astype(np.float32), drops, float(1.0 / (1.0 + np.exp(-z[0]))),
                           self.labels[1] if tle else self.labels[0], time.perf_counter() - t0)


def region_valid(x: torch.Tensor, grid: int, pad_value: float = -1.0) -> np.ndarray:
    """``[grid, grid]`` bool: regions of the ``[T, S, S]`` input of which at least 3/4 holds image (the
    centre padding is ``pad_value`` in every frame)."""
    size = int(x.shape[-1])
    image = (x != pad_value).any(dim=0).cpu().numpy()  # [S, S]
    edges = [r * size // grid for r in range(grid + 1)]
    return np.array([[image[edges[r]:edges[r + 1], edges[c]:edges[c + 1]].mean() >= 0.75 for c in range(grid)]
                     for r in range(grid)])


def occlusion_drop(models: SaliencyModels, x: torch.Tensor, cells_to_hide: list[tuple[int, int]],
                   cells: int = 4) -> np.ndarray:
    """How much hiding the movement in one grid cell lowers the window's decision score, for each cell given.

    A cell is hidden by replacing its pixels in every frame with their mean over the window's frames: the
    still picture stays, the movement there is gone (what the map claims to explain is movement).

    This is the independent check of :meth:`SaliencyModels.motion_occlusion`: the movement is removed from the
    input pixels and the whole model runs again (one full I3D pass per cell: slow, for tests and audits).

    Args:
        x: ``[1, T, S, S]`` float32 in [-1, 1] preprocessed window.
        cells_to_hide: ``(row, col)`` cells of a ``cells x cells`` grid over the ``S x S`` input (the same
            region boundaries as :meth:`SaliencyModels.motion_occlusion` with ``grid=cells``).

    Returns:
        ``[len(cells_to_hide)]`` float64: ``s(x) - s(x with the cell hidden)``, ``s`` = logit of p(TLE) signed
        toward the window's own decision (positive: the cell's movement supported the decision).
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one preprocessed window [1, T, S, S]; got {tuple(x.shape)}")
    edges = [r * x.shape[-1] // cells for r in range(cells + 1)]
    still = x.mean(dim=1, keepdim=True).expand_as(x)
    batch = [x]
    for r, c in cells_to_hide:
        hidden = x.clone()
        sl = (..., slice(edges[r], edges[r + 1]), slice(edges[c], edges[c + 1]))
        hidden[sl] = still[sl]
        batch.append(hidden)
    logits = np.concatenate([models.logits(b[None].float()) for b in batch])
    sign = 1.0 if logits[0] >= 0 else -1.0
    return sign * (logits[0] - logits[1:])
