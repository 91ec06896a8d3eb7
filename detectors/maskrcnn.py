"""ROI detector: torchvision Mask R-CNN (ResNet-50 FPN, COCO), as in the paper.

Weights are never downloaded here: pass a state-dict file (``torch.load(weights_only=True)``), or leave
it out to use the file torchvision keeps in its cache (``$TORCH_HOME/hub/checkpoints/
maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``, present if torchvision downloaded it before). A missing file
is a :class:`~semiostream.core.errors.UserError` that says how to get it.

The 16-bit frame goes through the spec's intensity window to [0, 1] and is repeated to 3 channels;
torchvision's transform normalises and resizes internally. Only the boxes are used (COCO category ids
as torchvision numbers them: person = 1, bed = 65).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from semiostream.dali_pipes.intensity import to_uint8

from .base import BED, PERSON, Detection, RoiDetector

TV_PERSON, TV_BED = 1, 65
WEIGHTS_FILE = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
WEIGHTS_URL = "https://download.pytorch.org/models/" + WEIGHTS_FILE


def cached_weights_path() -> Path:
    """Where torchvision caches the COCO Mask R-CNN weights (may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def resolve_weights(weights: str | os.PathLike | None) -> Path:
    """The weight file to load, or a UserError saying how to get one (never downloads)."""
    from semiostream.core.errors import UserError

    path = Path(weights) if weights is not None else cached_weights_path()
    if not path.is_file():
        where = f"{path} does not exist" if weights is not None else f"no cached weights at {path}"
        raise UserError(
            f"Mask R-CNN weights not found: {where}. semiostream does not download them. On a machine with "
            f"internet access, download {WEIGHTS_URL} and pass the file (--detector-weights), or place it in "
            "torchvision's cache; or use the YOLOX ONNX detector or a static ROI instead."
        )
    return path


def detections_from_output(output: dict[str, torch.Tensor]) -> list[Detection]:
    """torchvision detection output (``boxes [N, 4]``, ``scores [N]``, ``labels [N]``) -> people and beds."""
    names = {TV_PERSON: PERSON, TV_BED: BED}
    dets = []
    for box, score, label in zip(
        output["boxes"].tolist(), output["scores"].tolist(), output["labels"].tolist(), strict=True
    ):
        if int(label) in names:
            dets.append(Detection(tuple(float(v) for v in box), float(score), names[int(label)]))
    return dets


class MaskRcnnDetector(RoiDetector):
    """Person and bed boxes from torchvision's ``maskrcnn_resnet50_fpn`` with COCO weights from a file.

    Args:
        weights: state-dict file; None = torchvision's cache (see :func:`resolve_weights`).
        spec: the bundle's ``PreprocessSpec``. min_score: minimum score. device: ``"cpu"`` or ``"cuda"``.
    """

    name = "maskrcnn"

    def __init__(
        self, weights: str | os.PathLike | None = None, spec=None, min_score: float = 0.3, device: str = "cpu"
    ) -> None:
        super().__init__(spec, min_score)
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        from semiostream.core.errors import UserError

        path = resolve_weights(weights)
        model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # truncated file, not a torch file, or a pickle with code
            raise UserError(f"cannot load Mask R-CNN weights {path} ({e}); download the file again") from e
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys:
            raise UserError(
                f"{path} is not a torchvision maskrcnn_resnet50_fpn COCO state dict "
                f"(missing {result.missing_keys[:3]}...)"
            )
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)

    @torch.inference_mode()
    def detect(self, frame: np.ndarray) -> list[Detection]:
        """People and beds in one ``[H, W]`` frame (uint8, or uint16 windowed by the spec)."""
        gray = frame if frame.dtype == np.uint8 else to_uint8(frame, self.spec)
        x = torch.from_numpy(np.ascontiguousarray(gray)).to(self.device, torch.float32).div_(255.0)
        (out,) = self.model([x[None].expand(3, -1, -1)])
        return detections_from_output(out)
