"""Fixture of the bus tests: a real bundle (Kinetics I3D + seeded classifier, 16-frame windows)."""

from __future__ import annotations

import pytest
from bus_helpers import WINDOW
from random_bundle import make_random_bundle

from semiostream.core.preprocess_spec import PreprocessSpec


@pytest.fixture(scope="session")
def bus_bundle(tmp_path_factory, kinetics_ckpt):
    return make_random_bundle(tmp_path_factory.mktemp("bus-bundle") / "b", kinetics_ckpt, seed=3,
                              spec=PreprocessSpec(window=WINDOW, min_frames=9))
