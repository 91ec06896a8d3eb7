"""The crop: person + bed box, expanded, clamped; detectors behind one interface.

The paper's rule (``crop_rule="paper"``, the default): on the first frame take the best
(highest-scoring) person box and the best bed box, their union, expanded by ``crop_expand`` (20%) of its
width/height on every side, clamped to the frame. If either box is missing the video is used raw,
uncropped (the full frame), as the paper did for the four videos whose detection failed its quality
check (bed not detected, or only a physician detected). ``crop_rule="single-box"`` instead crops to the
one box found (expanded the same way) and falls back to the full frame only when both are missing.
Every :class:`RoiChoice` says which rule applied (:attr:`RoiChoice.rule`: ``"person+bed"``,
``"person only"``, ``"bed only"`` or ``"full frame"``), and a fallback is logged as a warning.

Detectors (chosen by config via :func:`make_detector`):

* ``"yolox"``: an ONNX COCO detector with YOLOX output (:mod:`.detect_yolox`), e.g. YOLOX-Nano;
* ``"maskrcnn"``: torchvision Mask R-CNN R50-FPN with COCO weights from a file (:mod:`.detect_maskrcnn`);
* ``"static"``: a fixed ROI per camera from config (used as is: no expansion);
* ``"full"``: no detection, the full frame.

Detection runs once per video / stream start; :class:`RoiTracker` re-detects every ``redetect_every``
frames for live beds when configured.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

PERSON, BED = "person", "bed"
CROP_RULES = ("paper", "single-box")


@dataclass(frozen=True)
class Roi:
    """A crop ``(x0, y0, x1, y1)`` in integer pixels; ``x1``/``y1`` exclusive (``frame[y0:y1, x0:x1]``)."""

    x0: int
    y0: int
    x1: int
    y1: int

    def __post_init__(self) -> None:
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError(f"ROI {self.as_tuple()} is empty: need x1 > x0 and y1 > y0")

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    def __iter__(self):
        return iter(self.as_tuple())

    @classmethod
    def from_box(cls, box: Sequence[float]) -> Roi:
        """Smallest integer ROI containing a float box ``(x0, y0, x1, y1)``."""
        x0, y0, x1, y1 = (float(v) for v in box)
        return cls(
            math.floor(x0),
            math.floor(y0),
            max(math.ceil(x1), math.floor(x0) + 1),
            max(math.ceil(y1), math.floor(y0) + 1),
        )

    @classmethod
    def full(cls, width: int, height: int) -> Roi:
        return cls(0, 0, int(width), int(height))

    def expand(self, frac: float, width: int, height: int) -> Roi:
        """Grow by ``frac`` of the box width (height) on the left and right (top and bottom), clamped."""
        dx, dy = frac * self.width, frac * self.height
        return Roi.from_box((self.x0 - dx, self.y0 - dy, self.x1 + dx, self.y1 + dy)).clamp(width, height)

    def clamp(self, width: int, height: int) -> Roi:
        """Intersection with the ``width x height`` frame; raises if they do not overlap."""
        x0, y0 = max(self.x0, 0), max(self.y0, 0)
        x1, y1 = min(self.x1, int(width)), min(self.y1, int(height))
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"ROI {self.as_tuple()} lies outside the {width}x{height} frame")
        return Roi(x0, y0, x1, y1)

    def union(self, other: Roi) -> Roi:
        return Roi(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))


def as_roi(roi: Roi | Sequence[int] | None, width: int, height: int) -> Roi:
    """Validate a user/config ROI against a ``width x height`` frame (None = the full frame).

    Raises:
        ValueError: the ROI is empty or not entirely inside the frame
            (``ROI (600, 0, 700, 424) lies outside the 512x424 frame``).
    """
    if roi is None:
        return Roi.full(width, height)
    r = roi if isinstance(roi, Roi) else Roi(*(int(v) for v in roi))
    if r.x0 < 0 or r.y0 < 0 or r.x1 > width or r.y1 > height:
        raise ValueError(
            f"ROI {r.as_tuple()} lies outside the {width}x{height} frame; "
            "give (x0, y0, x1, y1) with 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height"
        )
    return r


@dataclass(frozen=True)
class Detection:
    """One detected object: float box ``(x0, y0, x1, y1)`` in frame pixels, score in [0, 1], label."""

    box: tuple[float, float, float, float]
    score: float
    label: str


@dataclass(frozen=True)
class RoiChoice:
    """The chosen crop and why: the person and bed boxes it came from, or ``fallback`` = full frame.

    ``rule`` names what was applied: ``"person+bed"`` (the paper's merged box), ``"person only"`` /
    ``"bed only"`` (single-box crop), ``"full frame"`` (detection fallback or no detection), or
    ``"static"`` (a configured ROI).
    """

    roi: Roi
    person: Detection | None = None
    bed: Detection | None = None
    fallback: bool = False
    message: str = ""
    rule: str = "full frame"


def _check_crop_rule(crop_rule: str) -> str:
    if crop_rule not in CROP_RULES:
        raise ValueError(f"unknown crop rule {crop_rule!r}; use one of {', '.join(CROP_RULES)}")
    return crop_rule


def select_roi(
    detections: Sequence[Detection], width: int, height: int, expand: float = 0.2, min_score: float = 0.0,
    crop_rule: str = "paper",
) -> RoiChoice:
    """The crop from one frame's detections (see the module docstring for the two rules).

    Args:
        detections: people and beds (other labels are ignored) in frame pixels.
        width, height: the frame size.
        expand: growth of the merged (or single) box on every side, as a fraction of its size.
        min_score: detections below this score are ignored.
        crop_rule: ``"paper"``: union of the best person and best bed box, the full frame if either
            is missing; ``"single-box"``: the union when both exist, else the one box found.

    Returns:
        :class:`RoiChoice`; ``fallback=True`` (full frame, with a message also logged as a warning)
        when the rule found no usable crop.
    """
    _check_crop_rule(crop_rule)

    def best(label: str) -> Detection | None:
        cands = [d for d in detections if d.label == label and d.score >= min_score]
        return max(cands, key=lambda d: d.score) if cands else None

    def inside(d: Detection | None) -> Roi | None:
        if d is None:
            return None
        try:
            return Roi.from_box(d.box).clamp(width, height)
        except ValueError:
            log.warning("ignoring %s box %s outside the %dx%d frame", d.label, d.box, width, height)
            return None

    person, bed = best(PERSON), best(BED)
    p_box, b_box = inside(person), inside(bed)
    person, bed = (person if p_box else None), (bed if b_box else None)
    if p_box is not None and b_box is not None:
        return RoiChoice(p_box.union(b_box).expand(expand, width, height), person=person, bed=bed,
                         rule="person+bed")
    found = "a person but no bed" if p_box else "a bed but no person" if b_box else "no person or bed"
    if crop_rule == "single-box" and (p_box or b_box):
        one = p_box or b_box
        return RoiChoice(one.expand(expand, width, height), person=person, bed=bed,
                         rule="person only" if p_box else "bed only")
    msg = (
        f"found {found} (score >= {min_score:g}); using the full {width}x{height} frame uncropped "
        f"(crop rule {crop_rule!r}). Check the camera view, or configure a static ROI for this camera"
    )
    log.warning(msg)
    return RoiChoice(Roi.full(width, height), person=person, bed=bed, fallback=True, message=msg)


class RoiDetector:
    """Interface: ``detect(frame)`` -> detections; ``locate(frame)`` -> the crop by the paper's rule.

    Args:
        spec: the bundle's ``PreprocessSpec`` (intensity window for 16-bit frames, ``crop_expand``).
        min_score: detections below this score are ignored.
        crop_rule: ``"paper"`` (default) or ``"single-box"``; see :func:`select_roi`.
    """

    name = "detector"

    def __init__(self, spec=None, min_score: float = 0.3, crop_rule: str = "paper") -> None:
        from semiostream.models.bundle import PreprocessSpec

        self.spec = spec or PreprocessSpec()
        self.min_score = float(min_score)
        self.crop_rule = _check_crop_rule(crop_rule)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """People and beds in one ``[H, W]`` uint16 (or uint8-valued) frame, boxes in frame pixels."""
        raise NotImplementedError

    def locate(self, frame: np.ndarray) -> RoiChoice:
        """The crop for a stream whose first frame is ``frame`` (``[H, W]``)."""
        h, w = frame.shape[-2:]
        return select_roi(self.detect(frame), w, h, self.spec.crop_expand, self.min_score, self.crop_rule)


class StaticRoi(RoiDetector):
    """A fixed crop per camera from config, used as is (no detection, no expansion)."""

    name = "static"

    def __init__(self, roi: Roi | Sequence[int], spec=None) -> None:
        super().__init__(spec)
        self.roi = roi if isinstance(roi, Roi) else Roi(*(int(v) for v in roi))

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return []

    def locate(self, frame: np.ndarray) -> RoiChoice:
        h, w = frame.shape[-2:]
        return RoiChoice(as_roi(self.roi, w, h), rule="static")


class FullFrame(RoiDetector):
    """No detection: always the full frame (stated, not a silent fallback)."""

    name = "full"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return []

    def locate(self, frame: np.ndarray) -> RoiChoice:
        h, w = frame.shape[-2:]
        return RoiChoice(Roi.full(w, h), message="crop disabled: full frame")


DETECTORS = ("yolox", "maskrcnn", "static", "full")


def make_detector(
    kind: str,
    *,
    spec=None,
    weights: str | os.PathLike | None = None,
    roi: Sequence[int] | None = None,
    min_score: float = 0.3,
    device: str = "cpu",
    crop_rule: str = "paper",
) -> RoiDetector:
    """Build the configured detector.

    Args:
        kind: ``"yolox"`` (``weights`` = the .onnx file), ``"maskrcnn"`` (``weights`` = a torchvision
            COCO state-dict file, or None for torchvision's cache), ``"static"`` (``roi`` = the crop) or
            ``"full"``.
        spec: the bundle's ``PreprocessSpec``.
        min_score: minimum detection score.
        device: ``"cpu"`` or ``"cuda"`` (Mask R-CNN; YOLOX uses onnxruntime's CUDA provider if present).
        crop_rule: ``"paper"`` (person+bed box, else the full frame) or ``"single-box"``.
    """
    _check_crop_rule(crop_rule)
    if kind == "yolox":
        from .detect_yolox import YoloxDetector

        if weights is None:
            raise ValueError("the yolox detector needs weights=<path to a YOLOX .onnx file>")
        det: RoiDetector = YoloxDetector(weights, spec=spec, min_score=min_score, device=device)
        det.crop_rule = crop_rule
        return det
    if kind == "maskrcnn":
        from .detect_maskrcnn import MaskRcnnDetector

        det = MaskRcnnDetector(weights, spec=spec, min_score=min_score, device=device)
        det.crop_rule = crop_rule
        return det
    if kind == "static":
        if roi is None:
            raise ValueError("the static detector needs roi=(x0, y0, x1, y1) for this camera")
        return StaticRoi(roi, spec=spec)
    if kind == "full":
        return FullFrame(spec)
    raise ValueError(f"unknown ROI detector {kind!r}; use one of {', '.join(DETECTORS)}")


class RoiTracker:
    """The crop of one stream: detected on its first frame, then re-detected every ``redetect_every``
    frames (0 = never; set it for live beds where the patient or camera may move)."""

    def __init__(self, detector: RoiDetector, redetect_every: int = 0) -> None:
        self.detector = detector
        self.redetect_every = int(redetect_every)
        self.choice: RoiChoice | None = None
        self._at = -1
        self.detections_run = 0

    def roi_for(self, frame: np.ndarray, index: int) -> Roi:
        """The ROI for a window whose first frame (``[H, W]``) has stream index ``index``."""
        due = self.choice is None or (self.redetect_every > 0 and index - self._at >= self.redetect_every)
        if due or self.choice.roi.x1 > frame.shape[-1] or self.choice.roi.y1 > frame.shape[-2]:
            self.choice = self.detector.locate(frame)
            self._at = index
            self.detections_run += 1
        return self.choice.roi
