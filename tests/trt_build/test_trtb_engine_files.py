"""Engine naming, sidecar and staleness (pure Python: real files, no TensorRT needed)."""

from __future__ import annotations

import json

import pytest

from semiostream.engines import trt_files


@pytest.fixture
def expected(trtb_bundle):
    return trt_files.expected_sidecar(trtb_bundle.meta, "i3d", "features", "fp16", 16, (9, 60, 60), "10.13.0",
                                  "NVIDIA H100 80GB HBM3", "sm90", onnx_sha256="abc", build_flags={"x": 1})


def test_engine_name_follows_the_convention(trtb_bundle):
    assert trt_files.engine_name("i3d", 16, "sm90", "fp16", "10.13.0") == "i3d_b16_sm90_fp16_trt10.13.0.engine"
    assert trt_files.engine_path(trtb_bundle, "classifier", 64, "sm89", "fp32", "11.0.1").relative_to(
        trtb_bundle.path).as_posix() == "engines/classifier_b64_sm89_fp32_trt11.0.1.engine"
    assert trt_files.sm_arch((8, 6)) == "sm86"
    with pytest.raises(ValueError, match="precision 'int8'"):
        trt_files.engine_name("i3d", 1, "sm90", "int8", "10.0")


def test_fresh_engine_loads_and_every_kind_of_staleness_is_named(tmp_path, expected):
    path = trt_files.write_engine(tmp_path / "engines" / "i3d_b16_sm90_fp16_trt10.13.0.engine", b"serialized", expected)
    side = json.loads(trt_files.sidecar_path(path).read_text())
    assert side["bundle_id"] == expected["bundle_id"] and side["gpu"] == "NVIDIA H100 80GB HBM3"
    assert side["engine_sha256"] == trt_files.sha256_bytes(b"serialized") and "built_at" in side
    assert trt_files.check_engine(path, expected) == []
    assert trt_files.load_engine_bytes(path, expected) == b"serialized"

    cases = {
        "bundle_id": ("other", "built for bundle"),
        "tensorrt": ("11.0.0", "built with TensorRT 10.13.0, this is TensorRT 11.0.0"),
        "sm": ("sm89", "built for GPU architecture sm90, this GPU is sm89"),
        "gpu": ("NVIDIA L4", "this GPU is NVIDIA L4"),
        "precision": ("fp32", "built in fp16, fp32 requested"),
        "max_batch": (32, "max batch 16, 32 requested"),
        "frames": ([9, 32, 32], "frames profile"),
        "bundle_files": ({"i3d.safetensors": "0" * 64}, "other weight files"),
    }
    for key, (value, words) in cases.items():
        problems = trt_files.check_engine(path, dict(expected, **{key: value}))
        assert len(problems) == 1 and words in problems[0], key

    path.write_bytes(b"serialized but changed")
    assert "sha256 differs" in trt_files.check_engine(path, expected)[0]
    with pytest.raises(trt_files.StaleEngineError, match="semiostream build"):
        trt_files.load_engine_bytes(path, expected)
    trt_files.sidecar_path(path).unlink()
    assert "sidecar" in trt_files.check_engine(path, expected)[0]
    assert "does not exist" in trt_files.check_engine(tmp_path / "none.engine", expected)[0]
