"""Fixtures for tests/engines: a real bundle (Kinetics I3D + a seeded random classifier) and synthetic IR.

The classifier is untrained (random, seeded); its last layer is scaled up so that p(TLE) spreads over
(0, 1) instead of sitting at 0.5, which makes "identical decisions" a meaningful check. Parity tests do
not need a trained classifier: they compare backends on the same weights.
"""

from __future__ import annotations

import numpy as np
import pytest
from random_bundle import make_random_bundle

from semiostream.models.bundle import load_bundle


@pytest.fixture(scope="session")
def eng_bundle_dir(tmp_path_factory, kinetics_ckpt):
    return make_random_bundle(tmp_path_factory.getbasetemp() / "engines_test_bundle", kinetics_ckpt, 1234)


@pytest.fixture(scope="session")
def eng_bundle(eng_bundle_dir):
    return load_bundle(eng_bundle_dir)


@pytest.fixture(scope="session")
def eng_onnx(eng_bundle):
    from semiostream.trt_build.export import onnx_from_bundle

    return onnx_from_bundle(eng_bundle)


def synthetic_ir(frames: int, height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """``[T, H, W]`` uint16 IR-like clip: warm body on a cooler bed with sensor noise and jerky limb motion."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 2800 + 3.0 * xx + rng.normal(0, 15, size=(height, width))
    out = np.empty((frames, height, width), np.float32)
    for t in range(frames):
        cx = width * 0.5 + 12 * np.sin(t / 3.0 + seed)
        cy = height * 0.5 + 6 * np.cos(t / 2.0)
        body = 1500 * np.exp(-(((xx - cx) / (width * 0.18)) ** 2 + ((yy - cy) / (height * 0.3)) ** 2))
        arm = 900 * np.exp(-(((xx - cx - 30 * np.sin(t)) / 6) ** 2 + ((yy - cy + 10) / 20) ** 2))
        out[t] = base + body + arm + rng.normal(0, 20, size=(height, width))
    return np.clip(out, 0, 65535).astype(np.uint16)


@pytest.fixture
def make_ir():
    return synthetic_ir
