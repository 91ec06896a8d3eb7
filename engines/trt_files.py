"""TensorRT engine files inside a bundle: naming, JSON sidecar, staleness, the fresh one for this GPU.

Written by :mod:`semiostream.trt_build.build`, read by the TensorRT backend (:mod:`.backend_tensorrt`); like
:mod:`.artifacts`, the one place both sides agree on, so the backend never imports the builder.

An engine lives at ``<bundle>/engines/<model>_b<maxbatch>_<sm-arch>_<precision>_trt<version>.engine``
(``i3d_b16_sm90_fp16_trt10.13.0.engine``) with a sidecar ``<same name>.json``::

    {"format": "semiostream-trt-engine", "version": 1, "model": "i3d", "role": "features",
     "bundle_id": "...", "bundle_files": {"i3d.safetensors": "<sha256>", ...}, "onnx_sha256": "...",
     "engine_sha256": "...", "tensorrt": "10.13.0", "gpu": "NVIDIA H100 80GB HBM3", "sm": "sm90",
     "precision": "fp16", "max_batch": 16, "frames": [9, 60, 60], "build_flags": {...}, "built_at": "..."}

:func:`check_engine` lists every reason an engine must not be used (missing sidecar, engine bytes
changed, another bundle or bundle version, another TensorRT, another GPU architecture or GPU, other
build settings). :func:`load_engine_bytes` refuses such a file: a stale or foreign engine is rebuilt by
``semiostream build``, never loaded. Importable without TensorRT (:func:`import_tensorrt` imports it).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from semiostream.core.batching import ENGINE_MAX_BATCH
from semiostream.core.files import atomic_write

from . import artifacts as art

SIDECAR_FORMAT = "semiostream-trt-engine"
SIDECAR_VERSION = 1
PRECISIONS = ("fp16", "bf16", "fp32")
#: the max batch an engine is built for when none is given (`semiostream build --max-batch`)


class StaleEngineError(RuntimeError):
    """An engine file must not be loaded (stale, foreign or damaged); rebuild it."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        super().__init__(f"TensorRT engine {path} cannot be used: {'; '.join(problems)}. "
                         f"Rebuild it: semiostream build {path.parent.parent}")


def sm_arch(capability: tuple[int, int]) -> str:
    """``(9, 0)`` -> ``"sm90"``."""
    return f"sm{capability[0]}{capability[1]}"


def engine_name(model: str, max_batch: int, sm: str, precision: str, trt_version: str) -> str:
    """``<model>_b<maxbatch>_<sm-arch>_<precision>_trt<version>.engine``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; use one of {PRECISIONS}")
    return f"{model}_b{int(max_batch)}_{sm}_{precision}_trt{trt_version}.engine"


def engine_path(bundle, model: str, max_batch: int, sm: str, precision: str, trt_version: str) -> Path:
    return art.bundle_dir(bundle) / art.ENGINE_DIR / engine_name(model, max_batch, sm, precision, trt_version)


def sidecar_path(engine: str | os.PathLike) -> Path:
    p = Path(engine)
    return p.with_name(p.name + ".json")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_sidecar(bundle_meta: dict[str, Any], model: str, role: str, precision: str, max_batch: int,
                     frames: tuple[int, int, int] | None, trt_version: str, gpu: str, sm: str,
                     onnx_sha256: str | None = None, build_flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sidecar an engine for these settings must have (``engine_sha256``/``built_at`` are added when
    it is written)."""
    return {
        "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, "model": model, "role": role,
        "bundle_id": bundle_meta["bundle_id"], "bundle_files": dict(bundle_meta["files"]),
        "onnx_sha256": onnx_sha256, "tensorrt": trt_version, "gpu": gpu, "sm": sm, "precision": precision,
        "max_batch": int(max_batch), "frames": list(frames) if frames else None,
        "build_flags": build_flags or {},
    }


