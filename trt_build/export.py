"""Export a bundle's two models to ONNX, with the bundle's metadata inside each file.

``onnx_from_bundle(bundle)`` writes ``<bundle>/onnx/i3d.onnx`` (input ``frames`` ``[batch, C, frames,
224, 224]`` float32, batch 1..64, frames 9..64; output ``features`` ``[batch, steps, 1024]``) and
``<bundle>/onnx/classifier.onnx`` (input ``features`` ``[batch, 7, 1024]``, batch 1..64; output ``p_tle``
``[batch]``) with the torch.export-based exporter (``dynamo=True``), opset 18 by default. TensorRT builds
read their own files, ``<bundle>/onnx/tensorrt/<model>_<precision>.onnx`` (:func:`ensure_onnx` with
``consumer="tensorrt"``), exported with ranges that cover the engine's profile, so building engines never
rewrites the files ONNX Runtime reads. Typed bf16 exports use opset 22, the first whose ``Conv``,
``MaxPool`` and ``AveragePool`` accept ``tensor(bfloat16)`` (TensorRT's ONNX parser reads opsets 9..24
in 10.15 and 11.x). Each file
carries in ``metadata_props``: bundle id, model and role, preprocessing spec, labels, the I/O description
with its dynamic ranges, the semiostream version and the exporter. Each file is ``onnx.checker`` clean and
has inferred shapes. An existing file with the same bundle id, opset and ranges is reused.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from semiostream import __version__
from semiostream.core.batching import EXPORT_MAX_BATCH
from semiostream.core.files import replacing
from semiostream.engines import artifacts as art
from semiostream.engines.base import MAX_FRAMES, classifier_io, feature_io
from semiostream.models.bundle import Bundle, load_bundle

log = logging.getLogger(__name__)

MIN_OPSET = 17
DEFAULT_OPSET = 18
#: first opset whose Conv / MaxPool / AveragePool take bfloat16 (opset 22 added it to their type lists)
BF16_MIN_OPSET = 22


class ExportError(RuntimeError):
    """ONNX export failed or produced an invalid model."""


def default_opset(precision: str = "fp32") -> int:
    """The opset a model of this precision is exported with: 22 for bf16, 18 otherwise."""
    return BF16_MIN_OPSET if precision == "bf16" else DEFAULT_OPSET


def check_opset(opset: int, precision: str = "fp32") -> None:
    """:class:`ExportError` when ``opset`` cannot express a model of ``precision``."""
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old; use {MIN_OPSET} or newer (default {DEFAULT_OPSET})")
    if precision == "bf16" and opset < BF16_MIN_OPSET:
        raise ExportError(f"a bf16 model needs opset {BF16_MIN_OPSET} or newer (ONNX Conv, MaxPool and AveragePool "
                          f"take bfloat16 only from opset {BF16_MIN_OPSET}); got opset {opset}")


class _Features(nn.Module):
    def __init__(self, i3d: nn.Module) -> None:
        super().__init__()
        self.i3d = i3d

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.i3d.extract_features(frames)


class _Classifier(nn.Module):
    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)


def _metadata(bundle: Bundle, role: str, io: dict, opset: int, precision: str = "fp32") -> dict[str, str]:
    return {
        art.META_PRECISION: precision,
        art.META_BUNDLE_ID: bundle.bundle_id,
        art.META_MODEL: art.MODEL_FOR_ROLE[role],
        art.META_ROLE: role,
        art.META_PREPROCESS: json.dumps(bundle.spec.to_dict(), sort_keys=True),
        art.META_LABELS: json.dumps(list(bundle.labels)),
        art.META_IO: json.dumps(io, sort_keys=True),
        art.META_VERSION: __version__,
        art.META_EXPORTER: f"torch {torch.__version__} dynamo opset {opset}",
    }


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """``metadata_props`` of an ONNX file as a dict (loads the graph without external data)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _is_current(path: Path, want: dict[str, str]) -> bool:
    if not path.is_file():
        return False
    try:
        have = read_metadata(path)
    except Exception:
        return False
    keys = (art.META_BUNDLE_ID, art.META_IO, art.META_EXPORTER, art.META_PREPROCESS, art.META_LABELS,
            art.META_PRECISION)
    return all(have.get(k) == want[k] for k in keys)


