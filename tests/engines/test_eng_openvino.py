"""OpenVINO backend against the bundle's PyTorch fp32 model (eager, unmodified), and its compiled-model cache.

fp32: relative error (max abs error / max abs reference) <= 1e-4 and identical decisions; bf16 (only where
OpenVINO's CPU plugin has it): feature cosine >= 0.999 and identical decisions.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from semiostream.engines import artifacts as art
from semiostream.engines.base import EngineError
from semiostream.engines.registry import create_engine, get_backend
from semiostream.models.bundle import load_bundle
from semiostream.models.classifier import pad_features

pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install -e '.[dev]' installs it)")


def needs(backend: str) -> None:
    ok, why = get_backend(backend).available()
    if not ok:
        pytest.skip(f"{backend} cannot run on this machine: {why}")


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().max() / ref.abs().max())


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(11)
    return {t: torch.rand(2, 1, t, 224, 224, generator=g) * 2 - 1 for t in (9, 17)}


@pytest.fixture(scope="module")
def reference(eng_bundle, inputs):
    with torch.inference_mode():
        return {t: eng_bundle.i3d.extract_features(x) for t, x in inputs.items()}


@pytest.fixture(scope="module")
def feature_set():
    g = torch.Generator().manual_seed(3)
    f = torch.rand(24, 7, 1024, generator=g) * 0.8
    for i in range(24):
        f[i, : i % 7] = -1.0
    return f


@pytest.fixture
def bundle_copy(eng_bundle_dir, eng_onnx, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(eng_bundle_dir, dst, ignore=shutil.ignore_patterns("verified_backends.json",
                                                                       art.OPENVINO_CACHE_DIR))
    return load_bundle(dst)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_features_and_decisions_match_the_fp32_reference(precision, eng_bundle, eng_onnx, inputs, reference):
    name = f"openvino-cpu-{precision}"
    needs(name)
    with create_engine(name, eng_bundle, "features") as fe, create_engine(name, eng_bundle, "classifier") as ce:
        assert fe.name == name and fe.config["INFERENCE_PRECISION_HINT"] == {"fp32": "f32", "bf16": "bf16"}[precision]
        for t, x in inputs.items():  # leftover lengths: the dynamic model
            y = fe.infer(x)
            assert y.shape == reference[t].shape and y.dtype == torch.float32
            if precision == "fp32":
                assert rel_err(y, reference[t]) <= 1e-4, t
            else:
                assert F.cosine_similarity(y.flatten(1), reference[t].flatten(1)).min().item() >= 0.999
            with torch.inference_mode():
                p_ref = eng_bundle.classifier(pad_features(reference[t]))
            assert torch.equal(ce.infer(pad_features(y)) >= 0.5, p_ref >= 0.5)


def test_classifier_parity(eng_bundle, eng_onnx, feature_set):
    needs("openvino-cpu-fp32")
    with torch.inference_mode():
        ref = eng_bundle.classifier(feature_set)
    with create_engine("openvino-cpu-fp32", eng_bundle, "classifier") as e:
        p = e.infer(feature_set)
        p1 = e.infer(feature_set[:1])
    assert rel_err(p, ref) <= 1e-4
    assert torch.equal(p >= 0.5, ref >= 0.5)
    assert 0.05 < float((ref >= 0.5).float().mean()) < 0.95  # the test set has both decisions
    torch.testing.assert_close(p1, p[:1])


@pytest.mark.slow
def test_standard_windows_run_the_static_model(eng_bundle, eng_onnx):
    """spec.window-frame windows use the static model (a batch window by window); results equal the reference."""
    needs("openvino-cpu-fp32")
    x = torch.rand(2, 1, eng_bundle.spec.window, 224, 224, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        ref = eng_bundle.i3d.extract_features(x)
    with create_engine("openvino-cpu-fp32", eng_bundle, "features") as e:
        assert e._static is not None and e._dynamic is None
        y = e.infer(x)
        assert e._dynamic is None  # no dynamic compile for standard windows
        assert rel_err(y, ref) <= 1e-4
        torch.testing.assert_close(e.infer(x[1:]), y[1:])


def test_restart_imports_the_compiled_model_from_the_bundle_cache(bundle_copy):
    needs("openvino-cpu-fp32")
    cache = bundle_copy.path / art.OPENVINO_CACHE_DIR
    assert not cache.exists()
    with create_engine("openvino-cpu-fp32", bundle_copy, "classifier") as e:
        assert not e.loaded_from_cache
    assert any(cache.glob("*.blob"))
    with create_engine("openvino-cpu-fp32", bundle_copy, "classifier") as e:
        assert e.loaded_from_cache  # no second compilation


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_bundle_caches_in_the_user_cache(bundle_copy, tmp_path, monkeypatch):
    needs("openvino-cpu-fp32")
    monkeypatch.setenv("SEMIOSTREAM_CACHE", str(tmp_path / "usercache"))
    os.chmod(bundle_copy.path, 0o555)
    try:
        with create_engine("openvino-cpu-fp32", bundle_copy, "classifier"):
            pass
    finally:
        os.chmod(bundle_copy.path, 0o755)
    assert any((tmp_path / "usercache" / "openvino" / bundle_copy.bundle_id).glob("*.blob"))


def test_needs_the_export_of_this_bundle(bundle_copy, eng_onnx, tmp_path):
    needs("openvino-cpu-fp32")
    from semiostream.models.bundle import save_bundle
    from semiostream.models.classifier import SeizureClassifier

    torch.manual_seed(5)
    other = load_bundle(save_bundle(tmp_path / "other", bundle_copy.i3d, SeizureClassifier().eval()))
    with pytest.raises(EngineError, match="semiostream export"):
        create_engine("openvino-cpu-fp32", other, "classifier")
    (other.path / "onnx").mkdir()
    shutil.copy(eng_onnx["classifier"], other.path / "onnx" / "classifier.onnx")
    with pytest.raises(EngineError, match="was exported from bundle .* not from this bundle"):
        create_engine("openvino-cpu-fp32", other, "classifier")


def test_bf16_is_refused_with_the_reason_where_the_cpu_lacks_it():
    from semiostream.engines.backend_openvino import bf16_supported

    ok, why = get_backend("openvino-cpu-bf16").available()
    assert ok == bf16_supported()
    if not ok:
        assert "bf16" in why and "AVX512-BF16" in why


def test_cpu_choice_is_explained_from_this_machines_verdicts(bundle_copy):
    """doctor's line: the reference without verdicts (and how to enable faster ones), else the fastest verified."""
    from semiostream.engines import select

    needs("openvino-cpu-fp32")
    line = select.explain_cpu_choice(bundle_copy)
    assert line.startswith("torch-cpu-fp32 (reference)") and "semiostream verify" in line and "openvino-cpu-fp32" in line
    select.record_verdicts(bundle_copy, bundle_copy.bundle_id, [
        {"backend": "torch-cpu-fp32", "passed": True, "ms_per_window": 900.0},
        {"backend": "openvino-cpu-fp32", "passed": True, "ms_per_window": 600.0}])
    assert select.select_backend(bundle_copy) == "openvino-cpu-fp32"
    line = select.explain_cpu_choice(bundle_copy)
    assert line.startswith("openvino-cpu-fp32: the fastest verified") and "torch-cpu-fp32 900 ms" in line
    assert "OpenVINO installed" in select.explain_cpu_choice()
