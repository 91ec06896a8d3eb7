"""8-bit video (H.264, HEVC, AV1, ...) decoded on the GPU by DALI (NVDEC).

Frame count, size and timestamps come from the PyAV index (:class:`~.read_av.AvSource`); the pixels come
from ``fn.decoders.video(device="mixed")`` followed by an RGB -> gray conversion on the GPU (ITU-R
BT.601 luma, as PyAV's ``gray`` output), so values match the CPU path to within decoder rounding
(a few grey levels). Needs a CUDA GPU; the CPU path is :class:`~.read_av.AvSource`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .read_av import AvSource
from .source import SourceError


def video_pipeline_def():
    """``@pipeline_def decode_video(device)``: inputs ``encoded`` (the file's bytes), ``start`` and
    ``length`` (int32 scalars); output ``[T, H, W, 1]`` uint8 gray on the GPU (``device="gpu"``) or CPU.
    """
    import nvidia.dali.fn as fn
    import nvidia.dali.types as types
    from nvidia.dali import pipeline_def

    @pipeline_def
    def decode_video(device: str = "gpu"):
        encoded = fn.external_source(name="encoded", dtype=types.UINT8, device="cpu")
        start = fn.external_source(name="start", dtype=types.INT32, device="cpu")
        length = fn.external_source(name="length", dtype=types.INT32, device="cpu")
        rgb = fn.decoders.video(
            encoded,
            device="mixed" if device == "gpu" else "cpu",
            start_frame=start,
            sequence_length=length,
            pad_mode="none",
        )
        return fn.color_space_conversion(rgb, image_type=types.RGB, output_type=types.GRAY)

    return decode_video


class GpuVideoSource(AvSource):
    """An 8-bit video whose frames DALI decodes on the GPU.

    ``read`` returns host ``[T, H, W] uint16`` (values 0..255) like every source; ``read_torch`` keeps the
    frames on the GPU (DLPack, no host copy).
    """

    def __init__(self, path: str | os.PathLike, device_id: int = 0) -> None:
        super().__init__(path)
        if self.bit_depth != 8:
            raise SourceError(
                self.path,
                "the GPU video decoder reads 8-bit video only",
                "read 16-bit FFV1 archives on the CPU (they are lossless, not NVDEC codecs)",
            )
        self._encoded = np.fromfile(self.path, dtype=np.uint8)
        self._pipe: Any = None
        self._device_id = device_id

    def _decode(self, start: int, stop: int) -> Any:
        if self._pipe is None:
            self._pipe = video_pipeline_def()(
                device="gpu", batch_size=1, num_threads=2, device_id=self._device_id, prefetch_queue_depth=1
            )
            self._pipe.build()
        try:
            self._pipe.feed_input("encoded", [self._encoded])
            self._pipe.feed_input("start", [np.array(start, np.int32)])
            self._pipe.feed_input("length", [np.array(stop - start, np.int32)])
            (out,) = self._pipe.run()
        except Exception as e:  # DALI invalidates the pipeline on errors
            self._pipe = None
            raise SourceError(self.path, f"GPU decoding of frames [{start}, {stop}) failed ({e})") from e
        return out[0]

    def _read(self, start: int, stop: int) -> np.ndarray:
        frames = np.asarray(self._decode(start, stop).as_cpu())
        return frames.reshape(stop - start, self.height, self.width).astype(np.uint16)

    def read_torch(self, start: int, stop: int) -> Any:
        """Frames ``[start, stop)`` as a CUDA ``[T, H, W] uint8`` tensor (DLPack from DALI)."""
        import torch

        if not 0 <= start < stop <= self.num_frames:
            raise IndexError(f"{self.path}: frames [{start}, {stop}) outside [0, {self.num_frames})")
        t = torch.from_dlpack(self._decode(start, stop))
        return t.reshape(stop - start, self.height, self.width)
