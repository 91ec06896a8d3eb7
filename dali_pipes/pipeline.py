"""DALI preprocessing on the CPU or the GPU: the same function as :func:`.reference.preprocess`.

Three ``@pipeline_def`` graphs (the first two with ``device`` in ``{"cpu", "gpu"}``):

* :func:`preprocess_windows`: one sample = one window ``[T, H, W, 1]`` uint16 (any T, H, W per sample, so
  a batch may mix sources and frame sizes) plus its per-sample crop, intensity window and output geometry
  (all fed through ``fn.external_source``) -> ``[T, size, size, 1]`` float32 (or float16) in [-1, 1].
* :func:`preprocess_encoded_frames`: one sample = one encoded 16-bit PNG/TIFF frame, decoded inside the
  graph (``fn.decoders.image``, ``"cpu"`` or ``"mixed"``), then the same steps -> ``[size, size, 1]``.
* :func:`resize_prepared_windows` (the CPU path of :class:`DaliPreprocessor`): the crop and the
  intensity clamp are done on the host in one vectorised numpy pass, ``clip(crop, lo, hi)`` (exact in
  uint16 when ``lo``/``hi`` are integers, as percentiles of 16-bit data nearly always are; float32
  otherwise); the graph resizes that, then one ``crop_mirror_normalize`` applies the affine map to [-1, 1]
  and the centre padding on the small output.
  This is the same function: bilinear weights are non-negative and sum to 1, so an affine map commutes
  with the resize, and the clamp still happens before it. It is 2.6x faster than the all-in-graph CPU
  version because DALI's CPU arithmetic operators are not vectorised (about 8 ms per binary operator on a
  60x576x640 window per thread, against 2 ms for numpy's ``clip`` on uint16); see ``bench/RESULTS.md``.
  The GPU keeps the all-in-graph version (:func:`preprocess_windows`), where arithmetic is cheap.

:class:`DaliPreprocessor` feeds them and hands the result to torch as ``[1, T, size, size]`` tensors via
DLPack (no copy; on the GPU no host round trip). Devices are :class:`semiostream.core.device.Device` values,
converted here to DALI's ``device="gpu"`` / ``device_id=N`` (``"mixed"`` for decoders). On the GPU, a
caller's CUDA stream (the Scorer's) is handed to DALI both ways: ``feed_input(..., cuda_stream=s)`` for
frames already on the GPU and ``run(s)`` for the outputs, so DALI's work is ordered with torch's and
TensorRT's on that stream without a host synchronisation.

Every graph is the same code on both devices: tests run the exact GPU graph (``preprocess_windows``
with ``device="cpu"``, i.e. ``DaliPreprocessor(..., host_prepare=False)``) against the reference. The
pipelines use DALI's dynamic executor, whose outputs own their memory, so the tensors stay valid after the next run.

Agreement with the reference (tests/dali_pipes/test_dp_preprocess.py): max abs difference about 3e-4
on full-range random 16-bit data (worst case), against a bound of 1/255; bilinear without antialias and
the per-sample geometry from :mod:`.geometry` make the two computations match to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import nvidia.dali.fn as fn
import nvidia.dali.types as types
import torch
from nvidia.dali import math as dmath
from nvidia.dali import pipeline_def

from semiostream.core.batching import SCORER_MAX_BATCH
from semiostream.core.device import Device
from semiostream.core.frames import Window
from semiostream.core.roi import Roi, as_roi

from .geometry import fit_size, pad_offsets
from .intensity import intensity_window

#: names of the per-sample inputs (all ``fn.external_source``)
INPUTS = ("frames", "crop_anchor", "crop_shape", "lo", "scale", "out_size", "pad_anchor")


def _params(device: str) -> tuple[Any, ...]:
    """The per-sample parameter inputs (always CPU: DALI takes shapes and anchors from host memory)."""
    crop_anchor = fn.external_source(name="crop_anchor", dtype=types.INT32)  # [y0, x0]
    crop_shape = fn.external_source(name="crop_shape", dtype=types.INT32)  # [h, w]
    lo = fn.external_source(name="lo", dtype=types.FLOAT)  # scalar: raw value -> 0
    scale = fn.external_source(name="scale", dtype=types.FLOAT)  # scalar: 1 / (hi - lo)
    out_size = fn.external_source(name="out_size", dtype=types.FLOAT)  # [h_out, w_out]
    pad_anchor = fn.external_source(name="pad_anchor", dtype=types.INT32)  # [-top, -left]
    if device == "gpu":
        lo, scale = lo.gpu(), scale.gpu()
    return crop_anchor, crop_shape, lo, scale, out_size, pad_anchor


def _steps(x: Any, params: tuple[Any, ...], size: int, pad_value: float, half: bool) -> Any:
    """crop -> intensity window -> resize (bilinear, no antialias) -> [-1, 1] -> centre pad -> dtype."""
    crop_anchor, crop_shape, lo, scale, out_size, pad_anchor = params
    x = fn.slice(x, crop_anchor, crop_shape, axis_names="HW", out_of_bounds_policy="error")
    x = dmath.clamp((x - lo) * scale, 0.0, 1.0)  # uint16 op float -> float
    x = fn.resize(
        x,
        resize_y=out_size[0],
        resize_x=out_size[1],
        interp_type=types.INTERP_LINEAR,
        antialias=False,
        dtype=types.FLOAT,
    )
    x = x * 2.0 - 1.0
    full = types.Constant(np.array([size, size], np.int32), device="cpu")
    x = fn.slice(x, pad_anchor, full, axis_names="HW", out_of_bounds_policy="pad", fill_values=pad_value)
    return fn.cast(x, dtype=types.FLOAT16) if half else x


@pipeline_def
def preprocess_windows(
    device: str = "cpu",
    size: int = 224,
    pad_value: float = -1.0,
    half: bool = False,
    input_device: str = "cpu",
):
    """Windows -> model input. ``frames``: ``[T, H, W, 1]`` uint16 per sample (layout FHWC), on the CPU
    or, with ``input_device="gpu"``, already on the GPU. Output ``[T, size, size, 1]`` float in [-1, 1]."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    frames = fn.external_source(
        name="frames", dtype=types.UINT16, layout="FHWC", device="gpu" if input_device == "gpu" else "cpu"
    )
    if device == "gpu" and input_device != "gpu":
        frames = frames.gpu()
    return _steps(frames, _params(device), size, pad_value, half)


