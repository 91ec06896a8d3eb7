"""The one device vocabulary: a :class:`Device` is ``cpu`` or ``cuda`` + an index.

Every layer takes and stores a :class:`Device` and converts it only at the boundary of the library it
talks to, with the methods below, so that no layer passes another library's spelling on to a third
(torch says ``"cuda"``, DALI ``"gpu"`` + ``device_id``, ONNX Runtime a provider list, TensorRT a CUDA
device it runs under)::

    dev = Device.parse("cuda:1")     # also "cpu", "cuda", "gpu", "gpu:1", torch.device, Device, int
    dev.torch                         # torch.device("cuda", 1)
    dev.dali_device, dev.dali_device_id   # "gpu", 1     (cpu: "cpu", None)
    dev.ort_providers()               # [("CUDAExecutionProvider", {"device_id": 1, "use_tf32": 0}),
                                      #  "CPUExecutionProvider"]
    str(dev)                          # "cuda:1"

This module imports torch only inside the methods that need it, so anything can import it (``models/``
included: it names no DALI, TensorRT or ZeroMQ type).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

KINDS = ("cpu", "cuda")
#: other spellings accepted by :meth:`Device.parse` for the kind ``cuda``
_CUDA_ALIASES = ("cuda", "gpu")


class DeviceError(ValueError):
    """A device name cannot be understood or the device does not exist here; the message says why."""


@dataclass(frozen=True, order=True)
class Device:
    """A compute device: ``kind`` ``"cpu"`` or ``"cuda"``, ``index`` the CUDA ordinal (0 for the CPU).

    Build one with :meth:`parse`, :meth:`cpu` or :meth:`cuda`; compare and hash it like a value.
    """

    kind: str = "cpu"
    index: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DeviceError(f"device kind {self.kind!r} is not one of {KINDS}")
        if not isinstance(self.index, int) or isinstance(self.index, bool) or self.index < 0:
            raise DeviceError(f"device index {self.index!r} must be an integer >= 0")
        if self.kind == "cpu" and self.index != 0:
            raise DeviceError(f"the CPU has no index (got cpu:{self.index}); use 'cpu'")

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def cpu(cls) -> Device:
        return cls("cpu", 0)

    @classmethod
    def cuda(cls, index: int | None = None) -> Device:
        """CUDA device ``index``; None = torch's current CUDA device (0 where torch sees no GPU)."""
        if index is None:
            index = _current_cuda_index()
        return cls("cuda", int(index))

    @classmethod
    def parse(cls, value: Any) -> Device:
        """A :class:`Device` from any usual spelling.

        Accepts a :class:`Device`, a ``torch.device``, an ``int`` (CUDA ordinal), or a string ``"cpu"``,
        ``"cuda"``, ``"cuda:N"``, ``"gpu"``, ``"gpu:N"`` (case-insensitive). ``"cuda"`` without an index
        means torch's current CUDA device.

        Raises:
            DeviceError: anything else, naming the accepted spellings.
        """
        if isinstance(value, Device):
            return value
        if isinstance(value, bool):
            raise DeviceError(f"{value!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'")
        if isinstance(value, int):
            return cls.cuda(value)
        if type(value).__name__ == "device" and type(value).__module__.startswith("torch"):
            return cls.cpu() if value.type == "cpu" else cls._from_kind(value.type, value.index, str(value))
        if isinstance(value, str):
            text = value.strip().lower()
            kind, _, idx = text.partition(":")
            if idx and not idx.isdigit():
                raise DeviceError(f"device {value!r}: the index after ':' must be a number, as in 'cuda:0'")
            return cls._from_kind(kind, int(idx) if idx else None, value)
        raise DeviceError(f"{value!r} ({type(value).__name__}) is not a device; use 'cpu', 'cuda' or 'cuda:N'")

    @classmethod
    def _from_kind(cls, kind: str, index: int | None, original: str) -> Device:
        if kind == "cpu":
            if index not in (None, 0):
                raise DeviceError(f"device {original!r}: the CPU has no index; use 'cpu'")
            return cls.cpu()
        if kind in _CUDA_ALIASES:
            return cls.cuda(index)
        raise DeviceError(f"unknown device {original!r}; use 'cpu', 'cuda', 'cuda:N' (or DALI's 'gpu')")

    # -- facts -------------------------------------------------------------------------------------
    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def type(self) -> str:
        """``"cpu"`` or ``"cuda"`` (as ``torch.device.type``)."""
        return self.kind

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.is_cuda else "cpu"

    def check_available(self) -> Device:
        """Return self if torch can use this device here; :class:`DeviceError` saying why not otherwise."""
        if not self.is_cuda:
            return self
        import torch

        if not torch.cuda.is_available():
            raise DeviceError(f"{self} requested but torch sees no CUDA GPU here; use a CPU backend or a GPU machine")
        n = torch.cuda.device_count()
        if self.index >= n:
            raise DeviceError(f"{self} requested but this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1}); "
                              "check CUDA_VISIBLE_DEVICES")
        return self

    # -- conversions at each library's boundary ----------------------------------------------------
    @property
    def torch(self) -> Any:
        """``torch.device("cpu")`` or ``torch.device("cuda", index)``."""
        import torch

        return torch.device("cuda", self.index) if self.is_cuda else torch.device("cpu")

    @property
    def dali_device(self) -> str:
        """DALI's operator / pipeline device: ``"gpu"`` or ``"cpu"``."""
        return "gpu" if self.is_cuda else "cpu"

    @property
    def dali_decoder_device(self) -> str:
        """DALI's decoder device: ``"mixed"`` (host input, GPU output) or ``"cpu"``."""
        return "mixed" if self.is_cuda else "cpu"

    @property
    def dali_device_id(self) -> int | None:
        """``device_id`` for a DALI pipeline: the CUDA ordinal, or None (a CPU-only pipeline)."""
        return self.index if self.is_cuda else None

    def ort_providers(self, tf32: bool = False, stream: Any = None) -> list[Any]:
        """ONNX Runtime ``providers`` for ``InferenceSession``.

        Args:
            tf32: allow TF32 in the CUDA EP's convolutions and matmuls (off: fp32 stays fp32, which the
                1e-4 verification tolerance needs).
            stream: a ``torch.cuda.Stream`` (or a raw ``cudaStream_t`` int) the CUDA EP computes on
                (``user_compute_stream``), so its work is ordered with torch's and DALI's on that stream.
        """
        if not self.is_cuda:
            return ["CPUExecutionProvider"]
        opts: dict[str, Any] = {"device_id": self.index, "use_tf32": int(bool(tf32))}
        if stream is not None:
            handle = getattr(stream, "cuda_stream", stream)
            opts["has_user_compute_stream"] = 1
            opts["user_compute_stream"] = str(int(handle))
        return [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]

    def activate(self) -> Any:
        """Context manager making this the current CUDA device (TensorRT and DALI use the current
        context); a no-op on the CPU."""
        if not self.is_cuda:
            return contextlib.nullcontext()
        import torch

        return torch.cuda.device(self.index)


