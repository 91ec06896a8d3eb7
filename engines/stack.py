"""Which GPU stack this machine runs, and why: DALI or torch for preprocessing, TensorRT or torch for the I3D.

semiostream's fastest path uses DALI (preprocessing and GPU decoding) and TensorRT (the engines); both are
large (DALI ~0.5 GB, TensorRT > 1 GB) and often absent on fixed hospital images. Without them a CUDA
machine runs the first-class fallback, **torch-cuda**: preprocessing in torch on the device from pinned
host buffers (:mod:`.preprocess_torch`) and the I3D in ``torch-cuda-bf16`` (``fp16`` before Ampere) with
CUDA graphs (:mod:`.graphs`). Without a GPU it is the CPU stack. :func:`choose_stack` says which one and
why; ``semiostream doctor`` prints it, and its GPU checks and benchmarks run it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


def dali_importable() -> bool:
    """True when ``nvidia.dali`` can be imported (False also when no ``nvidia`` namespace exists at all)."""
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Stack:
    """``name`` (``"dali + tensorrt"``, ``"torch-cuda"``, ``"cpu"`` ...), the Scorer's ``preprocessing`` and
    the engine ``backend`` it uses, and ``why`` in one sentence."""

    name: str
    preprocessing: str
    backend: str
    why: str

    def describe(self) -> str:
        return f"{self.name}: preprocessing {self.preprocessing}, engine {self.backend} ({self.why})"


def choose_stack() -> Stack:
    """The stack for this machine (see the module docstring)."""
    from .registry import get_backend

    dali = dali_importable()
    cuda_ok, no_cuda = get_backend("torch-cuda-fp32").available()
    if not cuda_ok:
        backend = "torch-cpu-bf16" if get_backend("torch-cpu-bf16").available()[0] else "torch-cpu-fp32"
        return Stack("cpu", "dali" if dali else "reference", backend, f"no GPU: {no_cuda}")
    trt_ok, no_trt = get_backend("tensorrt-fp16").available()
    bf16_ok, no_bf16 = get_backend("torch-cuda-bf16").available()
    reasons = ["DALI found" if dali else "no DALI (nvidia-dali-cuda130 is not installed): preprocessing in torch "
               "on the device"]
    if trt_ok:
        backend = "tensorrt-fp16"
        reasons.append("TensorRT found")
    else:
        backend = "torch-cuda-bf16" if bf16_ok else "torch-cuda-fp16"
        reasons.append(f"no TensorRT ({no_trt}): the I3D in {backend} with CUDA graphs"
                       + ("" if bf16_ok else f"; not bf16: {no_bf16}"))
    name = " + ".join(["dali" if dali else "torch-cuda", "tensorrt" if trt_ok else "torch-cuda"])
    name = "torch-cuda" if name == "torch-cuda + torch-cuda" else name
    return Stack(name, "dali" if dali else "torch", backend, "; ".join(reasons))
