"""8-bit video (H.264, HEVC, AV1, VP9, ...) decoded on the GPU by DALI (NVDEC).

Frame count, size and timestamps come from the PyAV index (:class:`~.read_av.AvSource`), built once when
the file is opened, together with the positions of its keyframes. Reading frames ``[start, stop)`` hands
DALI only the packets it needs -- from the keyframe at or before ``start`` to the second keyframe after
``stop - 1`` (one more group of pictures, for open-GOP streams whose B-frames reference across it) --
remuxed in memory into a small Matroska file, so each window costs a group of pictures and the window,
never a pass over the whole file (DALI indexes the bytes it is given on every call).

The pixels come from ``fn.decoders.video(device="mixed")`` followed by an RGB -> gray conversion on the
GPU (ITU-R BT.601 luma, as PyAV's ``gray`` output), so values match the CPU path to within decoder
rounding (a few grey levels). The same graph runs with ``device="cpu"`` (DALI's CPU decoder reads VP9,
VP8 and MJPEG but not H.264), which is how it is tested without a GPU; :class:`~.read_av.AvSource` is the
CPU reader for everything else.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from .read_av import AvSource
from .source import SourceError


def video_pipeline_def():
    """``@pipeline_def decode_video(device)``: inputs ``encoded`` (a container's bytes), ``start`` and
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

    Args:
        path: the video file.
        device: a :class:`~semiostream.core.device.Device` or its spelling (``"cuda:1"``; ``"cuda"`` / ``"gpu"``
            = the current CUDA device). ``"cpu"`` runs the same graph on DALI's CPU decoder (tests).

    ``read`` returns host ``[T, H, W] uint16`` (values 0..255) like every source; ``read_torch`` keeps the
    frames on the GPU (DLPack, no host copy).
    """

    def __init__(self, path: str | os.PathLike, device: Any = "cuda") -> None:
        from semiostream.core.device import Device

        self._pipe: Any = None
        super().__init__(path)
        if self.bit_depth != 8:
            self.close()
            raise SourceError(
                self.path,
                "the GPU video decoder reads 8-bit video only",
                "read 16-bit FFV1 archives on the CPU (they are lossless, not NVDEC codecs)",
            )
        self.device = Device.parse(device)
        self._keyframes = self._index_keyframes()

    def _index_keyframes(self) -> np.ndarray:
        """Sorted pts ``[K]`` int64 of the keyframes (one demux pass, at open)."""
        import av

        try:
            with av.open(str(self.path)) as c:
                s = c.streams[self._stream.index]
                kf = sorted(p.pts for p in c.demux(s) if p.is_keyframe and p.size and p.pts is not None)
        except av.error.FFmpegError as e:
            raise SourceError(self.path, f"packet stream is corrupt ({e})") from e
        if not kf or kf[0] > self._pts[0]:
            kf = [int(self._pts[0]), *kf]  # decoding starts at the first packet in any case
        return np.array(kf, dtype=np.int64)

    def segment(self, start: int, stop: int) -> tuple[np.ndarray, int]:
        """The packets that decode frames ``[start, stop)``, remuxed as an in-memory Matroska file.

        Returns:
            ``(bytes as uint8 [N], offset)``: frame ``start`` is frame ``offset`` of the segment.
        """
        import av

        kf = self._keyframes
        first_kf = int(kf[np.searchsorted(kf, self._pts[start], side="right") - 1])
        after = np.searchsorted(kf, self._pts[stop - 1], side="right") + 1  # one more GOP for open GOPs
        end_kf = int(kf[after]) if after < len(kf) else None
        offset = start - self._index[first_kf]
        buf = io.BytesIO()
        try:
            with av.open(str(self.path)) as src, av.open(buf, "w", format="matroska") as dst:
                s = src.streams[self._stream.index]
                out = dst.add_stream_from_template(s)
                src.seek(first_kf, stream=s, backward=True, any_frame=False)
                for pkt in src.demux(s):
                    if pkt.size == 0 or pkt.pts is None:
                        continue
                    if pkt.pts < first_kf and pkt.is_keyframe:
                        continue  # the seek landed earlier than asked: skip whole earlier GOPs
                    if end_kf is not None and pkt.is_keyframe and pkt.pts >= end_kf:
                        break
                    pkt.stream = out
                    dst.mux(pkt)
        except av.error.FFmpegError as e:
            raise SourceError(self.path, f"cannot cut frames [{start}, {stop}) for the GPU decoder ({e})") from e
        return np.frombuffer(buf.getvalue(), dtype=np.uint8), int(offset)

    def _decode(self, start: int, stop: int) -> Any:
        encoded, offset = self.segment(start, stop)
        if self._pipe is None:
            self._pipe = video_pipeline_def()(
                device=self.device.dali_device, batch_size=1, num_threads=2, device_id=self.device.dali_device_id,
                prefetch_queue_depth=1,
            )
            self._pipe.build()
        try:
            self._pipe.feed_input("encoded", [encoded])
            self._pipe.feed_input("start", [np.array(offset, np.int32)])
            self._pipe.feed_input("length", [np.array(stop - start, np.int32)])
            (out,) = self._pipe.run()
        except Exception as e:  # DALI invalidates the pipeline on errors
            self._pipe = None
            raise SourceError(self.path, f"GPU decoding of frames [{start}, {stop}) failed ({e})") from e
        frames = out[0]
        got = int(frames.shape()[0])
        if got != stop - start or tuple(frames.shape()[1:3]) != (self.height, self.width):
            raise SourceError(
                self.path,
                f"the video decoder returned {got} frames of {tuple(frames.shape()[1:3])} for frames "
                f"[{start}, {stop}) ({stop - start} of {(self.height, self.width)} expected)",
                "the file is corrupt or truncated; read it on the CPU (device='cpu') to find the bad frame",
            )
        return frames

    def _read(self, start: int, stop: int) -> np.ndarray:
        frames = self._decode(start, stop)
        frames = np.asarray(frames.as_cpu() if self.device.is_cuda else frames)
        return frames.reshape(stop - start, self.height, self.width).astype(np.uint16)

    def read_torch(self, start: int, stop: int) -> Any:
        """Frames ``[start, stop)`` as a ``[T, H, W] uint8`` tensor on the decoder's device (DLPack, no copy)."""
        import torch

        if not 0 <= start < stop <= self.num_frames:
            raise IndexError(f"{self.path}: frames [{start}, {stop}) outside [0, {self.num_frames})")
        t = torch.from_dlpack(self._decode(start, stop))
        return t.reshape(stop - start, self.height, self.width)

    def close(self) -> None:
        self._pipe = None
        super().close()
