"""Build TensorRT engines from a bundle's ONNX exports (TensorRT 10.x and 11.x Python API).

Precision lives in the ONNX graph, not in builder flags: TensorRT 11 removed the weak-typing flags
(``BuilderFlag.FP16`` / ``BF16``), so fp16 / bf16 engines are built from a *typed* export
(``<bundle>/onnx/i3d_fp16.onnx``: BN folded, fp16 weights and activations, fp32 I/O; see
:func:`semiostream.trt_build.export.export_model`) as a strongly typed network
(``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` on 10.x, always on in 11.x). The same code path
therefore builds the same engine on both major versions. The classifier engine is always fp32.

The I3D profile covers batch ``1..max_batch`` and frames ``min/opt/max`` = ``9/60/60``. A timing cache per
GPU architecture and TensorRT version (``<bundle>/engines/timing_<sm>_trt<version>.cache``) makes rebuilds
fast; one that TensorRT rejects (another GPU or version, damaged) is replaced by a fresh one, never reused
silently. The ONNX files are TensorRT's own (``<bundle>/onnx/tensorrt/``), apart from ONNX Runtime's.
:func:`engine_from_onnx` writes the engine with its sidecar (:mod:`semiostream.engines.trt_files`) and reuses a
fresh one; a stale or foreign engine is rebuilt, never loaded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from semiostream.core.batching import ENGINE_MAX_BATCH, EXPORT_MAX_BATCH
from semiostream.core.files import atomic_write
from semiostream.engines import artifacts as art
from semiostream.engines import trt_files
from semiostream.engines.base import MAX_FRAMES, MIN_FRAMES
from semiostream.engines.trt_files import TensorRTError, gpu_facts, import_tensorrt
from semiostream.models.bundle import Bundle, load_bundle

log = logging.getLogger(__name__)

DEFAULT_FRAMES = (MIN_FRAMES, 60, 60)


class BuildError(TensorRTError):
    """TensorRT could not build an engine."""


def expected_for(bundle: Bundle, role: str, precision: str, max_batch: int,
                 frames: tuple[int, int, int] | None, onnx_sha256: str | None = None,
                 build_flags: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Engine path and expected sidecar for these settings on this GPU and TensorRT."""
    trt = import_tensorrt()
    gpu, sm = gpu_facts()
    model = art.MODEL_FOR_ROLE[role]
    path = trt_files.engine_path(bundle, model, max_batch, sm, precision, trt.__version__)
    exp = trt_files.expected_sidecar(bundle.meta, model, role, precision, max_batch,
                                     frames if role == "features" else None, trt.__version__, gpu, sm,
                                     onnx_sha256, build_flags)
    return path, exp


def timing_cache_path(bundle, sm: str, trt_version: str) -> Path:
    """``<bundle>/engines/timing_<sm>_trt<version>.cache``: one timing cache per GPU architecture and
    TensorRT version (tactic timings of one GPU mean nothing on another)."""
    return art.bundle_dir(bundle) / art.ENGINE_DIR / f"timing_{sm}_trt{trt_version}.cache"


def attach_timing_cache(config: Any, path: Path) -> Any:
    """Load ``path`` (if any) into ``config``; returns the ``ITimingCache`` in use.

    ``set_timing_cache(..., ignore_mismatch=False)`` returns False for a cache of another device or
    TensorRT version, and ``create_timing_cache`` raises on a damaged one: both cases are logged and a
    fresh, empty cache is used (and written back over the bad file after the build).
    """
    blob = path.read_bytes() if path.is_file() else b""
    if blob:
        try:
            tc = config.create_timing_cache(blob)
        except Exception as e:  # damaged file
            log.warning("timing cache %s is unreadable (%s); starting a new one", path, e)
            tc = None
        if tc is not None and config.set_timing_cache(tc, ignore_mismatch=False):
            return tc
        if tc is not None:
            log.warning("TensorRT rejected timing cache %s (made on another GPU or TensorRT version); starting a "
                        "new one", path)
    tc = config.create_timing_cache(b"")
    if not config.set_timing_cache(tc, ignore_mismatch=False):
        raise BuildError("TensorRT refused an empty timing cache; build with timing_cache=None")
    return tc


