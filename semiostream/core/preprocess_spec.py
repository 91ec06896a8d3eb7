"""The preprocessing contract: :class:`PreprocessSpec`, how a uint16 IR window becomes the I3D input.

A model bundle records one (``bundle.json`` ``preprocess``, :mod:`semiostream.models.bundle`); the DALI graphs,
the torch reference, the detectors and the trainer read its constants from it and never re-derive them.
The 16-bit -> 8-bit step for 8-bit sources is
:func:`semiostream.dali_pipes.intensity.spec_for_bit_depth`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

#: the frame rate of a bundle's windows when its spec names none (the paper's 30 fps)
DEFAULT_FPS = 30.0


class NewerSpecError(ValueError):
    """A spec with fields this version does not know: written by a newer semiostream."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How a uint16 IR window becomes the I3D input ``[1, T, size, size]`` float32 in [-1, 1].

    Defaults are the paper's (Karácsony et al. 2020), except the 16->8-bit intensity step, which the
    paper does not specify; ours is an explicit intensity window recorded here.

    Attributes:
        window: frames per window (60 = 2 s at 30 fps).
        fps: the frame rate the model's windows are made at (frames/s): sources at another rate are
            resampled to it (:mod:`semiostream.sources.rate`), so a window always spans
            ``window / fps`` seconds. Stored only when it is not the default 30 (bundle ids of 30 fps bundles
            are unchanged).
        min_frames: shortest window kept (9 = shortest input giving one I3D feature step).
        intensity_mode: ``"fixed"`` maps raw ``[intensity_lo, intensity_hi]`` to [0, 1];
            ``"percentile"`` uses percentiles of the first frames inside the crop instead.
        intensity_scope: over which frames a ``"percentile"`` window is computed. ``"video"`` (default,
            like the paper's whole-video 16->8-bit conversion): once per video / seizure segment / live
            event, from its first ``percentile_frames`` frames, then held for every window of it
            (:class:`semiostream.dali_pipes.event_intensity.EventIntensity`); ``"window"``: recomputed
            from each 2-s window's own first frames (what bundles without this field were trained with).
        intensity_lo, intensity_hi: raw sensor units for ``"fixed"`` (values outside are clipped).
        percentile_lo, percentile_hi: percentiles in [0, 100] for ``"percentile"``.
        percentile_frames: how many leading frames (of the window or of the video, see
            ``intensity_scope``) the percentiles are taken over.
        crop_expand: fraction by which the person+bed box grows on every side (0.2 = +20%).
        size: side of the square model input (224).
        pad_value: value of the centre-padding border, in the [-1, 1] output scale (-1).
    """

    window: int = 60
    fps: float = DEFAULT_FPS
    min_frames: int = 9
    intensity_mode: Literal["fixed", "percentile"] = "percentile"
    intensity_scope: Literal["video", "window"] = "video"
    intensity_lo: float = 0.0
    intensity_hi: float = 65535.0
    percentile_lo: float = 1.0
    percentile_hi: float = 99.0
    percentile_frames: int = 8
    crop_expand: float = 0.2
    size: int = 224
    pad_value: float = -1.0

    def __post_init__(self) -> None:
        problems = []
        if self.min_frames < 9:
            problems.append(f"min_frames={self.min_frames} is below 9, the shortest input I3D accepts")
        if not (isinstance(self.fps, int | float) and 1 <= self.fps <= 1000):
            problems.append(f"fps={self.fps} must be a frame rate between 1 and 1000 frames/s")
        if self.window < self.min_frames:
            problems.append(f"window={self.window} is shorter than min_frames={self.min_frames}")
        if self.intensity_mode not in ("fixed", "percentile"):
            problems.append(f"intensity_mode={self.intensity_mode!r}; use 'fixed' or 'percentile'")
        if self.intensity_scope not in ("video", "window"):
            problems.append(f"intensity_scope={self.intensity_scope!r}; use 'video' or 'window'")
        if self.intensity_mode == "fixed" and not self.intensity_hi > self.intensity_lo:
            problems.append(
                f"intensity_hi={self.intensity_hi} must exceed intensity_lo={self.intensity_lo}"
            )
        if not 0 <= self.percentile_lo < self.percentile_hi <= 100:
            problems.append(
                f"percentiles ({self.percentile_lo}, {self.percentile_hi}) must satisfy 0 <= lo < hi <= 100"
            )
        if self.percentile_frames < 1:
            problems.append(f"percentile_frames={self.percentile_frames} must be >= 1")
        if not 0 <= self.crop_expand <= 2:
            problems.append(f"crop_expand={self.crop_expand} should be a fraction such as 0.2")
        if self.size < 32:
            problems.append(f"size={self.size} is too small for I3D; the paper uses 224")
        if problems:
            raise ValueError("invalid PreprocessSpec: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["fps"] == DEFAULT_FPS:  # as written before the field existed: the ids of 30 fps bundles stay
            del d["fps"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise NewerSpecError(
                f"preprocess spec has unknown fields {unknown}; this bundle was written by a newer "
                "semiostream; upgrade semiostream to read it"
            )
        d = dict(d)
        d.setdefault("intensity_scope", "window")  # written before the field existed: per-window windows
        return cls(**d)
