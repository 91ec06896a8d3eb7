"""The crop: person + bed box, expanded, clamped; detectors behind one interface.

The paper's rule (``crop_rule="paper"``, the default): on the first frame take the best
(highest-scoring) person box and the best bed box, their union, expanded by ``crop_expand`` (20%) of its
width/height on every side, clamped to the frame. If either box is missing the video is used raw,
uncropped (the full frame), as the paper did for the four videos whose detection failed its quality
check (bed not detected, or only a physician detected). ``crop_rule="single-box"`` instead crops to the
one box found (expanded the same way) and falls back to the full frame only when both are missing.
Every :class:`RoiChoice` says which rule applied (:attr:`RoiChoice.rule`: ``"person+bed"``,
``"person only"``, ``"bed only"`` or ``"full frame"``), and a fallback is logged as a warning.

Detectors (chosen by config via :func:`semiostream.detectors.registry.make_detector`):

* ``"yolox"``: an ONNX COCO detector with YOLOX output (:mod:`.yolox`), e.g. YOLOX-Nano;
* ``"maskrcnn"``: torchvision Mask R-CNN R50-FPN with COCO weights from a file (:mod:`.maskrcnn`);
* ``"static"``: a fixed ROI per camera from config (used as is: no expansion);
* ``"full"``: no detection, the full frame.

Detection runs once per video / stream start; :class:`RoiTracker` re-detects every ``redetect_every``
frames for live beds when configured.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from semiostream.core.detection import Detection
from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.core.roi import Roi, as_roi

log = logging.getLogger(__name__)

PERSON, BED = "person", "bed"
CROP_RULES = ("paper", "single-box")


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


def check_crop_rule(crop_rule: str) -> str:
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
    check_crop_rule(crop_rule)

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
        self.spec = spec or PreprocessSpec()
        self.min_score = float(min_score)
        self.crop_rule = check_crop_rule(crop_rule)

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