@pipeline_def
def preprocess_encoded_frames(device: str = "cpu", size: int = 224, pad_value: float = -1.0, half: bool = False):
    """Encoded 16-bit PNG/TIFF frames -> decoded in the graph -> ``[size, size, 1]`` float per frame.

    Input ``encoded``: one file's bytes (uint8) per sample; decoder ``"cpu"`` or ``"mixed"`` (GPU).
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    encoded = fn.external_source(name="encoded", dtype=types.UINT8)
    frames = fn.decoders.image(
        encoded, device="cpu" if device == "cpu" else "mixed", output_type=types.ANY_DATA, dtype=types.UINT16
    )
    return _steps(frames, _params(device), size, pad_value, half)


@pipeline_def
def resize_prepared_windows(size: int = 224, pad_value: float = -1.0, half: bool = False, float_input: bool = False):
    """CPU graph for windows cropped and clamped on the host (see :func:`prepare_window`).

    Inputs: ``frames`` ``[T, h, w, 1]`` uint16 (float32 with ``float_input``: one graph per input dtype,
    as DALI fixes an external source's dtype) holding ``clip(crop, lo, hi) - base``, ``out_size``
    ``[h_out, w_out]``, ``mean`` = ``lo - base + (hi - lo) / 2``, ``half_range`` = ``(hi - lo) / 2`` and
    ``crop_pos`` (relative position of the resized image in the padded square, as ``crop_mirror_normalize``
    takes it). Output ``[T, size, size, 1]`` float32 (or float16) in [-1, 1].
    """
    frames = fn.external_source(name="frames", layout="FHWC", dtype=types.FLOAT if float_input else types.UINT16)
    out_size = fn.external_source(name="out_size", dtype=types.FLOAT)
    mean = fn.external_source(name="mean", dtype=types.FLOAT)
    half_range = fn.external_source(name="half_range", dtype=types.FLOAT)
    crop_pos = fn.external_source(name="crop_pos", dtype=types.FLOAT)  # [y, x]
    x = fn.resize(
        frames,
        resize_y=out_size[0],
        resize_x=out_size[1],
        interp_type=types.INTERP_LINEAR,
        antialias=False,
        dtype=types.FLOAT,
    )
    # (r - mean) / half_range = 2 (r + base - lo) / (hi - lo) - 1, fused with the centre padding
    return fn.crop_mirror_normalize(
        x,
        crop_h=size,
        crop_w=size,
        crop_pos_y=crop_pos[0],
        crop_pos_x=crop_pos[1],
        mean=mean,
        std=half_range,
        out_of_bounds_policy="pad",
        fill_values=pad_value,
        dtype=types.FLOAT16 if half else types.FLOAT,
        output_layout="FHWC",
    )


def prepare_window(frames: np.ndarray, params: SampleParams) -> tuple[np.ndarray, float]:
    """Host side of the CPU path: ``(clip(crop, lo, hi) - base, base)``, ``[T, h, w]`` uint16 (exact, when
    ``lo`` and ``hi`` are integers) or float32 (otherwise), in one vectorised pass over the crop.

    ``base`` is ``lo`` when the window is narrow for its level (``hi > 64 (hi - lo)``: float32 rounding of
    the resize at raw level ``hi`` would show after scaling by ``2 / (hi - lo)``; one more pass), else 0.
    """
    r, lo, hi = params.roi, params.lo, params.hi
    crop = frames[:, r.y0 : r.y1, r.x0 : r.x1]
    base = lo if hi > 64 * (hi - lo) else 0.0
    if crop.dtype == np.uint16 and lo.is_integer() and hi.is_integer() and 0 <= lo < hi <= 65535:
        out = np.empty(crop.shape, np.uint16)
        np.clip(crop, np.uint16(lo), np.uint16(hi), out=out)
        if base:
            np.subtract(out, np.uint16(base), out=out)
        return out, base
    out = crop.astype(np.float32)
    np.clip(out, np.float32(lo), np.float32(hi), out=out)
    if base:
        np.subtract(out, np.float32(base), out=out)
    return out, base


@dataclass(frozen=True)
class SampleParams:
    """Per-sample parameters of one window (host side, computed once per window)."""

    roi: Roi
    lo: float
    hi: float
    out_hw: tuple[int, int]
    pad_tl: tuple[int, int]

    def feeds(self) -> dict[str, np.ndarray]:
        r = self.roi
        return {
            "crop_anchor": np.array([r.y0, r.x0], np.int32),
            "crop_shape": np.array([r.height, r.width], np.int32),
            "lo": np.array(self.lo, np.float32),
            "scale": np.array(1.0 / (self.hi - self.lo), np.float32),
            "out_size": np.array(self.out_hw, np.float32),
            "pad_anchor": np.array([-self.pad_tl[0], -self.pad_tl[1]], np.int32),
        }


def sample_params(frames: np.ndarray | torch.Tensor, roi: Roi | Sequence[int] | None, spec,
                  window: tuple[float, float] | None = None) -> SampleParams:
    """Crop, intensity window and geometry for one ``[T, H, W]`` uint16 window (as the reference);
    ``window``: a held ``(lo, hi)`` (:mod:`.event_intensity`), else the spec's rule on these frames."""
    h, w = int(frames.shape[-2]), int(frames.shape[-1])
    r = as_roi(roi, w, h)
    lo, hi = window if window is not None else intensity_window(frames, r, spec)
    out_hw = fit_size(r.height, r.width, spec.size)
    return SampleParams(r, lo, hi, out_hw, pad_offsets(*out_hw, spec.size))


class DaliPreprocessor:
    """Run :func:`preprocess_windows` on batches of windows from any number of sources.

    Args:
        spec: the bundle's ``PreprocessSpec``.
        device: a :class:`~semiostream.core.device.Device` or its spelling: ``"cpu"``, ``"cuda:N"``, or DALI's
            ``"gpu"`` (= the current CUDA device).
        max_batch: largest number of windows per DALI batch (a longer call runs in batches of this size;
            the :class:`~semiostream.engines.scorer.Scorer` passes its own).
        num_threads: DALI CPU worker threads.
        device_id: CUDA ordinal overriding the device's (kept for callers that pass DALI's pair).
        half: float16 output (for fp16 engines); float32 otherwise.
        host_prepare: on the CPU, crop and clamp on the host (:func:`resize_prepared_windows`, 2.6x
            faster there); False runs the GPU's all-in-graph :func:`preprocess_windows` on the CPU, which
            is how tests check the GPU graph without a GPU. Ignored on the GPU.

    Call it with a list of ``[T, H, W]`` uint16 windows (numpy, or torch CUDA tensors for the GPU
    pipeline) or :class:`~semiostream.core.frames.Window` objects, and one ROI (or None) per window.
    """

    def __init__(
        self,
        spec,
        device: Device | str = "cpu",
        max_batch: int = SCORER_MAX_BATCH,
        num_threads: int = 2,
        device_id: int | None = None,
        half: bool = False,
        host_prepare: bool = True,
    ) -> None:
        dev = Device.parse(device)
        if device_id is not None and dev.is_cuda:
            dev = Device.cuda(device_id)
        self.spec, self.device, self.max_batch, self.half = spec, dev, int(max_batch), half
        self.host_prepare = bool(host_prepare)
        self._num_threads = num_threads
        self._pipes: dict[str, Any] = {}

    @property
    def dali_device(self) -> str:
        """DALI's name of the device the graph runs on (``"cpu"`` / ``"gpu"``)."""
        return self.device.dali_device

    @property
    def device_id(self) -> int | None:
        """DALI's ``device_id`` (None for a CPU-only pipeline)."""
        return self.device.dali_device_id

    def _pipe(self, input_device: str) -> Any:
        pipe = self._pipes.get(input_device)
        if pipe is None and input_device.startswith("prepared"):
            pipe = resize_prepared_windows(
                size=self.spec.size,
                pad_value=float(self.spec.pad_value),
                half=self.half,
                float_input=input_device == "prepared-float32",
                batch_size=self.max_batch,
                num_threads=self._num_threads,
                device_id=None,
                prefetch_queue_depth=1,
            )
            pipe.build()
            self._pipes[input_device] = pipe
        elif pipe is None:
            pipe = preprocess_windows(
                device=self.dali_device,
                size=self.spec.size,
                pad_value=float(self.spec.pad_value),
                half=self.half,
                input_device=input_device,
                batch_size=self.max_batch,
                num_threads=self._num_threads,
                device_id=self.device_id,
                prefetch_queue_depth=1,
            )
            pipe.build()
            self._pipes[input_device] = pipe
        return pipe

    def __call__(
        self,
        windows: Sequence[np.ndarray | torch.Tensor | Window],
        rois: Sequence[Roi | Sequence[int] | None] | None = None,
        stream: Any = None,
        intensities: Sequence[tuple[float, float] | None] | None = None,
    ) -> list[torch.Tensor]:
        """Preprocess windows.

        Args:
            windows: ``[T, H, W]`` uint16 windows (numpy / torch; CUDA tensors on the GPU path).
            rois: one ``(x0, y0, x1, y1)`` or None per window.
            stream: GPU path only: the ``torch.cuda.Stream`` the caller works on. CUDA input frames are
                read on it and the outputs are ready on it (not host-synchronous). None = torch's
                current stream of the device.
            intensities: one held raw ``(lo, hi)`` or None (the spec's rule) per window
                (:mod:`.event_intensity`); None for all.

        Returns:
            one ``[1, T_i, size, size]`` tensor (float32, or float16 with ``half``) in [-1, 1] per window,
            on the CPU or the GPU (``device``); use :func:`stack` for a ``[B, 1, T, size, size]`` batch.
        """
        arrays = [w.frames if isinstance(w, Window) else w for w in windows]
        rois = list(rois) if rois is not None else [None] * len(arrays)
        lohi = list(intensities) if intensities is not None else [None] * len(arrays)
        if len(rois) != len(arrays) or len(lohi) != len(arrays):
            raise ValueError(f"{len(arrays)} windows but {len(rois)} ROIs and {len(lohi)} intensity windows")
        out: list[torch.Tensor] = []
        if self.device.is_cuda and stream is None:
            stream = torch.cuda.current_stream(self.device.torch)
        for s in range(0, len(arrays), self.max_batch):
            b = slice(s, s + self.max_batch)
            out.extend(self._run(arrays[b], rois[b], lohi[b], stream))
        return out

    def _run(self, arrays: list[Any], rois: list[Any], lohi: list[Any], stream: Any = None) -> list[torch.Tensor]:
        on_gpu = [isinstance(a, torch.Tensor) and a.is_cuda for a in arrays]
        if any(on_gpu) and (not self.device.is_cuda or not all(on_gpu)):
            raise ValueError(f"CUDA frames need a GPU preprocessor (this one runs on {self.device}) and every "
                             "window of a batch on the GPU")
        input_device = "gpu" if all(on_gpu) else "cpu"
        if not self.device.is_cuda and self.host_prepare:
            return self._run_prepared(arrays, rois, lohi)
        frames, feeds = [], {k: [] for k in INPUTS[1:]}
        for a, roi, window in zip(arrays, rois, lohi, strict=True):
            if a is None or a.ndim != 3:
                raise ValueError(f"each window must be [T, H, W] uint16 frames, got {getattr(a, 'shape', None)}")
            if input_device == "cpu":
                a = a.numpy() if isinstance(a, torch.Tensor) else a
                a = np.ascontiguousarray(a, dtype=np.uint16)
            params = sample_params(a, roi, self.spec, window)
            frames.append(a[..., None])
            for k, v in params.feeds().items():
                feeds[k].append(v)
        pipe = self._pipe(input_device)
        pipe.feed_input("frames", frames, layout="FHWC", cuda_stream=stream if input_device == "gpu" else None)
        for k, v in feeds.items():
            pipe.feed_input(k, v)
        (tl,) = pipe.run(stream) if self.device.is_cuda else pipe.run()
        return [_to_torch(tl[i]) for i in range(len(arrays))]

    def _run_prepared(self, arrays: list[Any], rois: list[Any], lohi: list[Any]) -> list[torch.Tensor]:
        """CPU path: crop + clamp on the host (:func:`prepare_window`), resize + affine + pad in DALI."""
        size = self.spec.size
        frames, feeds = [], {k: [] for k in ("out_size", "mean", "half_range", "crop_pos")}
        for a, roi, window in zip(arrays, rois, lohi, strict=True):
            if a is None or a.ndim != 3:
                raise ValueError(f"each window must be [T, H, W] uint16 frames, got {getattr(a, 'shape', None)}")
            a = a.numpy() if isinstance(a, torch.Tensor) else a
            a = np.asarray(a, dtype=np.uint16)
            params = sample_params(a, roi, self.spec, window)
            prepared, base = prepare_window(a, params)
            frames.append(prepared)
            (oh, ow), (top, left) = params.out_hw, params.pad_tl
            feeds["out_size"].append(np.array(params.out_hw, np.float32))
            feeds["mean"].append(np.array(params.lo - base + (params.hi - params.lo) / 2, np.float32))
            feeds["half_range"].append(np.array((params.hi - params.lo) / 2, np.float32))
            # crop_mirror_normalize anchors the crop at crop_pos * (input - crop) = -(top, left)
            feeds["crop_pos"].append(np.array([top / (size - oh) if oh < size else 0.5,
                                               left / (size - ow) if ow < size else 0.5], np.float32))
        if any(f.dtype != np.uint16 for f in frames):  # one dtype per DALI batch
            frames = [f.astype(np.float32, copy=False) for f in frames]
        pipe = self._pipe(f"prepared-{frames[0].dtype}")
        pipe.feed_input("frames", [f[..., None] for f in frames], layout="FHWC")
        for k, v in feeds.items():
            pipe.feed_input(k, v)
        (tl,) = pipe.run()
        return [_to_torch(tl[i]) for i in range(len(arrays))]


def _to_torch(t: Any) -> torch.Tensor:
    """DALI ``[T, S, S, 1]`` tensor -> torch ``[1, T, S, S]`` view (DLPack, zero copy)."""
    return torch.from_dlpack(t).movedim(-1, 0)


def stack(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[B, 1, T, S, S]`` batch of equally long windows (raises if their T differ)."""
    lengths = {int(t.shape[1]) for t in tensors}
    if len(lengths) != 1:
        raise ValueError(f"windows have different lengths {sorted(lengths)}; batch equal lengths together")
    return torch.stack(list(tensors))


class DaliImageWindowPreprocessor:
    """Windows of a PNG/TIFF frame folder, decoded and preprocessed in one DALI graph
    (:func:`preprocess_encoded_frames`; ``"mixed"`` GPU decoding with ``device="gpu"``).

    In ``"percentile"`` mode the intensity window needs the first ``percentile_frames`` frames before the
    graph runs; they are decoded once more on the host side (:meth:`ImageFolderSource.read`).
    """

    def __init__(
        self,
        spec,
        device: Device | str = "cpu",
        max_frames: int = 60,
        num_threads: int = 2,
        device_id: int | None = None,
        half: bool = False,
    ) -> None:
        dev = Device.parse(device)
        if device_id is not None and dev.is_cuda:
            dev = Device.cuda(device_id)
        self.spec, self.device, self.max_frames = spec, dev, int(max_frames)
        self._kw = dict(
            device=dev.dali_device,
            size=spec.size,
            pad_value=float(spec.pad_value),
            half=half,
            batch_size=self.max_frames,
            num_threads=num_threads,
            device_id=dev.dali_device_id,
            prefetch_queue_depth=1,
        )
        self._build()

    def _build(self) -> None:
        self._pipe = preprocess_encoded_frames(**self._kw)
        self._pipe.build()

    def __call__(self, source: Any, start: int, stop: int, roi: Roi | Sequence[int] | None,
                 intensity: tuple[float, float] | None = None) -> torch.Tensor:
        """Frames ``[start, stop)`` of an :class:`~.read_images.ImageFolderSource` -> ``[1, T, S, S]``;
        ``intensity``: a held raw ``(lo, hi)`` (:mod:`.event_intensity`), else the spec's rule."""
        from semiostream.sources.read_images import ImageFolderSource

        if not isinstance(source, ImageFolderSource):
            raise TypeError("DaliImageWindowPreprocessor reads folders of PNG/TIFF frames")

        def chunk(s: int, e: int) -> list[np.ndarray]:
            return [np.fromfile(f, dtype=np.uint8) for f in source.files[s:e]]

        def where(s: int, e: int) -> str:
            return f"{source.files[s].name}..{source.files[e - 1].name}"

        return self._window(source, start, stop, roi, intensity, chunk, where)

    def _window(self, source: Any, start: int, stop: int, roi: Roi | Sequence[int] | None,
                intensity: tuple[float, float] | None, chunk: Any, where: Any) -> torch.Tensor:
        """Run the graph over frames ``[start, stop)`` of ``source``: ``chunk(s, e)`` gives the encoded
        frames (uint8 arrays), ``where(s, e)`` names them in errors. ``[1, T, S, S]`` on the device."""
        from semiostream.sources.source import SourceError

        if not 0 <= start < stop <= source.num_frames:
            raise IndexError(f"{source.path}: frames [{start}, {stop}) outside [0, {source.num_frames})")
        if intensity is None and self.spec.intensity_mode == "percentile":  # decoded on the host once more
            head = source.read(start, min(stop, start + self.spec.percentile_frames))
        else:
            head = np.zeros((1, source.height, source.width), np.uint16)
        feeds = sample_params(head, roi, self.spec, intensity).feeds()
        parts = []
        for s in range(start, stop, self.max_frames):
            e = min(stop, s + self.max_frames)
            encoded = chunk(s, e)
            try:
                self._pipe.feed_input("encoded", encoded)
                for k, v in feeds.items():
                    self._pipe.feed_input(k, [v] * len(encoded))
                (tl,) = self._pipe.run()
            except Exception as err:  # DALI invalidates the pipeline: rebuild, name the frames
                self._build()
                last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
                raise SourceError(source.path, f"cannot decode/preprocess {where(s, e)} ({last})") from err
            parts.extend(torch.from_dlpack(tl[i])[..., 0] for i in range(len(encoded)))
        return torch.stack(parts)[None]
