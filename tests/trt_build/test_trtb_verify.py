"""Cross-backend verification on random and real inputs; verdicts drive automatic selection; the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from semiostream import cli
from semiostream.engines import artifacts as art
from semiostream.engines.registry import get_backend
from semiostream.engines.select import read_verdicts, select_backend
from semiostream.models.bundle import load_bundle
from semiostream.trt_build.verify import verify_bundle

#: the CPU backends that can run on this machine (bf16 needs AVX512-BF16 or AMX; OpenVINO its extra)
CPU_BACKENDS = [n for n in ("torch-cpu-fp32", "torch-cpu-bf16", "onnxruntime-cpu-fp32", "openvino-cpu-fp32",
                            "openvino-cpu-bf16") if get_backend(n).available()[0]]
NO_COMPILE = {"torch-cpu-bf16": {"compile": False}}


def real_windows():
    path = Path(__file__).resolve().parents[3] / "shared" / "assets" / "mmaction2_demo.mp4"
    if not path.is_file():
        pytest.skip(f"real asset {path} is absent")
    from semiostream.sources.readers import open_source

    with open_source(path) as src:
        return [np.asarray(src.read(0, 16)), np.asarray(src.read(16, 25))]


@pytest.fixture
def bundle_copy(trtb_bundle_dir, trtb_onnx, tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(trtb_bundle_dir, dst, ignore=shutil.ignore_patterns("verified_backends.json"))
    return load_bundle(dst)


def test_cpu_backends_pass_and_the_fastest_verified_is_selected(bundle_copy):
    """Only CPU backends are verified here, so the fastest of them is selected on any machine (a GPU box
    included: unverified GPU backends are never picked over verified ones)."""
    report = verify_bundle(bundle_copy, CPU_BACKENDS, frames=(9,), windows=real_windows(),
                           n_random_features=32, engine_options=NO_COMPILE)
    print(report.table())
    assert report.passed, report.table()
    for name in CPU_BACKENDS:
        r = report.result(name)
        assert r.passed and r.ms_per_window > 0 and r.frames == 16
        assert r.metrics["decisions_agree"] == r.metrics["decisions_total"] >= 36
        if r.precision == "fp32":
            assert r.metrics["feature_max_rel"] <= 1e-4
        else:
            assert r.metrics["feature_min_cosine"] >= 0.999
    assert "overall: PASS" in report.table()
    entries = read_verdicts(bundle_copy)
    assert {e["backend"] for e in entries} >= set(CPU_BACKENDS)
    fastest = min((report.result(n) for n in CPU_BACKENDS), key=lambda r: r.ms_per_window).backend
    assert select_backend(bundle_copy) == fastest


def test_an_unavailable_backend_is_reported_as_skipped_with_its_reason(bundle_copy):
    import importlib.util

    import torch

    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are present: tests/trt_build/test_trtb_tensorrt.py verifies TensorRT")
    report = verify_bundle(bundle_copy, ["tensorrt-fp16"], frames=(9,), n_random_features=8, record=False)
    r = report.result("tensorrt-fp16")
    assert not r.available and r.status == "skipped" and r.reason
    assert not report.passed  # nothing ran


def test_a_wrong_model_file_fails_and_is_never_selected(bundle_copy, other_bundle_dir):
    """The other bundle's classifier, relabelled as this bundle's export: verification must catch it."""
    from semiostream.trt_build.export import onnx_from_bundle

    other = onnx_from_bundle(load_bundle(other_bundle_dir))
    wrong = onnx.load(str(other["classifier"]))
    for p in wrong.metadata_props:
        if p.key == art.META_BUNDLE_ID:
            p.value = bundle_copy.bundle_id
    onnx.save(wrong, str(art.onnx_path(bundle_copy, "classifier")))
    report = verify_bundle(bundle_copy, ["onnxruntime-cpu-fp32"], frames=(9,), export=False,
                           n_random_features=32)
    r = report.result("onnxruntime-cpu-fp32")
    assert not report.passed and not r.passed
    assert any("classifier relative error" in f for f in r.failures)
    assert "FAIL" in report.table()
    assert select_backend(bundle_copy) != "onnxruntime-cpu-fp32"


def test_cli_export_verify_build(bundle_copy, capsys):
    assert cli.main(["export", str(bundle_copy.path)]) == 0
    out = capsys.readouterr().out
    assert "i3d.onnx" in out and "classifier.onnx" in out
    code = cli.main(["verify", str(bundle_copy.path), "--backend", "onnxruntime-cpu-fp32", "--backend",
                     "torch-cpu-fp32", "--frames", "9", "--batch", "1", "--no-record"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "onnxruntime-cpu-fp32" in out and "overall: PASS" in out
    assert not (bundle_copy.path / art.VERDICT_FILE).exists()
    assert cli.main(["verify", str(bundle_copy.path), "--backend", "torch-tpu-fp8"]) == 2
    assert "unknown backend" in capsys.readouterr().err


def test_cli_build_without_tensorrt_says_how_to_get_it(bundle_copy, capsys):
    import importlib.util

    import torch

    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are present: see test_trtb_tensorrt.py")
    assert cli.main(["build", str(bundle_copy.path)]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not installed" in err or "no CUDA GPU" in err
    assert len(err.strip().splitlines()) == 1 and "Building" not in err, err  # the reason only, not a start line
