"""Fixtures for the trainer tests: the real I3D (Kinetics-400 weights) and a feature-only Scorer."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_spec():
    """Short windows (16 frames -> 1 I3D step) keep CPU feature extraction fast in tests."""
    from semiostream.core.preprocess_spec import PreprocessSpec

    return PreprocessSpec(window=16, min_frames=9)


@pytest.fixture(scope="session")
def i3d_model(kinetics_ckpt):
    from semiostream.models.weights import load_i3d_checkpoint

    return load_i3d_checkpoint(kinetics_ckpt, in_channels=1)


@pytest.fixture(scope="session")
def feature_scorer(i3d_model, small_spec):
    """The engines' Scorer on a temporary bundle of the real I3D (what `semiostream extract` uses)."""
    from semiostream.trainer.run import _ScorerFactory

    factory = _ScorerFactory(i3d_model, small_spec, None)
    scorer = factory()
    yield scorer
    factory.close()
