"""Fixtures for tests/trt_build: the same shared test bundle as tests/engines (one directory per session).

The classifier is untrained (random, seeded, last layer scaled so p(TLE) spreads over (0, 1)).
"""

from __future__ import annotations

import pytest
import torch

from semiostream.models.bundle import load_bundle, save_bundle
from semiostream.models.classifier import SeizureClassifier
from semiostream.models.weights import load_i3d_checkpoint


def _make(path, ckpt, seed: int):
    if not (path / "bundle.json").is_file():
        torch.manual_seed(seed)
        clf = SeizureClassifier().eval()
        with torch.no_grad():
            clf.fc3.weight.mul_(300.0)
        save_bundle(path, load_i3d_checkpoint(ckpt, in_channels=1), clf, provenance={"test": "random classifier"})
    return path


@pytest.fixture(scope="session")
def trtb_bundle_dir(tmp_path_factory, kinetics_ckpt):
    # same directory and seed as tests/engines/conftest.py: the export is shared when both folders run
    return _make(tmp_path_factory.getbasetemp() / "engines_test_bundle", kinetics_ckpt, 1234)


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
    return _make(tmp_path_factory.getbasetemp() / "engines_other_bundle", kinetics_ckpt, 99)
