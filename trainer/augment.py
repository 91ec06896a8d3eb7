"""IR-appropriate augmentation of training windows for I3D fine-tuning (:mod:`.finetune`).

16-bit IR has no colour, so there is no colour jitter. A window changes only in ways a bed camera's
picture changes between recordings:

* **crop jitter**: each edge of the crop (the seizure's person(+bed) ROI, or the full frame without one)
  moves by up to ``crop`` x the box's width (height), staying inside the frame;
* **temporal jitter**: the window moves along the recording by up to ``time`` x its length, staying
  inside the seizure segment;
* **horizontal flip** with probability ``flip`` (a bed seen mirrored);
* **intensity gain and offset** on the normalised data, ``z' = g z + o`` (``g`` uniform in ``gain``,
  ``o`` uniform in ``[-offset, offset]``), applied exactly by moving the raw intensity window ``(lo, hi)``
  (``lo' = lo - o (hi - lo) / g``, ``hi' = lo' + (hi - lo) / g``);
* **sensor noise**: Gaussian, ``noise`` x ``(hi - lo)`` raw units per pixel, added to the 16-bit data
  before the intensity window clips it.

Everything else is the bundle's own preprocessing (:func:`semiostream.dali_pipes.reference.preprocess`),
so an unaugmented window is exactly what the Scorer feeds the I3D. The draw of one window is a pure
function of a numpy ``Generator`` (:meth:`Augment.draw`): a run that seeds it per (epoch, position)
draws the same parameters again after a resume.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: a jittered crop never gets smaller than this many pixels a side (nor than half the original box)
MIN_CROP = 32


@dataclass(frozen=True)
class Augment:
    """Augmentation magnitudes (see the module docstring); :meth:`off` is no augmentation.

    Attributes:
        crop: largest move of a crop edge, as a fraction of the box's width / height.
        time: largest temporal shift, as a fraction of the window's length.
        flip: probability of a horizontal flip.
        gain: range of the intensity gain on the normalised data.
        offset: largest intensity offset on the normalised data ([0, 1] scale).
        noise: Gaussian noise standard deviation, as a fraction of the raw intensity window ``hi - lo``.
    """

    crop: float = 0.1
    time: float = 0.25
    flip: float = 0.5
    gain: tuple[float, float] = (0.9, 1.1)
    offset: float = 0.05
    noise: float = 0.01

    def __post_init__(self) -> None:
        problems = []
        for name in ("crop", "time", "offset", "noise"):
            v = getattr(self, name)
            if not 0 <= v <= 0.5:
                problems.append(f"{name}={v} must be in [0, 0.5]")
        if not 0 <= self.flip <= 1:
            problems.append(f"flip={self.flip} is a probability in [0, 1]")
        g0, g1 = self.gain
        if not 0 < g0 <= g1 <= 4:
            problems.append(f"gain={self.gain} must satisfy 0 < lo <= hi <= 4")
        if problems:
            raise ValueError("invalid Augment: " + "; ".join(problems))

    @classmethod
    def off(cls) -> Augment:
        """No augmentation: every window exactly as the Scorer preprocesses it."""
        return cls(crop=0.0, time=0.0, flip=0.0, gain=(1.0, 1.0), offset=0.0, noise=0.0)

    @property
    def enabled(self) -> bool:
        return self != Augment.off()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["gain"] = list(self.gain)
        return d

    def draw(self, rng: np.random.Generator) -> Draw:
        """The parameters of one window, from ``rng`` (always the same number of draws)."""
        edges = rng.uniform(-1.0, 1.0, 4)
        shift, u_flip, g, o = rng.uniform(-1.0, 1.0), rng.uniform(), rng.uniform(*self.gain), rng.uniform(-1, 1)
        return Draw(edges=tuple(float(e * self.crop) for e in edges), shift=float(shift * self.time),
                    flip=bool(u_flip < self.flip), gain=float(g), offset=float(o * self.offset),
                    noise=self.noise, noise_seed=int(rng.integers(0, 2**63 - 1)))


@dataclass(frozen=True)
class Draw:
    """One window's augmentation: crop edge moves (fractions of the box), temporal shift (fraction of the
    window), flip, gain, offset, noise level and the seed of its noise."""

    edges: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    shift: float = 0.0
    flip: bool = False
    gain: float = 1.0
    offset: float = 0.0
    noise: float = 0.0
    noise_seed: int = 0


def jitter_roi(roi: tuple[int, int, int, int] | None, width: int, height: int,
               edges: tuple[float, float, float, float]) -> tuple[int, int, int, int] | None:
    """``roi`` (None = the full ``width`` x ``height`` frame) with each edge moved by its fraction of the
    box size, clamped to the frame; the original when the result would be smaller than :data:`MIN_CROP`
    (or half the box) a side. Returns None only for None with no move."""
    if roi is None and not any(edges):
        return None
    x0, y0, x1, y1 = roi if roi is not None else (0, 0, width, height)
    w, h = x1 - x0, y1 - y0
    nx0 = min(max(round(x0 + edges[0] * w), 0), width)
    ny0 = min(max(round(y0 + edges[1] * h), 0), height)
    nx1 = min(max(round(x1 + edges[2] * w), 0), width)
    ny1 = min(max(round(y1 + edges[3] * h), 0), height)
    if nx1 - nx0 < max(MIN_CROP, w // 2) or ny1 - ny0 < max(MIN_CROP, h // 2):
        return (x0, y0, x1, y1)
    return (nx0, ny0, nx1, ny1)


def shift_range(start: int, stop: int, lo: int, hi: int, shift: float) -> tuple[int, int]:
    """The window ``[start, stop)`` moved by ``shift`` x its length, kept inside ``[lo, hi)``."""
    d = round(shift * (stop - start))
    d = min(max(d, lo - start), hi - stop)
    return start + d, stop + d


def window_input(frames: np.ndarray, roi: tuple[int, int, int, int] | None, spec: Any,
                 intensity: tuple[float, float] | None, draw: Draw | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """One window as the I3D input, augmented by ``draw`` (None = exactly the Scorer's preprocessing).

    Args:
        frames: ``[T, H, W]`` uint16 raw window (already shifted in time by the caller).
        roi: the seizure's crop ``(x0, y0, x1, y1)`` or None (full frame).
        spec: the bundle's :class:`PreprocessSpec`.
        intensity: the raw ``(lo, hi)`` held for the seizure, or None (computed by the spec from this
            window, inside the jittered crop).
        draw: the window's augmentation.
        device: where the preprocessing runs.

    Returns:
        ``[1, T, size, size]`` float32 in [-1, 1] on ``device``.
    """
    from semiostream.dali_pipes.intensity import intensity_window
    from semiostream.dali_pipes.reference import preprocess

    t, h, w = frames.shape
    if draw is not None:
        roi = jitter_roi(roi, w, h, draw.edges)
    lo, hi = intensity if intensity is not None else intensity_window(frames, roi, spec)
    x = torch.from_numpy(np.asarray(frames, dtype=np.float32)).to(device)  # uint16 -> float32 is exact
    if draw is None:
        return preprocess(x, roi, spec, window=(lo, hi))
    span = (hi - lo) / draw.gain
    lo2 = lo - draw.offset * span
    if draw.noise > 0:
        gen = torch.Generator(device=x.device).manual_seed(draw.noise_seed)
        x += torch.randn(x.shape, generator=gen, device=x.device) * float(draw.noise * (hi - lo))
    out = preprocess(x, roi, spec, window=(lo2, lo2 + span))
    return out.flip(-1) if draw.flip else out
