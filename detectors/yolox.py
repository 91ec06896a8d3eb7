"""ROI detector: an ONNX COCO detector with YOLOX outputs (e.g. YOLOX-Nano), run with onnxruntime.

Pre/post-processing follow YOLOX: the frame (16-bit IR -> 8-bit through the spec's intensity window,
gray -> 3 identical channels) is letterboxed into the ``S x S`` input (resize by ``r = min(S/H, S/W)``,
bilinear, placed top-left, padded with 114), values 0..255 without mean/std. The output
``[1, N, 5 + 80]`` rows ``(cx, cy, w, h, obj, cls_0..79)`` are decoded on grids of strides 8, 16, 32:
``xy = (xy + grid) * stride``, ``wh = exp(wh) * stride``; score = ``obj * cls``. We keep COCO ``person``
(class 0) and ``bed`` (class 59), boxes mapped back to frame pixels (divided by ``r``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from semiostream.dali_pipes.intensity import to_uint8

from .base import BED, PERSON, Detection, RoiDetector

COCO_PERSON, COCO_BED = 0, 59
STRIDES = (8, 16, 32)
PAD_VALUE = 114


def letterbox(gray: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """``[H, W]`` uint8 -> ``([1, 3, size, size]`` float32 0..255, scale ``r``) as YOLOX's preproc."""
    h, w = gray.shape
    r = min(size / h, size / w)
    nh, nw = max(1, int(h * r)), max(1, int(w * r))
    x = torch.from_numpy(np.ascontiguousarray(gray)).float()[None, None]
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
    out = torch.full((1, 3, size, size), float(PAD_VALUE))
    out[:, :, :nh, :nw] = x.round().clamp(0, 255)
    return out.numpy(), r


def decode(raw: np.ndarray, size: int) -> np.ndarray:
    """YOLOX grid+stride decoding: ``[N, 85]`` raw rows -> ``[N, 85]`` with boxes in input pixels."""
    grids, strides = [], []
    for s in STRIDES:
        g = size // s
        yv, xv = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        grids.append(np.stack((xv, yv), -1).reshape(-1, 2))
        strides.append(np.full((g * g, 1), s))
    grid, stride = np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)
    if grid.shape[0] != raw.shape[0]:
        raise ValueError(f"detector output has {raw.shape[0]} rows; YOLOX at {size}x{size} gives {grid.shape[0]}")
    out = raw.astype(np.float32).copy()
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride
    return out


class YoloxDetector(RoiDetector):
    """Person and bed boxes from a YOLOX ONNX model.

    Args:
        weights: the ``.onnx`` file (e.g. ``yolox_nano.onnx``, 416x416 input).
        spec: the bundle's ``PreprocessSpec`` (16 -> 8-bit window, ``crop_expand``).
        min_score: minimum ``obj * cls`` score.
        device: ``"cuda"`` uses onnxruntime's CUDA provider when available; else the CPU.
    """

    name = "yolox"

    def __init__(self, weights: str | os.PathLike, spec=None, min_score: float = 0.3, device: str = "cpu"):
        super().__init__(spec, min_score)
        import onnxruntime as ort

        from semiostream.core.errors import UserError

        path = Path(weights)
        if not path.is_file():
            raise UserError(
                f"YOLOX model {path} not found; pass the path of a YOLOX .onnx file "
                "(e.g. yolox_nano.onnx from the YOLOX releases)"
            )
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise UserError(f"{path} is not a loadable ONNX model ({e})") from e
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        if len(shape) != 4 or not isinstance(shape[2], int) or shape[2] != shape[3]:
            raise UserError(f"{path}: expected a square [1, 3, S, S] YOLOX input, got {shape}")
        self.size = int(shape[2])

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """People and beds in one ``[H, W]`` frame (uint8, or uint16 windowed by the spec)."""
        gray = frame if frame.dtype == np.uint8 else to_uint8(frame, self.spec)
        x, r = letterbox(gray, self.size)
        (raw,) = self.session.run(None, {self.input_name: x})
        rows = decode(raw[0], self.size)
        h, w = gray.shape
        dets = []
        for cls, label in ((COCO_PERSON, PERSON), (COCO_BED, BED)):
            scores = rows[:, 4] * rows[:, 5 + cls]
            for i in np.argsort(-scores)[:5]:  # the few best per class are enough for the rule
                if scores[i] < self.min_score:
                    break
                cx, cy, bw, bh = rows[i, :4] / r
                box = (max(0.0, cx - bw / 2), max(0.0, cy - bh / 2), min(w, cx + bw / 2), min(h, cy + bh / 2))
                dets.append(Detection(tuple(float(v) for v in box), float(scores[i]), label))
        return dets