def _current_cuda_index() -> int:
    try:
        import torch

        return int(torch.cuda.current_device()) if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install must not stop naming a device
        return 0


def as_device(value: Any) -> Device:
    """Shorthand for :meth:`Device.parse`."""
    return Device.parse(value)


def default_device() -> Device:
    """``cuda:<current>`` where torch sees a GPU, else ``cpu``."""
    import torch

    return Device.cuda() if torch.cuda.is_available() else Device.cpu()


_tf32_lock = threading.Lock()
_tf32_depth = 0
_tf32_saved: tuple[Any, ...] = ()


def _tf32_flags() -> tuple[Any, ...]:
    import torch

    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def _set_tf32_flags(cudnn: Any, matmul: Any) -> None:
    import torch

    torch.backends.cudnn.allow_tf32 = cudnn
    torch.backends.cuda.matmul.allow_tf32 = matmul


@contextlib.contextmanager
def fp32_exact() -> Iterator[None]:
    """Inside this block float32 means float32 in torch on CUDA: no TF32 in cuDNN convolutions or
    cuBLAS matmuls.

    torch defaults cuDNN convolutions to TF32 (a 10-bit mantissa, about 1e-3 relative error) on Ampere
    and newer GPUs; the fp32 paths (``torch-cuda-fp32``, the reference every GPU backend is verified
    against) run inside this block. torch's switches are process-wide, so nested and concurrent blocks
    are counted: the first one entering turns TF32 off, the last one leaving restores the previous
    setting. Reduced-precision engines are unaffected (they compute in fp16 / bf16 explicitly).
    """
    global _tf32_depth, _tf32_saved
    with _tf32_lock:
        if _tf32_depth == 0:
            _tf32_saved = _tf32_flags()
            _set_tf32_flags(False, False)
        _tf32_depth += 1
    try:
        yield
    finally:
        with _tf32_lock:
            _tf32_depth -= 1
            if _tf32_depth == 0:
                _set_tf32_flags(*_tf32_saved)


__all__ = ["Device", "DeviceError", "KINDS", "as_device", "default_device", "fp32_exact"]
