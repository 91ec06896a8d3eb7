"""TensorRT backend (GPU): a cached engine from ``<bundle>/engines/``, run on torch's CUDA stream.

* the engine file is found and checked by :func:`semiostream.engines.trt_files.find_engine` (bundle id,
  weight hashes, TensorRT version, GPU; a stale or foreign engine is refused with the ``semiostream build``
  command to run) and deserialised with ``trt.Runtime.deserialize_cuda_engine``;
* I/O by tensor name (``num_io_tensors`` / ``get_tensor_name`` / ``get_tensor_mode``); the profile's ranges
  become this engine's :class:`~.base.IOSpec` so ``infer`` rejects out-of-profile shapes with a clear error;
* the engine is deserialised and run on the engine's :class:`~semiostream.core.device.Device` (made current
  while TensorRT touches CUDA), never on whatever device happens to be current;
* buffers are torch CUDA tensors in the engine's own I/O dtypes (a typed engine with fp16 I/O gets fp16
  input; the output is returned as float32): ``set_input_shape``, ``set_tensor_address(name,
  tensor.data_ptr())``, ``execute_async_v3(stream)`` on torch's current stream of that device -- inside a
  Scorer, its dedicated stream, which DALI's GPU pipeline also runs on, so preprocessing, inference and
  the next copy are ordered without a host sync (and never on the legacy default stream, which would
  synchronise with every other stream). No pycuda: torch owns the CUDA context.
"""

from __future__ import annotations

import logging
import threading

import torch

from semiostream.core.device import Device, DeviceError

from . import artifacts as art
from .base import Engine, EngineError, IOSpec, TensorSpec
from .streams import on_stream

log = logging.getLogger(__name__)


def _torch_dtype(trt, dt) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.BOOL: torch.bool}
    if hasattr(trt.DataType, "BF16"):
        table[trt.DataType.BF16] = torch.bfloat16
    if dt not in table:
        raise EngineError(f"TensorRT I/O type {dt} is not supported by this backend")
    return table[dt]


class TrtEngine(Engine):
    """One bundle model as a TensorRT engine.

    Args:
        bundle: loaded bundle.
        role: ``"features"`` or ``"classifier"`` (the classifier engine is fp32 whatever ``precision``).
        device: the CUDA :class:`~semiostream.core.device.Device` (or ``"cuda:N"``) to load and run on.
        precision: ``"fp16"``, ``"bf16"`` or ``"fp32"`` (of the I3D engine).
        max_batch: pick the engine built for this max batch (default: the largest fresh one).
        stream: the ``torch.cuda.Stream`` to enqueue on (None = torch's current stream of the device at
            each call; never the legacy default stream inside a Scorer).
    """

    def __init__(self, bundle, role: str, device: Device | str = "cuda", precision: str = "fp16",
                 max_batch: int | None = None, stream=None) -> None:
        self._stream = stream
        try:
            device = Device.parse(device).check_available()
        except DeviceError as e:
            raise EngineError(f"TensorRT backend: {e}") from None
        if not device.is_cuda:
            raise EngineError(f"TensorRT runs on a CUDA GPU, not on {device}")
        with device.activate():
            self._load(bundle, role, device, precision, max_batch)

    def _load(self, bundle, role: str, device: Device, precision: str, max_batch: int | None) -> None:
        from . import trt_files as tf

        trt = tf.import_tensorrt()
        try:
            path = tf.find_engine(bundle, role, precision, max_batch)
            gpu, sm = tf.gpu_facts()
            mb = int(path.name.split("_b")[1].split("_")[0])
            exp = tf.expected_sidecar(bundle.meta, art.MODEL_FOR_ROLE[role], role,
                                      "fp32" if role == "classifier" else precision, mb, None,
                                      trt.__version__, gpu, sm)
            exp.pop("frames")
            blob = tf.load_engine_bytes(path, exp)
        except (tf.StaleEngineError, tf.TensorRTError) as e:
            raise EngineError(str(e)) from e
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            raise EngineError(f"TensorRT could not deserialise {path}; rebuild it: semiostream build "
                              f"{path.parent.parent} --force")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        ins = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise EngineError(f"{path} has inputs {ins} and outputs {outs}; expected one of each")
        self._in, self._out = ins[0], outs[0]
        self._out_dtype = _torch_dtype(trt, self._engine.get_tensor_dtype(self._out))
        self._in_dtype = _torch_dtype(trt, self._engine.get_tensor_dtype(self._in))
        lo, _, hi = self._engine.get_tensor_profile_shape(self._in, 0)
        super().__init__(self._io_spec(role, bundle, tuple(lo), tuple(hi)))
        self.name = f"tensorrt-{precision}"
        self.device = device
        self.path = path
        self._lock = threading.Lock()  # one execution context: one call at a time

    def _io_spec(self, role: str, bundle, lo: tuple, hi: tuple) -> IOSpec:
        if role == "features":
            shape = ("batch", bundle.in_channels, "frames", lo[3], lo[4])
            out_shape = ("batch", "steps", 1024)
            dims = {"batch": (lo[0], hi[0]), "frames": (lo[2], hi[2])}
        else:
            shape = ("batch", lo[1], lo[2])
            out_shape = ("batch",)
            dims = {"batch": (lo[0], hi[0])}
        # the interface stays float32 whatever the engine's I/O dtypes: _infer_impl casts at the edges
        return IOSpec(role, (TensorSpec(self._in, torch.float32, shape),),
                      (TensorSpec(self._out, torch.float32, out_shape),), dims)

    def _infer_impl(self, feeds: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - GPU only
        dev = self.device.torch
        with self._lock, self.device.activate(), on_stream(self._stream, self.device):
            stream = torch.cuda.current_stream(dev)
            x = feeds[self._in].to(dev, self._in_dtype, non_blocking=True).contiguous()
            if not self._context.set_input_shape(self._in, tuple(x.shape)):
                raise EngineError(f"TensorRT rejected input shape {tuple(x.shape)} for {self.path.name}")
            out = torch.empty(tuple(self._context.get_tensor_shape(self._out)), dtype=self._out_dtype, device=dev)
            self._context.set_tensor_address(self._in, x.data_ptr())
            self._context.set_tensor_address(self._out, out.data_ptr())
            if not self._context.execute_async_v3(stream.cuda_stream):
                raise EngineError(f"TensorRT execution of {self.path.name} failed (see the log)")
            # x and out were allocated on this stream: the caching allocator will not reuse them before the
            # enqueued work finishes, so no synchronisation is needed here.
            return out.float()

    def _close_impl(self) -> None:
        self._context = None
        self._engine = None
        self._runtime = None


def create(bundle, role: str, device: Device | str, precision: str, **options) -> TrtEngine:
    """Registry factory (see :mod:`.registry`)."""
    return TrtEngine(bundle, role, device=device, precision=precision, **options)
