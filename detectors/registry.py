"""The ROI detectors by name: :data:`DETECTORS` and :func:`make_detector` (the one place that knows them all).

A detector's module is imported only when one is built, so importing this module stays light.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .base import FullFrame, RoiDetector, StaticRoi, check_crop_rule

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
    check_crop_rule(crop_rule)
    if kind == "yolox":
        from .yolox import YoloxDetector

        if weights is None:
            raise ValueError("the yolox detector needs weights=<path to a YOLOX .onnx file>")
        det: RoiDetector = YoloxDetector(weights, spec=spec, min_score=min_score, device=device)
        det.crop_rule = crop_rule
        return det
    if kind == "maskrcnn":
        from .maskrcnn import MaskRcnnDetector

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
