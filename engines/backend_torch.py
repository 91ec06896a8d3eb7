"""PyTorch backend: CPU fp32, CPU bf16, CUDA fp32, CUDA fp16, CUDA bf16.

The feature engine runs an inference copy of the bundle's I3D, never the bundle's module itself:

* BatchNorm folded into the preceding convolution (``w' = w * g / sqrt(v + eps)``,
  ``b' = beta - mean * g / sqrt(v + eps)``; exact up to float rounding, measured max abs 3e-6 on
  Kinetics weights), which removes a full pass over every activation;
* channels-last 3-D memory format (oneDNN's / cuDNN's preferred layout);
* low precision as weights and activations in bf16 / fp16 (convolutions accumulate in fp32 inside
  oneDNN / cuDNN); the final average pool and the output are float32;
* on the CPU, ``torch.compile`` (Inductor, weights frozen) for windows of the bundle's standard
  length (``spec.window``); other lengths (leftover windows) run the same weights eagerly, so a rare
  length never triggers a recompile;
* on CUDA, CUDA graphs (:mod:`.graphs`) for windows of the standard length: each batch bucket (powers of
  two up to the engine's largest batch) is captured once on first use and replayed with one launch; other
  lengths run eagerly. The same bucketing runs eagerly on the CPU when ``graphs=True`` is asked for there
  (how it is tested without a GPU).

The classifier engine runs the bundle's classifier in float32 on every torch backend: it costs about a
millisecond per batch and keeps decisions identical to the reference.

On CUDA every float32 computation (the ``torch-cuda-fp32`` I3D, every classifier) runs inside
:func:`semiostream.core.device.fp32_exact`: torch lets cuDNN use TF32 for float32 convolutions by default, which
would make the fp32 reference miss its own 1e-4 tolerance. Work is enqueued on torch's current stream of
the engine's device (the Scorer's stream inside a Scorer); nothing synchronises the host.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading

import torch
from torch import nn

from semiostream.core.device import Device, DeviceError, fp32_exact

from .base import CLASSIFIER_INPUT, FEATURE_INPUT, Engine, EngineError, classifier_io, feature_io
from .streams import on_stream

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def fold_batchnorm(i3d: nn.Module) -> nn.Module:
    """Deep copy of an I3D with every ``Unit3D`` BatchNorm folded into its convolution.

    The copy's ``Unit3D`` modules have ``bn = None`` and a conv bias; ``Unit3D.forward`` then skips BN.
    """
    model = copy.deepcopy(i3d).eval()
    with torch.no_grad():
        for mod in model.modules():
            conv, bn = getattr(mod, "conv3d", None), getattr(mod, "bn", None)
            if conv is None or bn is None:
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight.mul_(scale.view(-1, 1, 1, 1, 1))
            conv.bias = nn.Parameter(bias.clone())
            mod.bn = None
    return model


class I3DInference(nn.Module):
    """Inference wrapper: ``[B, C, T, H, W]`` float32 -> ``[B, T', 1024]`` float32.

    Casts the input to the trunk's dtype and memory format; pools in float32 (avg_pool3d has no bf16
    CPU kernel and the mean is better in fp32 anyway).
    """

    def __init__(self, i3d: nn.Module, dtype: torch.dtype, channels_last: bool) -> None:
        super().__init__()
        self.i3d = i3d
        self.dtype = dtype
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.to(self.dtype).contiguous(memory_format=self.memory_format)
        y = self.i3d.avg_pool(self.i3d.trunk(x).float())  # [B, 1024, T', 1, 1]
        # a [B, T', 1024] view, as extract_features returns: no .contiguous(), whose stride check would make
        # torch.export specialise T' (== 1 for 9..16 frames) and freeze the typed ONNX export's frame count
        return y.flatten(2).transpose(1, 2)


def optimized_i3d(i3d: nn.Module, device: torch.device | str = "cpu", precision: str = "fp32",
                  fold_bn: bool = True, channels_last: bool = True) -> I3DInference:
    """An :class:`I3DInference` copy of ``i3d`` on ``device`` in ``precision`` (fp32 / bf16 / fp16)."""
    if precision not in _DTYPES:
        raise EngineError(f"unknown precision {precision!r}; use one of {sorted(_DTYPES)}")
    model = fold_batchnorm(i3d) if fold_bn else copy.deepcopy(i3d).eval()
    dtype = _DTYPES[precision]
    model = model.to(device=device, dtype=dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return I3DInference(model, dtype, channels_last).eval()


class TorchEngine(Engine):
    """A bundle model run by PyTorch.

    Args:
        bundle: a loaded :class:`~semiostream.models.bundle.Bundle`.
        role: ``"features"`` or ``"classifier"``.
        device: a :class:`~semiostream.core.device.Device` or its spelling (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA); the feature engine's precision.
        compile: ``torch.compile`` the feature model for ``spec.window``-frame inputs (None = on for the
            CPU, where it measured 1.5x (bf16) and 1.8x (fp32) faster; see bench/RESULTS.md).
        graphs: CUDA graphs for ``spec.window``-frame feature inputs (None = on for CUDA, off on the CPU;
            True on the CPU runs the same buckets eagerly). Graphs and ``compile`` exclude each other.
        fold_bn, channels_last: the optimisations described in the module docstring (on by default).
        threads: torch intra-op threads (None = leave torch's setting).
        stream: CUDA only: the ``torch.cuda.Stream`` to enqueue on (None = torch's current stream).
    """

    def __init__(self, bundle, role: str, device: Device | str = "cpu", precision: str = "fp32",
                 compile: bool | None = None, fold_bn: bool = True, channels_last: bool = True,
                 threads: int | None = None, stream=None, graphs: bool | None = None) -> None:
        try:
            device = Device.parse(device).check_available()
        except DeviceError as e:
            raise EngineError(f"torch backend: {e}") from None
        dev = device.torch
        if threads:
            torch.set_num_threads(int(threads))
        io = feature_io(bundle.in_channels, bundle.spec.size) if role == "features" else classifier_io()
        super().__init__(io)
        self.name = f"torch-{device.kind}-{precision}"
        self.device = device
        self.precision = precision
        # float32 on CUDA must not silently become TF32 (see the module docstring)
        self._exact = device.is_cuda and (precision == "fp32" or role == "classifier")
        self.stream = stream if device.is_cuda else None
        self._window = int(bundle.spec.window)
        self._compiled = None
        self._compile_lock = threading.Lock()
        self._graphs = None
        if role == "features":
            self.model = optimized_i3d(bundle.i3d, dev, precision, fold_bn, channels_last)
            want_graphs = dev.type == "cuda" if graphs is None else bool(graphs)
            if want_graphs and compile:
                raise EngineError("torch backend: choose CUDA graphs or torch.compile, not both")
            want_compile = (dev.type == "cpu" and not want_graphs) if compile is None else compile
            if want_graphs:
                from .graphs import BatchGraphs

                item = (bundle.in_channels, self._window, bundle.spec.size, bundle.spec.size)
                self._graphs = BatchGraphs(self._graph_forward, item, self.io.dims["batch"][1], torch.float32, dev)
            if want_compile:
                self._compiled = torch.compile(self.model, dynamic=False, options={"freezing": True})
        elif role == "classifier":
            self.model = copy.deepcopy(bundle.classifier).to(dev).eval()
        else:
            raise EngineError(f"unknown engine role {role!r}")

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    @property
    def graphed(self) -> bool:
        """True when standard-length feature windows run through :mod:`.graphs` (CUDA graphs on a GPU)."""
        return self._graphs is not None

    def _graph_forward(self, x: torch.Tensor) -> torch.Tensor:
        with fp32_exact() if self._exact else contextlib.nullcontext():
            return self.model(x)

    def _infer_impl(self, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        name = FEATURE_INPUT if self.role == "features" else CLASSIFIER_INPUT
        with on_stream(self.stream, self.device):
            return self._run(feeds[name])

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device.torch, non_blocking=True)
        if self._graphs is not None and self._graphs.accepts(x):
            return self._graphs(x)
        with torch.inference_mode(), (fp32_exact() if self._exact else contextlib.nullcontext()):
            if self.role == "features" and self._compiled is not None and x.shape[2] == self._window:
                # One static [1, C, window, S, S] graph: a batch runs window by window (batching gains
                # nothing per window on the CPU, and a second batch size would make dynamo recompile
                # with a dynamic batch dimension, measured 4x slower).
                with self._compile_lock:  # dynamo compiles on first use; serialise that
                    return torch.cat([self._compiled(x[i:i + 1]) for i in range(x.shape[0])])
            return self.model(x)

    def _close_impl(self) -> None:
        self.model = None
        self._compiled = None
        self._graphs = None


def create(bundle, role: str, device: Device | str, precision: str, **options) -> TorchEngine:
    """Registry factory (see :mod:`.registry`)."""
    return TorchEngine(bundle, role, device=device, precision=precision, **options)
