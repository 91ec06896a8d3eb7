"""TensorRT build and engine (need TensorRT and an NVIDIA GPU; skipped otherwise with the reason)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from semiostream.engines import trt_files
from semiostream.engines.base import EngineError
from semiostream.engines.registry import create_engine
from semiostream.trt_build.build import engine_from_onnx


@pytest.mark.trt
def test_fp16_engine_builds_matches_and_is_reused(trtb_bundle):
    path = engine_from_onnx(trtb_bundle, "features", "fp16", max_batch=2, frames=(9, 16, 16))
    assert path.name.startswith("i3d_b2_sm") and "_fp16_trt" in path.name
    side = json.loads(trt_files.sidecar_path(path).read_text())
    assert side["bundle_id"] == trtb_bundle.bundle_id and side["frames"] == [9, 16, 16]
    mtime = path.stat().st_mtime_ns
    assert engine_from_onnx(trtb_bundle, "features", "fp16", max_batch=2, frames=(9, 16, 16)) == path
    assert path.stat().st_mtime_ns == mtime  # fresh: reused
    engine_from_onnx(trtb_bundle, "classifier", max_batch=2)
    x = torch.rand(2, 1, 16, 224, 224) * 2 - 1
    with torch.inference_mode():
        ref = trtb_bundle.i3d.extract_features(x)
    with create_engine("tensorrt-fp16", trtb_bundle, "features") as e:
        y = e.infer(x.cuda()).cpu()
        assert float(F.cosine_similarity(y.flatten(1), ref.flatten(1)).min()) >= 0.999
        with pytest.raises(EngineError, match="frames=17 is outside"):
            e.infer(torch.zeros(1, 1, 17, 224, 224, device="cuda"))


@pytest.mark.trt
def test_stale_engine_is_rebuilt_not_loaded(trtb_bundle):
    path = engine_from_onnx(trtb_bundle, "classifier", max_batch=2)
    side_p = trt_files.sidecar_path(path)
    side = json.loads(side_p.read_text())
    side["bundle_id"] = "someone-else"
    side_p.write_text(json.dumps(side))
    with pytest.raises(EngineError, match="semiostream build"):
        create_engine("tensorrt-fp16", trtb_bundle, "classifier")
    engine_from_onnx(trtb_bundle, "classifier", max_batch=2)
    assert json.loads(side_p.read_text())["bundle_id"] == trtb_bundle.bundle_id
    with create_engine("tensorrt-fp16", trtb_bundle, "classifier") as e:
        f = torch.rand(2, 7, 1024)
        with torch.inference_mode():
            ref = trtb_bundle.classifier(f)
        assert (e.infer(f.cuda()).cpu() - ref).abs().max() <= 1e-4


@pytest.mark.trt
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fp32_and_bf16_engines_build_and_match(trtb_bundle, precision):
    """fp32: within 1e-4 of the CPU fp32 model (TF32 off); bf16: built from the opset-22 typed export."""
    from semiostream.engines.registry import get_backend

    ok, why = get_backend(f"tensorrt-{precision}").available()
    if not ok:
        pytest.skip(why)
    engine_from_onnx(trtb_bundle, "features", precision, max_batch=2, frames=(9, 16, 16))
    engine_from_onnx(trtb_bundle, "classifier", max_batch=2)
    x = torch.rand(2, 1, 16, 224, 224, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.inference_mode():
        ref = trtb_bundle.i3d.extract_features(x)
    with create_engine(f"tensorrt-{precision}", trtb_bundle, "features") as e:
        assert e.device.is_cuda
        y = e.infer(x).cpu()
    if precision == "fp32":
        assert float((y - ref).abs().max() / ref.abs().max()) <= 1e-4
    else:
        assert float(F.cosine_similarity(y.flatten(1), ref.flatten(1)).min()) >= 0.999


@pytest.mark.trt
def test_timing_cache_is_per_gpu_arch_and_version_and_a_bad_one_is_replaced(trtb_bundle, caplog):
    from semiostream.engines.trt_files import gpu_facts, import_tensorrt
    from semiostream.trt_build.build import timing_cache_path

    trt = import_tensorrt()
    _, sm = gpu_facts()
    tc = timing_cache_path(trtb_bundle, sm, trt.__version__)
    assert tc.name == f"timing_{sm}_trt{trt.__version__}.cache"
    tc.parent.mkdir(parents=True, exist_ok=True)
    tc.write_bytes(b"not a timing cache")
    engine_from_onnx(trtb_bundle, "classifier", max_batch=3, force=True)
    assert tc.read_bytes() != b"not a timing cache" and tc.stat().st_size > 0
    assert "timing cache" in caplog.text
