"""Helpers for the trainer tests: synthetic I3D-like feature sets with a real class signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semiostream.core.segment import Segment
from semiostream.trainer.dataset import FeatureSet


def seizure(patient_id: str, seizure_id: str, label: str) -> Segment:
    """A seizure of a feature set (its video is not read: the features are given)."""
    return Segment(Path(f"/data/{patient_id}/{seizure_id}.mkv"), patient_id=patient_id, seizure_id=seizure_id,
                   label=label)


def synthetic_featureset(
    patients_per_class: int = 5,
    seizures: tuple[int, int] = (2, 4),
    windows: tuple[int, int] = (3, 9),
    dim: int = 64,
    signal: float = 1.0,
    seed: int = 0,
) -> FeatureSet:
    """Non-negative feature windows ``[N, 7, dim]`` from two class-dependent distributions.

    Each class has its own mean direction; each patient adds its own offset (a subject effect that a
    leaky split could exploit); the last window of a seizure is short (pre-padded with -1 rows).
    ``signal`` scales the class difference (0 = no class information).
    """
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 1, (2, dim))
    parts = []
    for c, lab in enumerate(("FLE", "TLE")):
        for p in range(patients_per_class):
            pid = f"{lab[0]}{p:02d}"
            offset = rng.normal(0, 0.5, dim)
            for s in range(int(rng.integers(seizures[0], seizures[1] + 1))):
                n = int(rng.integers(windows[0], windows[1] + 1))
                x = 1.0 + offset + signal * mu[c] + rng.normal(0, 1.0, (n, 7, dim))
                x = np.abs(x).astype(np.float32)
                steps = int(rng.integers(1, 7))
                x[-1, : 7 - steps] = -1.0  # short leftover window: pre-padded
                parts.append((seizure(pid, f"s{s}", lab), x))
    return FeatureSet.from_parts(parts, feature_shape=(7, dim))
