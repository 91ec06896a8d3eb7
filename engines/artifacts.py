"""Where derived model files live inside a bundle, and the metadata keys they carry.

Shared by the exporter (:mod:`semiostream.trt_build.export`) and the backends that read the files
(ONNX Runtime, TensorRT), so both sides agree without importing each other. Each consumer has its own
ONNX files, exported with its own ranges, so building TensorRT engines never rewrites the files ONNX
Runtime reads (or the reverse)::

    <bundle>/onnx/i3d.onnx, <bundle>/onnx/classifier.onnx                  ONNX Runtime (fp32)
    <bundle>/onnx/tensorrt/<model>_<precision>.onnx                       TensorRT builds (typed fp16/bf16, fp32)
    <bundle>/engines/<model>_b<maxbatch>_<sm-arch>_<precision>_trt<version>.engine (+ .json sidecar)
    <bundle>/openvino_cache/                                               OpenVINO compiled models
    <bundle>/verified_backends.json
"""

from __future__ import annotations

import json
from pathlib import Path

ONNX_DIR = "onnx"
ENGINE_DIR = "engines"
VERDICT_FILE = "verified_backends.json"
#: OpenVINO's compiled-model cache (``CACHE_DIR``) inside a bundle
OPENVINO_CACHE_DIR = "openvino_cache"
#: who reads an ONNX file (each has its own copy; see the module docstring)
ONNX_CONSUMERS = ("onnxruntime", "tensorrt")
#: model name per engine role (file stems)
MODEL_FOR_ROLE = {"features": "i3d", "classifier": "classifier"}

# ONNX metadata_props keys
META_PREFIX = "semiostream."
META_BUNDLE_ID = META_PREFIX + "bundle_id"
META_MODEL = META_PREFIX + "model"
META_ROLE = META_PREFIX + "role"
META_PREPROCESS = META_PREFIX + "preprocess"
META_LABELS = META_PREFIX + "labels"
META_IO = META_PREFIX + "io"
META_VERSION = META_PREFIX + "version"
META_EXPORTER = META_PREFIX + "exporter"
META_PRECISION = META_PREFIX + "precision"


def bundle_dir(bundle) -> Path:
    """Directory of a loaded bundle or a path."""
    return Path(bundle.path if hasattr(bundle, "path") else bundle)


def onnx_path(bundle, role: str, precision: str = "fp32", consumer: str = "onnxruntime") -> Path:
    """The ONNX file of an engine role for one consumer.

    ``consumer="onnxruntime"``: ``<bundle>/onnx/<model>.onnx`` (fp32 only). ``consumer="tensorrt"``:
    ``<bundle>/onnx/tensorrt/<model>_<precision>.onnx`` (fp32, or the typed fp16 / bf16 I3D that
    strongly typed TensorRT builds use).
    """
    if consumer == "onnxruntime":
        if precision != "fp32":
            raise ValueError(f"ONNX Runtime reads fp32 models only, not {precision}")
        return bundle_dir(bundle) / ONNX_DIR / f"{MODEL_FOR_ROLE[role]}.onnx"
    if consumer == "tensorrt":
        return bundle_dir(bundle) / ONNX_DIR / "tensorrt" / f"{MODEL_FOR_ROLE[role]}_{precision}.onnx"
    raise ValueError(f"unknown ONNX consumer {consumer!r}; use one of {ONNX_CONSUMERS}")


def io_from_metadata(meta: dict[str, str]) -> dict:
    """The exported I/O description (``IOSpec.to_dict()``) from ONNX custom metadata."""
    return json.loads(meta[META_IO])


