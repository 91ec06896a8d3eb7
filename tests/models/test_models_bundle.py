"""Model bundle: round trip, integrity checks, version checks, PreprocessSpec validation."""

from __future__ import annotations

import json

import pytest
import torch

from semiostream.models.bundle import (
    BundleError,
    PreprocessSpec,
    load_bundle,
    read_bundle_json,
    save_bundle,
)
from semiostream.models.classifier import SeizureClassifier, pad_features
from semiostream.models.i3d import InceptionI3d


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return InceptionI3d(in_channels=1).eval(), SeizureClassifier(lstm_units=(32, 16), dense_units=(16, 8)).eval()


def test_round_trip(tmp_path, models):
    i3d, clf = models
    spec = PreprocessSpec(intensity_mode="fixed", intensity_lo=100, intensity_hi=3000)
    root = save_bundle(tmp_path / "b", i3d, clf, spec, provenance={"cv": {"macro_f1": 0.8}})
    b = load_bundle(root)
    assert b.spec == spec
    assert b.labels == ("FLE", "TLE")
    assert b.in_channels == 1
    assert b.meta["provenance"]["cv"]["macro_f1"] == 0.8
    assert len(b.bundle_id) == 16
    x = pad_features(torch.rand(2, 3, 1024))
    with torch.no_grad():
        torch.testing.assert_close(b.classifier(x), clf(x), rtol=0, atol=0)
        frames = torch.rand(1, 1, 9, 224, 224)
        torch.testing.assert_close(b.i3d.extract_features(frames), i3d.extract_features(frames), rtol=0, atol=0)
    # same content -> same id; another spec -> another id
    again = save_bundle(tmp_path / "b2", i3d, clf, spec)
    assert read_bundle_json(again)["bundle_id"] == b.bundle_id
    other = save_bundle(tmp_path / "b3", i3d, clf, PreprocessSpec())
    assert read_bundle_json(other)["bundle_id"] != b.bundle_id


def test_tampered_file_is_detected(tmp_path, models):
    root = save_bundle(tmp_path / "b", *models)
    with open(root / "classifier.pt", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(BundleError, match="classifier.pt has sha256"):
        load_bundle(root)


def test_missing_file_and_version(tmp_path, models):
    root = save_bundle(tmp_path / "b", *models)
    meta = json.loads((root / "bundle.json").read_text())
    meta["format_version"] = 99
    (root / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="format version 99"):
        load_bundle(root)
    root2 = save_bundle(tmp_path / "c", *models)
    (root2 / "i3d.safetensors").unlink()
    with pytest.raises(BundleError, match="missing i3d.safetensors"):
        load_bundle(root2)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="bundle.json is missing"):
        load_bundle(tmp_path / "empty")


def test_unknown_spec_field_is_reported(tmp_path, models):
    root = save_bundle(tmp_path / "b", *models)
    meta = json.loads((root / "bundle.json").read_text())
    meta["preprocess"]["gamma_correction"] = 2.2
    (root / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="gamma_correction"):
        load_bundle(root)


def test_spec_defaults_are_the_papers():
    s = PreprocessSpec()
    assert (s.window, s.min_frames, s.crop_expand, s.size, s.pad_value) == (60, 9, 0.2, 224, -1.0)
    assert PreprocessSpec.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("kwargs,msg", [
    ({"min_frames": 8}, "below 9"),
    ({"window": 8, "min_frames": 9}, "shorter than min_frames"),
    ({"intensity_mode": "fixed", "intensity_lo": 500, "intensity_hi": 100}, "must exceed"),
    ({"intensity_mode": "gamma"}, "use 'fixed' or 'percentile'"),
    ({"percentile_lo": 50, "percentile_hi": 10}, "0 <= lo < hi <= 100"),
])
def test_spec_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        PreprocessSpec(**kwargs)
