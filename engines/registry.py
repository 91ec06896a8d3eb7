"""Every backend by name, in one dict.

A backend name is ``<library>-<device>-<precision>`` (``tensorrt-<precision>``: TensorRT is GPU-only);
``--backend NAME`` takes one of :data:`BACKENDS`' keys. Each entry knows its module (imported only when
an engine is created, so ``import semiostream.engines.registry`` stays light), its device and precision,
and how to tell whether it can run on this machine.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from .base import Engine, EngineError


def _torch_cuda() -> tuple[bool, str]:
    import torch

    return (True, "") if torch.cuda.is_available() else (False, "torch sees no CUDA GPU")


def _cuda_bf16() -> tuple[bool, str]:
    ok, why = _torch_cuda()
    if not ok:
        return ok, why
    import torch

    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return False, f"bf16 needs an Ampere or newer GPU (compute capability >= 8.0); this one is {major}.{minor}"
    return True, ""


def _cpu_bf16() -> tuple[bool, str]:
    import torch

    try:
        ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - older torch
        ok = torch.backends.mkldnn.is_available()
    return (True, "") if ok else (False, "this CPU has no bf16 support in oneDNN (needs AVX512-BF16 or AMX)")


def _always() -> tuple[bool, str]:
    return True, ""


def _ort_cuda() -> tuple[bool, str]:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False, "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu on a CUDA machine)"
    return _torch_cuda()


def _openvino() -> tuple[bool, str]:
    if importlib.util.find_spec("openvino") is None:
        return False, "OpenVINO is not installed (pip install 'semiostream[openvino]')"
    return True, ""


def _openvino_bf16() -> tuple[bool, str]:
    ok, why = _openvino()
    if not ok:
        return ok, why
    from .backend_openvino import bf16_supported

    return (True, "") if bf16_supported() else (
        False, "OpenVINO's CPU plugin has no bf16 on this CPU (needs AVX512-BF16 or AMX)")


def _tensorrt() -> tuple[bool, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return False, "TensorRT is not installed (pip install 'semiostream[trt]' on a CUDA machine)"
    return _torch_cuda()


def _tensorrt_bf16() -> tuple[bool, str]:
    ok, why = _tensorrt()
    return _cuda_bf16() if ok else (ok, why)


@dataclass(frozen=True)
class BackendInfo:
    """One entry of :data:`BACKENDS`.

    ``module`` (relative to this package) exposes ``create(bundle, role, device, precision, **options)``;
    ``device`` is the kind (``"cpu"`` / ``"cuda"``, a :attr:`semiostream.core.device.Device.kind`); the engine
    runs on :meth:`semiostream.core.device.Device.parse` of it, or of the ``device=`` option (``"cuda:1"``).
    """

    name: str
    module: str
    device: str
    precision: str
    check: Callable[[], tuple[bool, str]]
    #: a ``create``-like callable used instead of ``module`` (backends defined outside this package)
    factory: Callable[..., Engine] | None = None

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` or ``(False, reason)``."""
        try:
            return self.check()
        except Exception as e:  # a broken optional install must not break the others
            return False, f"{type(e).__name__}: {e}"

    def create(self, bundle, role: str, **options) -> Engine:
        ok, why = self.available()
        if not ok:
            raise EngineError(f"backend {self.name} is not available here: {why}")
        from semiostream.core.device import Device

        device = Device.parse(options.pop("device", self.device))
        if device.kind != self.device:
            raise EngineError(f"backend {self.name} runs on {self.device}, not on {device}")
        create = self.factory or importlib.import_module(f".{self.module}", __package__).create
        return create(bundle, role, device=device, precision=self.precision, **options)


def _b(name: str, module: str, device: str, precision: str, check) -> tuple[str, BackendInfo]:
    return name, BackendInfo(name, module, device, precision, check)


BACKENDS: dict[str, BackendInfo] = dict([
    _b("torch-cpu-fp32", "backend_torch", "cpu", "fp32", _always),
    _b("torch-cpu-bf16", "backend_torch", "cpu", "bf16", _cpu_bf16),
    _b("torch-cuda-fp32", "backend_torch", "cuda", "fp32", _torch_cuda),
    _b("torch-cuda-fp16", "backend_torch", "cuda", "fp16", _torch_cuda),
    _b("torch-cuda-bf16", "backend_torch", "cuda", "bf16", _cuda_bf16),
    _b("onnxruntime-cpu-fp32", "backend_onnxruntime", "cpu", "fp32", _always),
    _b("onnxruntime-cuda-fp32", "backend_onnxruntime", "cuda", "fp32", _ort_cuda),
    _b("openvino-cpu-fp32", "backend_openvino", "cpu", "fp32", _openvino),
    _b("openvino-cpu-bf16", "backend_openvino", "cpu", "bf16", _openvino_bf16),
    _b("tensorrt-fp16", "backend_tensorrt", "cuda", "fp16", _tensorrt),
    _b("tensorrt-bf16", "backend_tensorrt", "cuda", "bf16", _tensorrt_bf16),
    _b("tensorrt-fp32", "backend_tensorrt", "cuda", "fp32", _tensorrt),
])

#: the plain-PyTorch backends that need no exported file and are the reference's own computation
REFERENCE = {"cpu": "torch-cpu-fp32", "cuda": "torch-cuda-fp32"}


def get_backend(name: str) -> BackendInfo:
    """The :class:`BackendInfo` called ``name``; :class:`EngineError` listing the names otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise EngineError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}") from None


def available_backends() -> dict[str, str]:
    """``{name: ""}`` for backends that can run here, ``{name: reason}`` for those that cannot."""
    return {name: info.available()[1] for name, info in BACKENDS.items()}


def usable_backends() -> list[str]:
    """Names of the backends that can run on this machine, in :data:`BACKENDS` order."""
    return [name for name, info in BACKENDS.items() if info.available()[0]]


def create_engine(name: str, bundle, role: str, **options) -> Engine:
    """Create the ``role`` engine (``"features"`` / ``"classifier"``) of backend ``name`` for ``bundle``."""
    return get_backend(name).create(bundle, role, **options)
