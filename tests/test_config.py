"""Scorer configuration: validation messages name the field and the fix; relative paths resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from semiostream.config import load_service_config
from semiostream.errors import UserError


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "scorer.yaml"
    p.write_text(text)
    return p


def test_valid_config_resolves_paths(tmp_path):
    cfg = load_service_config(_write(tmp_path, """
bundle: bundles/v3
beds:
  - {id: bed-01, roi: [10, 20, 300, 400]}
  - {id: bed-02}
detector: {kind: yolox, weights: det/yolox.onnx}
security: {secret_key: keys/scorer.key_secret, allowed_clients: keys/cams}
windows: {hop: 15}
"""))
    assert cfg.bundle == tmp_path / "bundles" / "v3"
    assert cfg.detector.weights == tmp_path / "det" / "yolox.onnx"
    assert cfg.security.allowed_clients == tmp_path / "keys" / "cams"
    assert cfg.beds[0].roi == (10, 20, 300, 400) and cfg.windows.hop == 15
    assert cfg.endpoints.frames == "tcp://127.0.0.1:5555"  # loopback by default


@pytest.mark.parametrize("text,expect", [
    ("beds: []\n", "bundle: required field is missing"),
    ("bundle: b\nbacklog: 3\n", "backlog: unknown field"),
    ("bundle: b\nendpoints: {frames: 'localhost:5555'}\n", "endpoints.frames"),
    ("bundle: b\nbeds: [{id: 'bed 1'}]\n", "beds.0.id"),
    ("bundle: b\nbeds: [{id: a}, {id: a}]\n", "repeated: ['a']"),
    ("bundle: b\nbeds: [{id: a, roi: [5, 5, 1, 1]}]\n", "x0 < x1"),
    ("bundle: b\ndetector: {kind: yolox}\n", "needs detector.weights"),
    ("bundle: b\nbatching: {max_batch: 0}\n", "batching.max_batch"),
    ("- just\n- a list\n", "YAML mapping"),
    ("bundle: [unclosed\n", "not valid YAML"),
])
def test_errors_name_the_field(tmp_path, text, expect):
    with pytest.raises(UserError) as e:
        load_service_config(_write(tmp_path, text))
    assert expect in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read config"):
        load_service_config(tmp_path / "nope.yaml")
