"""Backend parity against the bundle's PyTorch fp32 model (eager, unmodified).

fp32 backends: relative error (max abs error / max abs reference) <= 1e-4.
bf16: per-window feature cosine >= 0.999 and identical classifier decisions.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from semiostream.engines.backend_torch import fold_batchnorm
from semiostream.engines.base import EngineError
from semiostream.engines.registry import create_engine, get_backend
from semiostream.models.bundle import load_bundle
from semiostream.models.classifier import pad_features


def needs(backend: str) -> None:
    """Skip (with the registry's reason) where this backend cannot run, e.g. bf16 on a CPU without AVX512-BF16."""
    ok, why = get_backend(backend).available()
    if not ok:
        pytest.skip(f"{backend} cannot run on this machine: {why}")


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().max() / ref.abs().max())


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(7)
    return {t: torch.rand(2, 1, t, 224, 224, generator=g) * 2 - 1 for t in (9, 16)}


@pytest.fixture(scope="module")
def reference(eng_bundle, inputs):
    with torch.inference_mode():
        return {t: eng_bundle.i3d.extract_features(x) for t, x in inputs.items()}


@pytest.fixture(scope="module")
def feature_set():
    g = torch.Generator().manual_seed(3)
    f = torch.rand(24, 7, 1024, generator=g) * 0.8
    for i in range(24):
        f[i, : i % 7] = -1.0  # 0..6 masked leading steps
    return f


@pytest.mark.parametrize("backend", ["onnxruntime-cpu-fp32", "torch-cpu-fp32"])
def test_fp32_feature_parity(backend, eng_bundle, eng_onnx, inputs, reference):
    with create_engine(backend, eng_bundle, "features") as e:
        for t, x in inputs.items():
            y = e.infer(x)
            assert y.shape == reference[t].shape == (2, 1, 1024)
            assert rel_err(y, reference[t]) <= 1e-4, (backend, t)


@pytest.mark.parametrize("backend", ["onnxruntime-cpu-fp32", "torch-cpu-fp32", "torch-cpu-bf16"])
def test_classifier_parity(backend, eng_bundle, eng_onnx, feature_set):
    needs(backend)
    with torch.inference_mode():
        ref = eng_bundle.classifier(feature_set)
    with create_engine(backend, eng_bundle, "classifier") as e:
        p = e.infer(feature_set)
    assert rel_err(p, ref) <= 1e-4
    assert torch.equal(p >= 0.5, ref >= 0.5)
    assert 0.05 < float((ref >= 0.5).float().mean()) < 0.95  # the test set has both decisions


def test_bf16_features_within_tolerance_and_same_decisions(eng_bundle, inputs, reference):
    needs("torch-cpu-bf16")
    with create_engine("torch-cpu-bf16", eng_bundle, "features", compile=False) as fe, \
            create_engine("torch-cpu-bf16", eng_bundle, "classifier") as ce:
        for t, x in inputs.items():
            y = fe.infer(x)
            cos = F.cosine_similarity(y.flatten(1), reference[t].flatten(1), dim=1)
            assert float(cos.min()) >= 0.999
            with torch.inference_mode():
                p_ref = eng_bundle.classifier(pad_features(reference[t]))
            assert torch.equal(ce.infer(pad_features(y)) >= 0.5, p_ref >= 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch-cpu-bf16", "torch-cpu-fp32"])
def test_compiled_path_for_standard_windows(eng_bundle, backend):
    """torch.compile serves spec.window-frame inputs; other lengths run eagerly without recompiling."""
    needs(backend)
    x60 = torch.rand(2, 1, eng_bundle.spec.window, 224, 224, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        ref = eng_bundle.i3d.extract_features(x60)
    with create_engine(backend, eng_bundle, "features") as e:
        assert e.compiled
        y = e.infer(x60)
        y2 = e.infer(x60[1:])
        if backend.endswith("fp32"):
            assert rel_err(y, ref) <= 1e-4
        else:
            assert F.cosine_similarity(y.flatten(1), ref.flatten(1)).min().item() >= 0.999
        torch.testing.assert_close(y[1:], y2)
        assert e.infer(torch.zeros(1, 1, 9, 224, 224)).shape == (1, 1, 1024)


def test_fold_batchnorm_is_exact(eng_bundle):
    folded = fold_batchnorm(eng_bundle.i3d)
    assert all(getattr(m, "bn", "n/a") is None for m in folded.modules() if hasattr(m, "conv3d"))
    assert eng_bundle.i3d.Conv3d_1a_7x7.bn is not None  # the bundle's own model is untouched
    x = torch.rand(1, 1, 9, 224, 224, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.inference_mode():
        assert rel_err(folded.extract_features(x), eng_bundle.i3d.extract_features(x)) <= 1e-5


def test_onnxruntime_needs_the_export_of_this_bundle(eng_bundle_dir, eng_onnx, other_copy):
    # no ONNX in the copy: the error says to export
    with pytest.raises(EngineError, match="semiostream export"):
        create_engine("onnxruntime-cpu-fp32", other_copy, "classifier")
    # this bundle's ONNX copied into another bundle: refused as foreign
    (other_copy.path / "onnx").mkdir()
    shutil.copy(eng_onnx["classifier"], other_copy.path / "onnx" / "classifier.onnx")
    with pytest.raises(EngineError, match="was exported from bundle .* not from this bundle"):
        create_engine("onnxruntime-cpu-fp32", other_copy, "classifier")


@pytest.fixture
def other_copy(eng_bundle_dir, tmp_path):
    """A bundle with the same I3D and another classifier (hence another bundle id)."""
    from semiostream.models.bundle import save_bundle
    from semiostream.models.classifier import SeizureClassifier

    b = load_bundle(eng_bundle_dir)
    torch.manual_seed(5)
    return load_bundle(save_bundle(tmp_path / "other", b.i3d, SeizureClassifier().eval()))
