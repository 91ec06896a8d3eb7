"""One inference interface over every backend.

An :class:`Engine` runs one of the two models of a bundle:

* role ``"features"``: I3D, input ``frames`` ``[B, C, T, 224, 224]`` float32 in [-1, 1] (C = the bundle's
  ``in_channels``, 1 for gray IR; T within the engine's frame range, 9..64 by default) -> output
  ``features`` ``[B, T', 1024]`` float32 (T' = :func:`~semiostream.models.i3d.feature_steps` of T);
* role ``"classifier"``: the masked LSTM, input ``features`` ``[B, 7, 1024]`` float32 pre-padded with rows
  of -1 -> output ``p_tle`` ``[B]`` float32 in (0, 1).

The public :meth:`Engine.infer` checks input names, dtypes and shapes against the engine's
:class:`IOSpec` (the model's metadata), records timing, then calls the backend's ``_infer_impl``
(Polygraphy's ``BaseRunner`` split). Engines are context managers; :meth:`Engine.close` frees the
backend's resources and later calls raise :class:`EngineError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from semiostream.core.batching import EXPORT_MAX_BATCH
from semiostream.core.device import Device
from semiostream.models.classifier import NUM_STEPS
from semiostream.models.i3d import FEATURE_DIM, MIN_FRAMES, feature_steps

ROLES = ("features", "classifier")
FEATURE_INPUT, FEATURE_OUTPUT = "frames", "features"
CLASSIFIER_INPUT, CLASSIFIER_OUTPUT = "features", "p_tle"
#: Default dynamic frame range (the ONNX export's; TensorRT engines narrow it to their profile); the batch
#: range's is :data:`~semiostream.core.batching.EXPORT_MAX_BATCH`.
MAX_FRAMES = 64


class EngineError(RuntimeError):
    """An engine cannot be created or was called wrongly; the message says what to do."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of one model input or output.

    ``shape`` holds ints for static dimensions and names (``"batch"``, ``"frames"``, ``"steps"``) for
    dynamic ones; the names' ranges live in :attr:`IOSpec.dims`.
    """

    name: str
    dtype: torch.dtype
    shape: tuple[int | str, ...]


@dataclass(frozen=True)
class IOSpec:
    """What a model takes and returns: the metadata :meth:`Engine.infer` checks against."""

    role: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dims: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def with_dims(self, **ranges: tuple[int, int]) -> IOSpec:
        """A copy with some dynamic ranges replaced (e.g. a TensorRT profile's ``frames=(9, 60)``)."""
        dims = dict(self.dims)
        for k, v in ranges.items():
            if k not in dims:
                raise KeyError(f"{self.role} model has no dynamic dimension {k!r}; it has {sorted(dims)}")
            dims[k] = (int(v[0]), int(v[1]))
        return IOSpec(self.role, self.inputs, self.outputs, dims)

    def to_dict(self) -> dict:
        """JSON-able form (stored in ONNX ``metadata_props`` and engine sidecars)."""
        def t(s: TensorSpec) -> dict:
            return {"name": s.name, "dtype": str(s.dtype).removeprefix("torch."), "shape": list(s.shape)}

        return {"role": self.role, "inputs": [t(s) for s in self.inputs],
                "outputs": [t(s) for s in self.outputs], "dims": {k: list(v) for k, v in self.dims.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> IOSpec:
        """The inverse of :meth:`to_dict` (read back from ONNX metadata by the ONNX Runtime and OpenVINO backends)."""
        def t(s: dict) -> TensorSpec:
            return TensorSpec(s["name"], getattr(torch, s["dtype"]), tuple(s["shape"]))

        return cls(d["role"], tuple(t(s) for s in d["inputs"]), tuple(t(s) for s in d["outputs"]),
                   {k: (int(v[0]), int(v[1])) for k, v in d["dims"].items()})


def feature_io(in_channels: int = 1, size: int = 224, max_batch: int = EXPORT_MAX_BATCH,
               min_frames: int = MIN_FRAMES, max_frames: int = MAX_FRAMES) -> IOSpec:
    """I/O of the I3D feature engine: ``frames [B, C, T, size, size]`` -> ``features [B, T', 1024]``."""
    return IOSpec(
        "features",
        (TensorSpec(FEATURE_INPUT, torch.float32, ("batch", in_channels, "frames", size, size)),),
        (TensorSpec(FEATURE_OUTPUT, torch.float32, ("batch", "steps", FEATURE_DIM)),),
        {"batch": (1, max_batch), "frames": (min_frames, max_frames)},
    )


def classifier_io(max_batch: int = EXPORT_MAX_BATCH, steps: int = NUM_STEPS, feature_dim: int = FEATURE_DIM) -> IOSpec:
    """I/O of the classifier engine: ``features [B, 7, 1024]`` (pre-padded with -1) -> ``p_tle [B]``."""
    return IOSpec(
        "classifier",
        (TensorSpec(CLASSIFIER_INPUT, torch.float32, ("batch", steps, feature_dim)),),
        (TensorSpec(CLASSIFIER_OUTPUT, torch.float32, ("batch",)),),
        {"batch": (1, max_batch)},
    )


def io_for(role: str, in_channels: int = 1, size: int = 224) -> IOSpec:
    """Default :class:`IOSpec` of a role (``"features"`` or ``"classifier"``)."""
    if role == "features":
        return feature_io(in_channels, size)
    if role == "classifier":
        return classifier_io()
    raise EngineError(f"unknown engine role {role!r}; use one of {ROLES}")


@dataclass
class EngineStats:
    """Timing of :meth:`Engine.infer` calls (wall time around ``_infer_impl``).

    On CUDA backends the time covers enqueueing plus whatever synchronisation the backend does.
    """

    calls: int = 0
    samples: int = 0
    total_s: float = 0.0
    last_s: float = 0.0

    @property
    def mean_s_per_sample(self) -> float:
        return self.total_s / self.samples if self.samples else float("nan")


class Engine:
    """Base class of every backend's engine.

    Subclasses set :attr:`name` (``torch-cpu-bf16`` ...), pass their :class:`IOSpec` and implement
    ``_infer_impl(feeds) -> torch.Tensor`` (the one output) and optionally ``_close_impl()``.
    ``feeds`` reaching ``_infer_impl`` are already checked: exactly the model's input names, right dtype,
    shapes within the ranges.
    """

    name = "engine"
    #: where the engine computes and returns its output (converted at each library's boundary)
    device: Device = Device.cpu()

    def __init__(self, io: IOSpec) -> None:
        if io.role not in ROLES:
            raise EngineError(f"unknown engine role {io.role!r}; use one of {ROLES}")
        self.io = io
        self.stats = EngineStats()
        self._closed = False
        self._stats_lock = threading.Lock()

    @property
    def role(self) -> str:
        return self.io.role

    # ----------------------------------------------------------------------------------------------
    def check(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """Validate ``feeds`` against :attr:`io`; returns the resolved dynamic dims (``{"batch": 4, ...}``).

        Raises:
            EngineError: a missing or unexpected name, a non-tensor, a wrong dtype, rank or size.
        """
        want = set(self.io.input_names)
        got = set(feeds)
        if got != want:
            raise EngineError(
                f"{self.name} ({self.role}) takes inputs {sorted(want)}; got {sorted(got)}"
            )
        resolved: dict[str, int] = {}
        for spec in self.io.inputs:
            x = feeds[spec.name]
            if not isinstance(x, torch.Tensor):
                raise EngineError(f"input {spec.name!r} must be a torch.Tensor, got {type(x).__name__}")
            if x.dtype != spec.dtype:
                raise EngineError(
                    f"input {spec.name!r} must be {spec.dtype}, got {x.dtype}; convert with .to({spec.dtype})"
                )
            if x.dim() != len(spec.shape):
                raise EngineError(
                    f"input {spec.name!r} must have shape {self._shape_str(spec)}, got {tuple(x.shape)}"
                )
            for axis, (dim, size) in enumerate(zip(spec.shape, x.shape, strict=True)):
                size = int(size)
                if isinstance(dim, int):
                    if size != dim:
                        raise EngineError(
                            f"input {spec.name!r} must have shape {self._shape_str(spec)}, got "
                            f"{tuple(x.shape)} (axis {axis} is {size}, expected {dim})"
                        )
                    continue
                lo, hi = self.io.dims[dim]
                if not lo <= size <= hi:
                    hint = " (group windows by length and split batches)" if dim in ("batch", "frames") else ""
                    raise EngineError(
                        f"input {spec.name!r}: {dim}={size} is outside this engine's range [{lo}, {hi}]{hint}"
                    )
                if resolved.setdefault(dim, size) != size:
                    raise EngineError(f"inputs disagree on {dim}: {resolved[dim]} vs {size}")
        return resolved

    def _shape_str(self, spec: TensorSpec) -> str:
        parts = []
        for d in spec.shape:
            if isinstance(d, int):
                parts.append(str(d))
            else:
                lo, hi = self.io.dims.get(d, (0, 0))
                parts.append(f"{d}:{lo}..{hi}")
        return "[" + ", ".join(parts) + "]"

    def expected_output_shape(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        """Output shape for resolved input dims (``steps`` from the frame count)."""
        out = []
        for d in self.io.outputs[0].shape:
            if isinstance(d, int):
                out.append(d)
            elif d == "steps":
                out.append(feature_steps(dims["frames"]))
            else:
                out.append(dims[d])
        return tuple(out)

    def infer(self, feeds: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Run the model on checked inputs.

        Args:
            feeds: ``{input_name: tensor}``, or a bare tensor for the (single) input. Tensors may be on
                the CPU or on the engine's device; the backend moves them if needed.

        Returns:
            The output tensor (float32; shapes in the module docstring), on :attr:`device`.
        """
        if self._closed:
            raise EngineError(f"{self.name} ({self.role}) engine is closed; create a new one")
        if isinstance(feeds, torch.Tensor):
            if len(self.io.inputs) != 1:
                raise EngineError(f"{self.name} takes several inputs {self.io.input_names}; pass a dict")
            feeds = {self.io.inputs[0].name: feeds}
        dims = self.check(feeds)
        t0 = time.perf_counter()
        out = self._infer_impl(dict(feeds))
        dt = time.perf_counter() - t0
        want = self.expected_output_shape(dims)
        if tuple(out.shape) != want:
            raise EngineError(
                f"{self.name} ({self.role}) returned shape {tuple(out.shape)}, expected {want}; "
                "the model file does not match this bundle: re-export / rebuild it"
            )
        with self._stats_lock:
            self.stats.calls += 1
            self.stats.samples += dims.get("batch", 1)
            self.stats.total_s += dt
            self.stats.last_s = dt
        return out

    def _infer_impl(self, feeds: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Release backend resources (idempotent)."""
        if not self._closed:
            self._closed = True
            self._close_impl()

    def _close_impl(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} role={self.role} device={self.device}>"
