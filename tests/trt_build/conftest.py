"""Fixtures for tests/trt_build: the same shared test bundle as tests/engines (one directory per session).

The classifier is untrained (random, seeded, last layer scaled so p(TLE) spreads over (0, 1)).
"""

from __future__ import annotations

import pytest
from random_bundle import make_random_bundle

from semiostream.models.bundle import load_bundle


@pytest.fixture(scope="session")
def trtb_bundle_dir(tmp_path_factory, kinetics_ckpt):
    # same directory and seed as tests/engines/conftest.py: the export is shared when both folders run
    return make_random_bundle(tmp_path_factory.getbasetemp() / "engines_test_bundle", kinetics_ckpt, 1234)


@pytest.fixture(scope="session")
def trtb_bundle(trtb_bundle_dir):
    return load_bundle(trtb_bundle_dir)


@pytest.fixture(scope="session")
def trtb_onnx(trtb_bundle):
    from semiostream.trt_build.export import onnx_from_bundle

    return onnx_from_bundle(trtb_bundle)


@pytest.fixture(scope="session")
def other_bundle_dir(tmp_path_factory, kinetics_ckpt):
    """A second bundle: same I3D, another random classifier (so another bundle id)."""
    return make_random_bundle(tmp_path_factory.getbasetemp() / "engines_other_bundle", kinetics_ckpt, 99)
