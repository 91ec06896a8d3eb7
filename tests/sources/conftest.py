"""Fixtures for the sources tests: the real assets in ../shared/assets and small generated sources."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def frames16() -> np.ndarray:
    """[20, 48, 64] uint16 covering the full 0..65535 range (worst case for lossless round trips)."""
    rng = np.random.default_rng(1234)
    fr = rng.integers(0, 65536, (20, 48, 64), dtype=np.uint16)
    fr[0, 0, 0], fr[0, 0, 1] = 0, 65535
    return fr
