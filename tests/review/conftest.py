"""Fixtures of the review tests: a real bundle (Kinetics I3D + seeded classifier, 16-frame windows) and a
rendered synthetic clip (not patient data)."""

from __future__ import annotations

import pytest
from random_bundle import make_random_bundle
from review_helpers import WINDOW

from semiostream.core.preprocess_spec import PreprocessSpec


@pytest.fixture(scope="session")
def review_bundle(tmp_path_factory, kinetics_ckpt):
    return make_random_bundle(tmp_path_factory.mktemp("review-bundle") / "b", kinetics_ckpt, seed=3,
                              spec=PreprocessSpec(window=WINDOW, min_frames=9))


@pytest.fixture(scope="session")
def clip():
    from semiostream.sources.synth import SynthConfig, render_clip

    return render_clip(SynthConfig(width=160, height=120, seconds=3.2), 1, 2, "FLE")
