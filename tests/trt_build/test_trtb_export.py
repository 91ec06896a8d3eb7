"""ONNX export: metadata, checker, inferred shapes, dynamic batch and frames, reuse and staleness."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from semiostream.engines import artifacts as art
from semiostream.models.bundle import load_bundle
from semiostream.trt_build.export import (
    BF16_MIN_OPSET,
    ExportError,
    ensure_onnx,
    export_model,
    onnx_from_bundle,
    read_metadata,
)


def test_metadata_and_graph(trtb_bundle, trtb_onnx):
    for role, path in trtb_onnx.items():
        assert path == trtb_bundle.path / "onnx" / f"{art.MODEL_FOR_ROLE[role]}.onnx"
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
        assert len(model.graph.value_info) > 0  # shapes were inferred
        meta = read_metadata(path)
        assert meta[art.META_BUNDLE_ID] == trtb_bundle.bundle_id and meta[art.META_ROLE] == role
        assert json.loads(meta[art.META_LABELS]) == list(trtb_bundle.labels)
        assert json.loads(meta[art.META_PREPROCESS]) == trtb_bundle.spec.to_dict()
        io = json.loads(meta[art.META_IO])
        assert io["dims"]["batch"] == [1, 64]
        assert not any(n.op_type == "Loop" for n in model.graph.node)
    feats = onnx.load(str(trtb_onnx["features"]), load_external_data=False)
    dims = feats.graph.input[0].type.tensor_type.shape.dim
    assert feats.graph.input[0].name == "frames" and [d.dim_value for d in dims[3:]] == [224, 224]
    assert dims[0].dim_param and dims[2].dim_param and dims[1].dim_value == 1  # dynamic batch, frames
    assert json.loads(read_metadata(trtb_onnx["features"])[art.META_IO])["dims"]["frames"] == [9, 64]


def test_dynamic_shapes_run_in_onnxruntime(trtb_bundle, trtb_onnx):
    sess = ort.InferenceSession(str(trtb_onnx["features"]), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (3, 1, 11, 224, 224)).astype(np.float32)  # odd T, batch 3
    (y,) = sess.run(None, {"frames": x})
    with torch.inference_mode():
        ref = trtb_bundle.i3d.extract_features(torch.from_numpy(x)).numpy()
    assert y.shape == (3, 1, 1024)
    assert np.abs(y - ref).max() / np.abs(ref).max() <= 1e-4
    cls = ort.InferenceSession(str(trtb_onnx["classifier"]), providers=["CPUExecutionProvider"])
    f = np.abs(np.random.default_rng(1).normal(0, 0.5, (5, 7, 1024))).astype(np.float32)
    f[:3, :4] = -1
    (p,) = cls.run(None, {"features": f})
    with torch.inference_mode():
        ref_p = trtb_bundle.classifier(torch.from_numpy(f)).numpy()
    assert p.shape == (5,) and np.abs(p - ref_p).max() <= 1e-5


def test_up_to_date_files_are_reused_and_foreign_ones_replaced(trtb_bundle, trtb_onnx, other_bundle_dir):
    mtimes = {r: p.stat().st_mtime_ns for r, p in trtb_onnx.items()}
    again = onnx_from_bundle(trtb_bundle)
    assert {r: p.stat().st_mtime_ns for r, p in again.items()} == mtimes
    other = load_bundle(other_bundle_dir)
    dst = art.onnx_path(other, "classifier")
    dst.parent.mkdir(exist_ok=True)
    dst.write_bytes(trtb_onnx["classifier"].read_bytes())  # another bundle's export lands here
    assert read_metadata(dst)[art.META_BUNDLE_ID] == trtb_bundle.bundle_id
    export_model_called = onnx_from_bundle(other)
    assert read_metadata(export_model_called["classifier"])[art.META_BUNDLE_ID] == other.bundle_id


def test_rejects_old_opsets_and_unknown_roles(trtb_bundle, tmp_path):
    with pytest.raises(ExportError, match="opset 13 is too old"):
        export_model(trtb_bundle, "features", tmp_path / "x.onnx", opset=13)
    with pytest.raises(ExportError, match="unknown role"):
        export_model(trtb_bundle, "detector", tmp_path / "x.onnx")
    with pytest.raises(ExportError, match="fp32 only"):
        export_model(trtb_bundle, "classifier", tmp_path / "x.onnx", precision="fp16")
    with pytest.raises(ExportError, match="bf16 model needs opset 22"):  # Conv/MaxPool/AveragePool bf16: opset 22
        export_model(trtb_bundle, "features", tmp_path / "x.onnx", opset=18, precision="bf16")


def test_tensorrt_exports_never_touch_onnxruntime_files(trtb_bundle, trtb_onnx):
    """Each consumer has its own files: a TensorRT-range export leaves ONNX Runtime's file as it was."""
    ort_file = trtb_onnx["classifier"]
    before = (ort_file.stat().st_mtime_ns, ort_file.read_bytes())
    trt_file = ensure_onnx(trtb_bundle, "classifier", "fp32", max_batch=128, consumer="tensorrt")
    assert trt_file == trtb_bundle.path / "onnx" / "tensorrt" / "classifier_fp32.onnx" != ort_file
    assert json.loads(read_metadata(trt_file)[art.META_IO])["dims"]["batch"] == [1, 128]
    assert (ort_file.stat().st_mtime_ns, ort_file.read_bytes()) == before
    assert json.loads(read_metadata(ort_file)[art.META_IO])["dims"]["batch"] == [1, 64]
    again = onnx_from_bundle(trtb_bundle)  # and ONNX Runtime's export is still current: not rewritten
    assert again["classifier"].stat().st_mtime_ns == before[0]
    with pytest.raises(ValueError, match="fp32 models only"):
        art.onnx_path(trtb_bundle, "features", "fp16", consumer="onnxruntime")


