"""Scorer configuration: validation messages name the field and the fix; relative paths resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from semiostream.bus.config import load_service_config
from semiostream.core.errors import UserError


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
security: {secret_key: keys/scorer.key_secret, cameras: keys/cams, viewers: keys/views, operators: keys/ops}
store: {path: db/results.sqlite}
windows: {hop: 15}
"""))
    assert cfg.bundle == tmp_path / "bundles" / "v3"
    assert cfg.detector.weights == tmp_path / "det" / "yolox.onnx"
    assert cfg.security.cameras == tmp_path / "keys" / "cams"
    assert cfg.security.operators == tmp_path / "keys" / "ops"
    assert cfg.store.path == tmp_path / "db" / "results.sqlite"
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
    ("bundle: a\nbundle: b\n", "key 'bundle' appears twice"),
    ("bundle: b\nwindows: {hop: 3, hop: 4}\n", "key 'hop' appears twice"),
    ("bundle: b\nsecurity: {allowed_clients: keys}\n", "split by role"),
    ("bundle: b\nbeds: [{id: a, size: [0, 10]}]\n", "beds.0.size"),
    ("bundle: b\nbeds: [{id: a, camera: 'cam 1'}]\n", "beds.0.camera"),
    ("bundle: b\nlimits: {beds: 0}\n", "limits.beds"),
])
def test_errors_name_the_field(tmp_path, text, expect):
    with pytest.raises(UserError) as e:
        load_service_config(_write(tmp_path, text))
    assert expect in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read config"):
        load_service_config(tmp_path / "nope.yaml")


def test_non_utf8_config_is_one_line_error(tmp_path):
    p = tmp_path / "scorer.yaml"
    p.write_bytes(b"bundle: b\nbeds: [{id: \xff\xfe}]\n")
    with pytest.raises(UserError, match="not UTF-8"):
        load_service_config(p)


def test_duplicate_bed_check_is_linear(tmp_path):
    import time

    from semiostream.bus.config import ServiceConfig

    def seconds(n: int) -> float:
        beds = [{"id": f"bed-{i}"} for i in range(n)] + [{"id": "bed-7"}]
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            with pytest.raises(ValueError, match=r"repeated: \['bed-7'\]"):
                ServiceConfig.model_validate({"bundle": "b", "beds": beds})
            best = min(best, time.perf_counter() - t0)
        return best

    ratio = seconds(16_000) / seconds(4_000)
    assert ratio < 10, f"4x the beds took {ratio:.1f}x as long (quadratic would be ~16x)"


def test_large_config_loads_quickly(tmp_path):
    lines = "".join(f"  - {{id: bed-{i}}}\n" for i in range(32_000))
    cfg = load_service_config(_write(tmp_path, f"bundle: b\nbeds:\n{lines}"))
    assert len(cfg.beds) == 32_000
