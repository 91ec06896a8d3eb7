"""ONNX Runtime backend: CPU execution provider (and the CUDA EP where onnxruntime-gpu provides it).

Reads ``<bundle>/onnx/<model>.onnx`` (written by ``semiostream export``) and refuses a file whose
``semiostream.bundle_id`` metadata names another bundle. Sessions use graph optimisation level ALL
(which folds BatchNorm into the convolutions and fuses Conv+ReLU) and as many intra-op threads as torch
uses. On the CUDA EP, inputs and outputs stay on the GPU through I/O binding to torch tensors, TF32 is
off (``use_tf32=0``: this backend is fp32 and is verified to 1e-4), and the session computes on torch's
current stream of the engine's device at creation (``user_compute_stream``; the Scorer's stream inside a
Scorer), so it is ordered with DALI and torch without a host synchronisation.
"""

from __future__ import annotations

import json
import logging

import torch

from semiostream.core.device import Device, DeviceError

from . import artifacts as art
from .base import Engine, EngineError, IOSpec

log = logging.getLogger(__name__)

_GRAPH_LEVELS = ("disable", "basic", "extended", "all")


def _ort():
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise EngineError("onnxruntime is not installed; pip install onnxruntime (or onnxruntime-gpu)") from e
    return ort


def cuda_ep_available() -> bool:
    return "CUDAExecutionProvider" in _ort().get_available_providers()


def session_options(graph_level: str = "all", threads: int | None = None):
    """ONNX Runtime session options used by this backend (also used by the benchmark)."""
    ort = _ort()
    if graph_level not in _GRAPH_LEVELS:
        raise EngineError(f"graph_level {graph_level!r}; use one of {_GRAPH_LEVELS}")
    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[graph_level]
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


class OrtEngine(Engine):
    """A bundle model run by ONNX Runtime.

    Args:
        bundle: a loaded :class:`~semiostream.models.bundle.Bundle` (or anything with ``path`` and
            ``bundle_id``).
        role: ``"features"`` or ``"classifier"``.
        device: a :class:`~semiostream.core.device.Device` or its spelling (``"cpu"``, ``"cuda:0"``).
        graph_level: ONNX Runtime graph optimisation level (``"all"`` by default).
        threads: intra-op threads (default: torch's thread count).
        onnx_file: override the ONNX path (default ``<bundle>/onnx/<model>.onnx``).
        stream: CUDA only: the ``torch.cuda.Stream`` the session computes on (None = torch's current
            stream of the device when the engine is created).
    """

    def __init__(self, bundle, role: str, device: Device | str = "cpu", precision: str = "fp32",
                 graph_level: str = "all", threads: int | None = None, onnx_file=None, stream=None) -> None:
        ort = _ort()
        if precision != "fp32":
            raise EngineError(f"the ONNX Runtime backend runs fp32 models only, not {precision}")
        path = onnx_file or art.onnx_path(bundle, role)
        if not path.is_file():
            raise EngineError(
                f"{path} does not exist; export the bundle first: semiostream export {art.bundle_dir(bundle)}"
            )
        try:
            device = Device.parse(device).check_available()
        except DeviceError as e:
            raise EngineError(f"ONNX Runtime backend: {e}") from None
        self._stream = None
        if device.is_cuda:
            if not cuda_ep_available():
                raise EngineError("ONNX Runtime has no CUDAExecutionProvider here; install onnxruntime-gpu "
                                  "or use onnxruntime-cpu-fp32")
            self._stream = stream if stream is not None else torch.cuda.current_stream(device.torch)
        providers = device.ort_providers(tf32=False, stream=self._stream)
        sess = ort.InferenceSession(str(path), session_options(graph_level, threads), providers=providers)
        meta = sess.get_modelmeta().custom_metadata_map
        got_id = meta.get(art.META_BUNDLE_ID)
        if got_id != bundle.bundle_id:
            raise EngineError(
                f"{path} was exported from bundle {got_id!r}, not from this bundle ({bundle.bundle_id}); "
                f"re-export it: semiostream export {art.bundle_dir(bundle)} --force"
            )
        if meta.get(art.META_ROLE) != role:
            raise EngineError(f"{path} holds the {meta.get(art.META_ROLE)!r} model, not {role!r}")
        io = IOSpec.from_dict(json.loads(meta[art.META_IO]))
        super().__init__(io)
        self.name = f"onnxruntime-{device.kind}-fp32"
        self.device = device
        self.path = path
        self.session = sess
        self._in = io.inputs[0].name
        self._out = io.outputs[0].name

    def _infer_impl(self, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        x = feeds[self._in]
        if not self.device.is_cuda:
            arr = x.detach().to("cpu").contiguous().numpy()
            (y,) = self.session.run([self._out], {self._in: arr})
            return torch.from_numpy(y)
        return self._run_cuda(x)

    def _run_cuda(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - needs onnxruntime-gpu
        import numpy as np

        dev = self.device.torch
        caller = torch.cuda.current_stream(dev)
        x = x.to(dev, non_blocking=True).contiguous()
        dims = {"batch": x.shape[0]}
        if self.role == "features":
            dims["frames"] = x.shape[2]
        out = torch.empty(self.expected_output_shape(dims), dtype=torch.float32, device=dev)
        binding = self.session.io_binding()
        binding.bind_input(self._in, "cuda", self.device.index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(self._out, "cuda", self.device.index, np.float32, tuple(out.shape), out.data_ptr())
        if caller != self._stream:  # called from another stream: order the session's stream after it
            self._stream.wait_stream(caller)
        self.session.run_with_iobinding(binding)
        if caller != self._stream:
            caller.wait_stream(self._stream)
            x.record_stream(self._stream)
            out.record_stream(self._stream)
        return out

    def _close_impl(self) -> None:
        self.session = None


def create(bundle, role: str, device: Device | str, precision: str, **options) -> OrtEngine:
    """Registry factory (see :mod:`.registry`)."""
    return OrtEngine(bundle, role, device=device, precision=precision, **options)