TYPED = ["fp16", "bf16"]


def test_every_offered_tensorrt_precision_has_an_export_that_can_express_it():
    """A TensorRT backend is offered only for a precision whose typed export exists and whose default opset
    can express it (bf16 Conv/MaxPool need opset 22); test_typed_exports_* below exports and checks each."""
    from semiostream.engines import trt_files
    from semiostream.engines.registry import BACKENDS
    from semiostream.trt_build.export import check_opset, default_opset

    offered = {info.precision for name, info in BACKENDS.items() if name.startswith("tensorrt-")}
    assert offered == set(trt_files.PRECISIONS) == {"fp32", *TYPED}
    for precision in offered:
        check_opset(default_opset(precision), precision)  # raises ExportError if the opset cannot express it
    assert default_opset("bf16") == BF16_MIN_OPSET == 22


def _typed_export_checks(path, precision: str) -> onnx.ModelProto:
    """Structure of a typed export: checker-clean, fp32 I/O, weights and every Conv / MaxPool in ``precision``."""
    want = {"fp16": onnx.TensorProto.FLOAT16, "bf16": onnx.TensorProto.BFLOAT16}[precision]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    assert read_metadata(path)[art.META_PRECISION] == precision
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
    assert len(convs) >= 57 and pools  # every I3D convolution, in the typed precision
    assert all(types.get(n.input[1]) == want for n in convs), "a Conv weight is not in the typed precision"
    assert all(types.get(n.output[0]) == want for n in convs + pools), "a Conv/MaxPool output is not typed"
    return model


def _ort_cpu_session(path):
    """An ONNX Runtime CPU session, or None where ORT has no CPU kernel for a typed op (bf16 Conv)."""
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # NOT_IMPLEMENTED: Could not find an implementation for Conv(22) ...
        if "NOT_IMPLEMENTED" in str(e) or "implementation" in str(e):
            return None
        raise


@pytest.mark.slow
@pytest.mark.parametrize("precision", TYPED)
def test_typed_exports_for_strongly_typed_tensorrt(trtb_bundle, precision, tmp_path):
    path = ensure_onnx(trtb_bundle, "features", precision, consumer="tensorrt")
    assert path == trtb_bundle.path / "onnx" / "tensorrt" / f"i3d_{precision}.onnx"
    model = _typed_export_checks(path, precision)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= (BF16_MIN_OPSET if precision == "bf16" else 17)
    sess = _ort_cpu_session(path)
    if sess is None:
        assert precision == "bf16", "ONNX Runtime CPU runs fp16 Conv; only bf16 may lack kernels"
        return  # structure and the full checker above are what a CPU can prove for bf16
    for t in (9, 24):  # one and three feature steps: the frame count stayed dynamic
        x = np.random.default_rng(t).uniform(-1, 1, (1, 1, t, 224, 224)).astype(np.float32)
        (y,) = sess.run(None, {"frames": x})
        with torch.inference_mode():
            ref = trtb_bundle.i3d.extract_features(torch.from_numpy(x)).numpy()
        cos = float((y * ref).sum() / np.linalg.norm(y) / np.linalg.norm(ref))
        assert y.shape == ref.shape and cos >= 0.999, (t, cos)
