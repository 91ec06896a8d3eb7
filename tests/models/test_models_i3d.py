"""I3D architecture: TF-SAME padding, feature steps, gray-stem folding, real Kinetics clip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semiostream.models.i3d import InceptionI3d, _same_pad, feature_steps
from semiostream.models.weights import load_i3d_checkpoint


def _tf_same(size: int, k: int, s: int) -> tuple[int, int]:
    # TensorFlow's documented rule: out = ceil(in / s); pad = max((out - 1) * s + k - in, 0)
    out = math.ceil(size / s)
    pad = max((out - 1) * s + k - size, 0)
    return pad // 2, pad - pad // 2


@pytest.mark.parametrize("k,s", [(7, 2), (3, 2), (2, 2), (3, 1), (1, 3)])
def test_same_padding_matches_tensorflow_rule(k, s):
    for size in range(1, 80):
        if k >= s:
            assert _same_pad(size, k, s) == _tf_same(size, k, s), (size, k, s)


def test_feature_steps_table():
    assert [feature_steps(t) for t in (60, 64, 16, 9, 79, 8, 1)] == [7, 7, 1, 1, 9, 0, 0]


@pytest.fixture(scope="module")
def rgb_model(kinetics_ckpt):
    return load_i3d_checkpoint(kinetics_ckpt, in_channels=3, num_classes=400)


@pytest.mark.parametrize("frames,steps", [(9, 1), (16, 1), (60, 7), (79, 9)])
def test_extract_features_shape(frames, steps):
    torch.manual_seed(0)
    model = InceptionI3d(in_channels=1).eval()
    with torch.no_grad():
        out = model.extract_features(torch.rand(1, 1, frames, 224, 224) * 2 - 1)
    assert out.shape == (1, steps, 1024)
    assert out.dtype == torch.float32
    assert bool((out >= 0).all())  # average of post-ReLU activations


def test_too_few_frames_is_a_clear_error():
    model = InceptionI3d(in_channels=1).eval()
    with pytest.raises(ValueError, match="at least 9 frames"):
        model.extract_features(torch.zeros(1, 1, 8, 224, 224))
    with pytest.raises(ValueError, match=r"\[B, 1, T, H, W\]"):
        model.extract_features(torch.zeros(1, 3, 16, 224, 224))


def test_gray_stem_equals_rgb_on_replicated_input(kinetics_ckpt, rgb_model):
    gray_model = load_i3d_checkpoint(kinetics_ckpt, in_channels=1)
    g = torch.Generator().manual_seed(1)
    gray = torch.rand(2, 1, 16, 224, 224, generator=g) * 2 - 1
    with torch.no_grad():
        f_rgb = rgb_model.extract_features(gray.expand(-1, 3, -1, -1, -1))
        f_gray = gray_model.extract_features(gray)
    assert f_rgb.shape == f_gray.shape == (2, 1, 1024)
    assert float(f_rgb.abs().max()) > 0.1  # non-trivial features
    assert float((f_rgb - f_gray).abs().max()) < 1e-4


def _kinetics_clip(path, frames=64) -> torch.Tensor:
    """Assets README preprocessing: shorter side 256 bilinear, centre crop 224, RGB in [-1, 1]."""
    import av

    rgb = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            rgb.append(f.to_ndarray(format="rgb24"))
            if len(rgb) == frames:
                break
    x = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    h, w = x.shape[-2:]
    scale = 256 / min(h, w)
    x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False)
    h, w = x.shape[-2:]
    top, left = (h - 224) // 2, (w - 224) // 2
    x = x[..., top:top + 224, left:left + 224] / 255 * 2 - 1
    return x.permute(1, 0, 2, 3)[None]  # [1, 3, T, 224, 224]


def test_real_kinetics_clip_is_arm_wrestling(rgb_model, get_asset):
    clip = _kinetics_clip(get_asset("mmaction2_demo.mp4"))
    labels = get_asset("kinetics400_labels.txt").read_text().splitlines()
    assert len(labels) == 400
    with torch.no_grad():
        logits = rgb_model(clip)  # [1, 7, 400]
    assert logits.shape == (1, 7, 400)
    probs = logits.mean(dim=1).softmax(-1)[0]
    top = int(probs.argmax())
    assert labels[top] == "arm wrestling"
    assert float(probs[top]) > 0.9