def _build_serialized(onnx_file: Path, role: str, max_batch: int, frames: tuple[int, int, int],
                      timing_cache: Path | None, workspace_gib: float | None) -> bytes:
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly is not None:  # 10.x: opt in; 11.x: accepted, always on
        flags |= 1 << int(strongly)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"TensorRT cannot parse {onnx_file}: {errors}")
    config = builder.create_builder_config()
    if hasattr(trt.BuilderFlag, "TF32"):  # fp32 layers stay fp32 (TF32 would miss the 1e-4 tolerance)
        config.clear_flag(trt.BuilderFlag.TF32)
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    profile = builder.create_optimization_profile()
    inp = network.get_input(0)
    if role == "features":
        c, s = inp.shape[1], inp.shape[3]
        lo, opt, hi = frames
        profile.set_shape(inp.name, (1, c, lo, s, s), (max_batch, c, opt, s, s), (max_batch, c, hi, s, s))
    else:
        steps, dim = inp.shape[1], inp.shape[2]
        profile.set_shape(inp.name, (1, steps, dim), (max_batch, steps, dim), (max_batch, steps, dim))
    config.add_optimization_profile(profile)
    tc = attach_timing_cache(config, timing_cache) if timing_cache is not None else None
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT failed to build an engine from {onnx_file} (see the log above)")
    if tc is not None:
        atomic_write(timing_cache, bytes(tc.serialize()))
    return bytes(serialized)


def engine_from_onnx(bundle: Bundle | str | os.PathLike, role: str = "features", precision: str = "fp16",
                     max_batch: int = ENGINE_MAX_BATCH, frames: tuple[int, int, int] = DEFAULT_FRAMES,
                     timing_cache: str | os.PathLike | None = "default", workspace_gib: float | None = None,
                     force: bool = False) -> Path:
    """Build (or reuse) the TensorRT engine of one model of a bundle.

    Args:
        bundle: bundle directory or loaded :class:`Bundle`.
        role: ``"features"`` (I3D) or ``"classifier"`` (always built fp32).
        precision: ``"fp16"`` (default), ``"bf16"`` or ``"fp32"`` for the I3D.
        max_batch: largest batch of the optimisation profile (batch 1..max_batch).
        frames: I3D profile ``(min, opt, max)`` frames, ``(9, 60, 60)`` by default.
        timing_cache: path of a TensorRT timing cache; ``"default"`` = :func:`timing_cache_path` (one per GPU
            architecture and TensorRT version); None disables it.
        force: rebuild even if a fresh engine exists.

    Returns:
        Path of the engine (its sidecar is ``<path>.json``).
    """
    from .export import ensure_onnx

    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    if role == "classifier":
        precision = "fp32"
    if precision not in trt_files.PRECISIONS:
        raise BuildError(f"precision {precision!r}; use one of {trt_files.PRECISIONS}")
    lo, opt, hi = frames
    if not MIN_FRAMES <= lo <= opt <= hi:
        raise BuildError(f"frames profile {frames} must satisfy {MIN_FRAMES} <= min <= opt <= max")
    onnx_file = ensure_onnx(b, role, precision, max_batch=max(max_batch, EXPORT_MAX_BATCH),
                            max_frames=max(hi, MAX_FRAMES), consumer="tensorrt")
    onnx_sha = trt_files.sha256_bytes(onnx_file.read_bytes())
    flags = {"strongly_typed": True, "workspace_gib": workspace_gib, "opt_batch": max_batch}
    path, expected = expected_for(b, role, precision, max_batch, tuple(frames), onnx_sha, flags)
    problems = trt_files.check_engine(path, expected)
    if not force and not problems:
        log.info("%s is up to date", path)
        return path
    if path.exists():
        log.warning("rebuilding %s: %s", path.name, "; ".join(problems) or "forced")
    if timing_cache == "default":
        tc = timing_cache_path(b, expected["sm"], expected["tensorrt"])
    else:
        tc = Path(timing_cache) if timing_cache else None
    engine_bytes = _build_serialized(onnx_file, role, max_batch, tuple(frames), tc, workspace_gib)
    return trt_files.write_engine(path, engine_bytes, expected)


def build_bundle_engines(bundle: Bundle | str | os.PathLike, precision: str = "fp16",
                         max_batch: int = ENGINE_MAX_BATCH, frames: tuple[int, int, int] = DEFAULT_FRAMES,
                         force: bool = False, **kw) -> dict[str, Path]:
    """Both engines of a bundle: ``{"features": i3d engine, "classifier": classifier engine}``."""
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    return {role: engine_from_onnx(b, role, precision, max_batch, frames, force=force, **kw)
            for role in ("features", "classifier")}
