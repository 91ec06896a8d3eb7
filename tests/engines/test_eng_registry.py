"""Backend registry and automatic selection from verdicts stored next to the bundle."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shutil

import pytest
import torch

from semiostream.engines import registry, select
from semiostream.engines.base import EngineError
from semiostream.models.bundle import load_bundle


def test_every_backend_name_is_library_device_precision_and_its_module_exists():
    for name, info in registry.BACKENDS.items():
        assert re.fullmatch(r"(torch|onnxruntime|openvino)-(cpu|cuda)-(fp32|bf16|fp16)|tensorrt-(fp16|bf16|fp32)", name)
        assert info.name == name
        assert importlib.util.find_spec(f"semiostream.engines.{info.module}") is not None
    assert registry.available_backends()["torch-cpu-fp32"] == ""
    assert "torch-cpu-fp32" in registry.usable_backends()


def test_unknown_backend_lists_the_names(eng_bundle):
    with pytest.raises(EngineError, match="unknown backend 'torch-tpu-fp8'; choose one of: torch-cpu-fp32"):
        registry.create_engine("torch-tpu-fp8", eng_bundle, "classifier")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available(),
                    reason="TensorRT is available here")
def test_unavailable_backend_says_why(eng_bundle):
    why = registry.available_backends()["tensorrt-fp16"]
    assert "TensorRT is not installed" in why or "CUDA" in why
    with pytest.raises(EngineError, match="backend tensorrt-fp16 is not available here"):
        registry.create_engine("tensorrt-fp16", eng_bundle, "features")
    with pytest.raises(EngineError, match="cannot run here"):
        select.select_backend(eng_bundle, "tensorrt-fp16")


@pytest.fixture
def bundle_copy(eng_bundle_dir, tmp_path):
    dst = tmp_path / "bundle"
    dst.mkdir()
    for name in ("bundle.json", "i3d.safetensors", "classifier.pt"):
        shutil.copy(eng_bundle_dir / name, dst / name)
    return load_bundle(dst)


def test_selection_uses_fastest_passing_verdict_for_this_bundle_and_machine(bundle_copy):
    b = bundle_copy
    ref = "torch-cuda-fp32" if torch.cuda.is_available() else "torch-cpu-fp32"
    assert select.select_backend(b) == ref  # no verdicts yet: the reference
    assert select.select_backend(b, "onnxruntime-cpu-fp32") == "onnxruntime-cpu-fp32"  # explicit wins
    select.record_verdicts(b, b.bundle_id, [
        {"backend": "torch-cpu-fp32", "passed": True, "ms_per_window": 900.0},
        {"backend": "onnxruntime-cpu-fp32", "passed": True, "ms_per_window": 700.0},
        {"backend": "torch-cpu-bf16", "passed": False, "ms_per_window": 100.0},  # fast but failed
    ])
    select.record_verdicts(b, "another-bundle-id", [
        {"backend": "torch-cpu-fp32", "passed": True, "ms_per_window": 1.0}])
    info = dict(select.machine_info(), cpu="some other CPU")
    select.record_verdicts(b, b.bundle_id, [
        {"backend": "torch-cpu-fp32", "passed": True, "ms_per_window": 2.0}], info=info)
    assert select.verified_backends(b)[0] == ("onnxruntime-cpu-fp32", 700.0)
    assert select.select_backend(b) == "onnxruntime-cpu-fp32"
    # a re-verification replaces this machine's entry for that backend
    select.record_verdicts(b, b.bundle_id, [{"backend": "onnxruntime-cpu-fp32", "passed": False, "ms_per_window": 700.0}])
    assert select.select_backend(b) == "torch-cpu-fp32"
    entries = select.read_verdicts(b)
    assert len([e for e in entries if e["backend"] == "onnxruntime-cpu-fp32"]) == 1
    assert len(entries) == 5


def test_unreadable_verdict_file_is_ignored(bundle_copy):
    select.verdict_path(bundle_copy).write_text("{not json")
    assert select.read_verdicts(bundle_copy) == []
    assert select.select_backend(bundle_copy) in registry.REFERENCE.values()