def write_engine(path: str | os.PathLike, engine_bytes: bytes, sidecar: dict[str, Any]) -> Path:
    """Write the engine and its sidecar (engine first, both atomically)."""
    p = atomic_write(path, engine_bytes)
    side = dict(sidecar, engine_sha256=sha256_bytes(engine_bytes),
                built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    atomic_write(sidecar_path(p), json.dumps(side, indent=2, sort_keys=True) + "\n")
    return p


# keys whose mismatch makes an engine unusable, with the words used to explain it
_MUST_MATCH = (
    ("bundle_id", "built for bundle {have}, this bundle is {want}"),
    ("bundle_files", "built from other weight files than this bundle's"),
    ("model", "holds model {have}, expected {want}"),
    ("tensorrt", "built with TensorRT {have}, this is TensorRT {want}"),
    ("sm", "built for GPU architecture {have}, this GPU is {want}"),
    ("gpu", "built on {have}, this GPU is {want}"),
    ("precision", "built in {have}, {want} requested"),
    ("max_batch", "built for max batch {have}, {want} requested"),
    ("frames", "built for frames profile {have}, {want} requested"),
)


def check_engine(path: str | os.PathLike, expected: dict[str, Any]) -> list[str]:
    """Every reason the engine at ``path`` must not be used for ``expected`` (``[]``: fresh).

    ``expected`` is :func:`expected_sidecar`'s dict; keys absent from it are not compared. The engine's
    bytes are hashed and compared with the sidecar's ``engine_sha256``.
    """
    p = Path(path)
    if not p.is_file():
        return [f"{p.name} does not exist"]
    side_p = sidecar_path(p)
    if not side_p.is_file():
        return [f"its sidecar {side_p.name} is missing (unknown origin)"]
    try:
        side = json.loads(side_p.read_text())
    except json.JSONDecodeError as e:
        return [f"its sidecar {side_p.name} is not valid JSON ({e})"]
    problems = []
    if side.get("format") != SIDECAR_FORMAT or side.get("version") != SIDECAR_VERSION:
        problems.append(f"sidecar format {side.get('format')!r} v{side.get('version')!r} is not "
                        f"{SIDECAR_FORMAT} v{SIDECAR_VERSION}")
    for key, words in _MUST_MATCH:
        if key in expected and side.get(key) != expected[key]:
            problems.append(words.format(have=side.get(key), want=expected[key]))
    if sha256_bytes(p.read_bytes()) != side.get("engine_sha256"):
        problems.append("the engine file's sha256 differs from its sidecar (modified or truncated)")
    return problems


def load_engine_bytes(path: str | os.PathLike, expected: dict[str, Any]) -> bytes:
    """The engine's bytes if it is fresh for ``expected``; :class:`StaleEngineError` otherwise."""
    p = Path(path)
    problems = check_engine(p, expected)
    if problems:
        raise StaleEngineError(p, problems)
    return p.read_bytes()


class TensorRTError(RuntimeError):
    """TensorRT is not installed, sees no GPU, or could not build or load an engine."""


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise TensorRTError("TensorRT is not installed: pip install 'semiostream[trt]' on a machine with an "
                            "NVIDIA GPU") from e
    return trt


def gpu_facts() -> tuple[str, str]:
    """``(gpu name, sm arch)`` of the current CUDA device."""
    import torch

    if not torch.cuda.is_available():
        raise TensorRTError("TensorRT engines are built on the GPU that will run them; torch sees no CUDA GPU")
    dev = torch.cuda.current_device()
    return torch.cuda.get_device_name(dev), sm_arch(torch.cuda.get_device_capability(dev))


def find_engine(bundle, role: str, precision: str, max_batch: int | None = None) -> Path:
    """The fresh engine of ``bundle`` (a loaded :class:`~semiostream.models.bundle.Bundle`) for ``role``/``precision``
    on this GPU and TensorRT (largest max batch if several).

    Raises:
        StaleEngineError: no engine, or only stale / foreign ones; the message says how to build.
    """
    trt = import_tensorrt()
    gpu, sm = gpu_facts()
    model = art.MODEL_FOR_ROLE[role]
    if role == "classifier":
        precision = "fp32"
    folder = art.bundle_dir(bundle) / art.ENGINE_DIR
    pattern = f"{model}_b*_{sm}_{precision}_trt{trt.__version__}.engine"
    candidates = sorted(folder.glob(pattern), key=lambda p: int(p.name.split("_b")[1].split("_")[0]),
                        reverse=True)
    if max_batch is not None:
        candidates = [p for p in candidates if p.name.startswith(f"{model}_b{max_batch}_")]
    why = []
    for p in candidates:
        mb = int(p.name.split("_b")[1].split("_")[0])
        exp = expected_sidecar(bundle.meta, model, role, precision, mb, None, trt.__version__, gpu, sm)
        exp.pop("frames")
        problems = check_engine(p, exp)
        if not problems:
            return p
        why.append(f"{p.name}: {'; '.join(problems)}")
    raise StaleEngineError(
        folder / engine_name(model, max_batch or ENGINE_MAX_BATCH, sm, precision, trt.__version__),
        why or [f"no {precision} {model} engine for {sm} / TensorRT {trt.__version__} in {folder}"],
    )
