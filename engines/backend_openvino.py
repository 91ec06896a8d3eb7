"""OpenVINO backend: the bundle's ONNX export compiled by OpenVINO's CPU plugin (fp32, and bf16 where the
CPU has it).

Reads the fp32 files ``semiostream export`` writes (``<bundle>/onnx/<model>.onnx``, the ones ONNX Runtime
reads) and refuses a file whose ``semiostream.bundle_id`` metadata names another bundle. Precision is set
explicitly (``INFERENCE_PRECISION_HINT`` ``f32`` / ``bf16``): on a CPU with AVX512-BF16 or AMX OpenVINO's
default would otherwise silently be bf16, and ``openvino-cpu-fp32`` must stay the exact fp32 model.

The feature engine compiles a *static* ``[1, C, spec.window, S, S]`` model for windows of the bundle's
standard length (a batch runs window by window, as the compiled torch graph does: batching gains nothing
per window on a few cores) and, on first use only, a dynamic one for leftover lengths. The classifier runs
in OpenVINO fp32 (dynamic batch).

Compiled models are cached (OpenVINO ``CACHE_DIR``) in ``<bundle>/openvino_cache/`` (the user cache,
``~/.cache/semiostream/openvino/<bundle_id>``, when the bundle is read-only), so a restarted scorer
imports the compiled blob instead of compiling again. OpenVINO keys the cache on the model, the device and
the compile options, so a changed export or option never reuses a stale blob.

``openvino`` is an optional dependency (``pip install 'semiostream[openvino]'``), imported only here.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path

import numpy as np
import torch

from semiostream.core.device import Device

from . import artifacts as art
from .base import Engine, EngineError, IOSpec

log = logging.getLogger(__name__)

#: OpenVINO's spelling of each precision (``INFERENCE_PRECISION_HINT``)
PRECISION_HINT = {"fp32": "f32", "bf16": "bf16"}
INSTALL_HINT = "pip install 'semiostream[openvino]'"


def _ov():
    try:
        import openvino
    except ImportError as e:
        raise EngineError(f"OpenVINO is not installed; {INSTALL_HINT}") from e
    return openvino


@functools.lru_cache(maxsize=1)
def _core():
    """One ``openvino.Core`` per process (it loads the device plugins once)."""
    return _ov().Core()


@functools.lru_cache(maxsize=1)
def cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU plugin (``FP32``, ``BF16``, ``INT8`` ...)."""
    return tuple(str(c) for c in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def bf16_supported() -> bool:
    """True when OpenVINO's CPU plugin computes bf16 natively here (AVX512-BF16 or AMX)."""
    return "BF16" in cpu_capabilities()


def cache_dir(bundle) -> Path:
    """Where compiled models of ``bundle`` are cached: ``<bundle>/openvino_cache`` when the bundle folder is
    writable, else ``<user cache>/openvino/<bundle_id>``."""
    d = art.bundle_dir(bundle) / art.OPENVINO_CACHE_DIR
    try:
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    from semiostream.models.fetch import cache_dir as user_cache

    d = user_cache() / "openvino" / str(bundle.bundle_id)
    d.mkdir(parents=True, exist_ok=True)
    return d


def compile_config(precision: str, threads: int | None, cache: Path | None) -> dict[str, object]:
    """The CPU plugin options this backend compiles with (also used by the benchmarks' OpenVINO peer)."""
    if precision not in PRECISION_HINT:
        raise EngineError(f"the OpenVINO backend runs {sorted(PRECISION_HINT)}, not {precision!r}")
    cfg: dict[str, object] = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
        "INFERENCE_PRECISION_HINT": PRECISION_HINT[precision],
    }
    if cache is not None:
        cfg["CACHE_DIR"] = str(cache)
    return cfg