def export_model(bundle: Bundle, role: str, path: str | os.PathLike, opset: int | None = None,
                 max_batch: int = EXPORT_MAX_BATCH, max_frames: int = MAX_FRAMES, precision: str = "fp32") -> Path:
    """Export one model (``role`` ``"features"`` or ``"classifier"``) of ``bundle`` to ``path``.

    ``precision`` ``"fp16"``/``"bf16"`` (features only) exports a *typed* reduced-precision I3D for
    strongly typed TensorRT builds (TensorRT 11 removed the FP16/BF16 builder flags): BatchNorm folded,
    weights and activations in that type, float32 input and output (casts at the graph's ends), average
    pool in float32 -- the same computation as the torch backend's low-precision engine. ``opset`` None
    means :func:`default_opset` of the precision (22 for bf16, 18 otherwise).
    """
    import onnx

    opset = default_opset(precision) if opset is None else int(opset)
    check_opset(opset, precision)
    if precision not in ("fp32", "fp16", "bf16"):
        raise ExportError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    if role == "features":
        io = feature_io(bundle.in_channels, bundle.spec.size, max_batch, max_frames=max_frames)
        frames = torch.export.Dim("frames", min=io.dims["frames"][0], max=max_frames)
        if precision == "fp32":
            module: nn.Module = _Features(bundle.i3d).eval()
        else:
            from semiostream.engines.backend_torch import optimized_i3d

            module = optimized_i3d(bundle.i3d, "cpu", precision, fold_bn=True, channels_last=False)
        sample = (torch.zeros(2, bundle.in_channels, 16, bundle.spec.size, bundle.spec.size),)
        dynamic = {"frames": {0: batch, 2: frames}}
    elif role == "classifier":
        if precision != "fp32":
            raise ExportError("the classifier is exported in fp32 only (it runs in fp32 on every backend)")
        io = classifier_io(max_batch)
        module = _Classifier(bundle.classifier).eval()
        sample = (torch.zeros(2, io.inputs[0].shape[1], io.inputs[0].shape[2]),)
        dynamic = {"features": {0: batch}}
    else:
        raise ExportError(f"unknown role {role!r}")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, sample, str(tmp), dynamo=True, opset_version=opset, dynamic_shapes=dynamic,
                input_names=list(io.input_names), output_names=list(io.output_names), external_data=False,
                verbose=False,
            )
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"exporting the {role} model of bundle {bundle.path} to ONNX failed: {e}") from e
    model = onnx.load(str(tmp))
    tmp.unlink(missing_ok=True)
    del model.metadata_props[:]
    for k, v in _metadata(bundle, role, io.to_dict(), opset, precision).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    model.doc_string = (f"semiostream bundle {bundle.bundle_id}: {art.MODEL_FOR_ROLE[role]} "
                        f"({role}); see metadata_props")
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    with replacing(out) as t:
        onnx.save(model, str(t))
    return out


def ensure_onnx(bundle: Bundle, role: str, precision: str = "fp32", force: bool = False,
                opset: int | None = None, max_batch: int = EXPORT_MAX_BATCH, max_frames: int = MAX_FRAMES,
                consumer: str = "onnxruntime") -> Path:
    """The ONNX file of ``role`` for ``consumer`` (:func:`~semiostream.engines.artifacts.onnx_path`),
    exported unless an up-to-date file is there (same bundle, precision, opset, exporter and ranges)."""
    b = bundle
    opset = default_opset(precision) if opset is None else int(opset)
    path = art.onnx_path(b, role, precision, consumer)
    io = (feature_io(b.in_channels, b.spec.size, max_batch, max_frames=max_frames)
          if role == "features" else classifier_io(max_batch))
    if not force and _is_current(path, _metadata(b, role, io.to_dict(), opset, precision)):
        log.info("%s is up to date", path)
    else:
        log.info("exporting %s model (%s) for %s to %s (opset %d)", role, precision, consumer, path, opset)
        export_model(b, role, path, opset, max_batch, max_frames, precision)
    return path


def onnx_from_bundle(bundle: Bundle | str | os.PathLike, force: bool = False, opset: int = DEFAULT_OPSET,
                     max_batch: int = EXPORT_MAX_BATCH, max_frames: int = MAX_FRAMES) -> dict[str, Path]:
    """Export both models of a bundle (fp32) for ONNX Runtime to ``<bundle>/onnx/`` (reusing up-to-date
    files unless ``force``).

    Returns:
        ``{"features": path_of_i3d_onnx, "classifier": path_of_classifier_onnx}``.
    """
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    return {role: ensure_onnx(b, role, "fp32", force, opset, max_batch, max_frames)
            for role in ("features", "classifier")}