class OpenVinoEngine(Engine):
    """A bundle model compiled by OpenVINO for the CPU.

    Args:
        bundle: a loaded :class:`~semiostream.models.bundle.Bundle`.
        role: ``"features"`` or ``"classifier"``.
        device: the CPU (OpenVINO's GPU/NPU plugins are not used).
        precision: ``"fp32"`` or ``"bf16"`` (feature engine; the classifier is always fp32).
        threads: inference threads (default: torch's thread count).
        onnx_file: override the ONNX path (default ``<bundle>/onnx/<model>.onnx``).
        cache: compiled-model cache folder; None = :func:`cache_dir` of the bundle, False = no cache.
    """

    def __init__(self, bundle, role: str, device: Device | str = "cpu", precision: str = "fp32",
                 threads: int | None = None, onnx_file=None, cache: Path | str | bool | None = None) -> None:
        device = Device.parse(device)
        if device.kind != "cpu":
            raise EngineError(f"the OpenVINO backend runs on the CPU, not on {device}")
        if precision == "bf16" and not bf16_supported():
            raise EngineError("this CPU has no bf16 in OpenVINO (needs AVX512-BF16 or AMX); use openvino-cpu-fp32")
        path = Path(onnx_file) if onnx_file else art.onnx_path(bundle, role)
        if not path.is_file():
            raise EngineError(f"{path} does not exist; export the bundle first: semiostream export "
                              f"{art.bundle_dir(bundle)}")
        core = _core()
        model = core.read_model(str(path))
        meta = _metadata(model)
        if meta.get(art.META_BUNDLE_ID) != bundle.bundle_id:
            raise EngineError(f"{path} was exported from bundle {meta.get(art.META_BUNDLE_ID)!r}, not from this "
                              f"bundle ({bundle.bundle_id}); re-export it: semiostream export "
                              f"{art.bundle_dir(bundle)} --force")
        if meta.get(art.META_ROLE) != role:
            raise EngineError(f"{path} holds the {meta.get(art.META_ROLE)!r} model, not {role!r}")
        import json

        io = IOSpec.from_dict(json.loads(meta[art.META_IO]))
        super().__init__(io)
        self.precision = precision if role == "features" else "fp32"
        self.name = f"openvino-cpu-{precision}"
        self.device = device
        self.path = path
        cache_path = None if cache is False else (Path(cache) if cache not in (None, True) else cache_dir(bundle))
        self.config = compile_config(self.precision, threads, cache_path)
        self._lock = threading.Lock()
        self._window = int(bundle.spec.window)
        self._model = model
        self._dynamic = None
        self._static = None
        #: whether the model compiled at creation was imported from the cache (no compilation)
        self.loaded_from_cache = False
        if role == "features":
            c, s = bundle.in_channels, bundle.spec.size
            lo, hi = io.dims["frames"]
            if lo <= self._window <= hi:
                fixed = model.clone()
                fixed.reshape({io.inputs[0].name: [1, c, self._window, s, s]})
                self._static = self._compile(fixed)
        else:
            self._dynamic = self._compile(model)

    def _compile(self, model):
        compiled = _core().compile_model(model, "CPU", self.config)
        try:
            self.loaded_from_cache = bool(compiled.get_property("LOADED_FROM_CACHE"))
        except RuntimeError:  # pragma: no cover - property missing in an old OpenVINO
            pass
        return compiled.create_infer_request()

    def _request(self, x: np.ndarray):
        if self._static is not None and x.shape[0] == 1 and x.shape[2] == self._window:
            return self._static
        if self._dynamic is None:  # leftover lengths: compiled on first use only
            log.info("OpenVINO: compiling the dynamic %s model (first input of shape %s)", self.role, x.shape)
            self._dynamic = _core().compile_model(self._model, "CPU", self.config).create_infer_request()
        return self._dynamic

    def _run(self, x: np.ndarray) -> np.ndarray:
        req = self._request(x)
        req.infer({0: x}, share_inputs=True)
        return req.get_output_tensor(0).data.copy()  # the request reuses its output buffer

    def _infer_impl(self, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        x = feeds[self.io.inputs[0].name].detach().to("cpu", torch.float32).contiguous().numpy()
        with self._lock:
            if self.role == "features" and self._static is not None and x.shape[2] == self._window:
                return torch.from_numpy(np.concatenate([self._run(x[i:i + 1]) for i in range(x.shape[0])]))
            return torch.from_numpy(self._run(x))

    def _close_impl(self) -> None:
        self._static = self._dynamic = self._model = None


def _metadata(model) -> dict[str, str]:
    """The ``semiostream.*`` ONNX ``metadata_props`` (OpenVINO keeps them in ``rt_info['framework']``)."""
    try:
        fw = model.get_rt_info()["framework"]
        return {k: fw[k].astype(str) for k in fw}
    except (KeyError, RuntimeError, AttributeError, TypeError):
        return {}


def create(bundle, role: str, device: Device | str, precision: str, **options) -> OpenVinoEngine:
    """Registry factory (see :mod:`.registry`)."""
    return OpenVinoEngine(bundle, role, device=device, precision=precision, **options)
