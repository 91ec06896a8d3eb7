"""Video files read with PyAV (FFmpeg) on the CPU.

* Lossless FFV1 ``gray16le`` in Matroska (``.mkv``): the recommended 16-bit IR archive format
  (written by :func:`semiostream.dali_pipes.writers.write_ffv1`);
* other 16-bit video (any pixel format with more than 8 bits per sample, converted to ``gray16le``);
* ordinary 8-bit video (mp4/avi/mkv, H.264 etc.): the luma plane, values 0..255, ``bit_depth == 8``.

Opening a file scans its packet headers once (demuxing only, no decoding) to count frames and to index
their timestamps, so ``read(start, stop)`` can seek. Sequential reads continue decoding without seeking.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .source import Source, SourceError, check_file

#: Matroska tag with the frame count, written by our FFV1 writer; a file with fewer frames is truncated.
FRAMES_TAG = "SEMIOSTREAM_FRAMES"


def _open_container(path: Path) -> Any:
    import av

    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise SourceError(
            path, f"not a readable video container ({e})", "the file is corrupt, truncated or not a video"
        ) from e


def index_packets(container: Any, stream: Any, path: Path, what: str) -> np.ndarray:
    """Sorted presentation timestamps ``[N]`` int64 of ``stream``'s non-empty packets (one per frame).

    Closes ``container`` and raises :class:`SourceError` when the packets are corrupt or there are none.
    """
    import av

    try:
        pts = [p.pts for p in container.demux(stream) if p.size and p.pts is not None]
    except av.error.FFmpegError as e:
        container.close()
        raise SourceError(path, f"packet stream is corrupt ({e})") from e
    if not pts:
        container.close()
        raise SourceError(path, f"{what} holds no frames", "the recording is empty")
    return np.array(sorted(pts), dtype=np.int64)


class AvSource(Source):
    """A video stream decoded by PyAV.

    Args:
        path: video file.
        stream_index: which stream of the container (default: the first video stream).
        stream_name: the name reported as :attr:`stream` (``"ir"`` unless told otherwise).
    """

    def __init__(self, path: str | os.PathLike, stream_index: int | None = None, stream_name: str = "ir"):

        self.path = Path(path)
        check_file(self.path)
        self.stream = stream_name
        self._container = _open_container(self.path)
        c = self._container
        videos = [s for s in c.streams if s.type == "video"]
        if stream_index is not None:
            videos = [s for s in videos if s.index == stream_index]
        if not videos:
            c.close()
            raise SourceError(self.path, "contains no video stream", "pass a video file")
        self._stream = s = videos[0]
        cc = s.codec_context
        if cc is None or cc.format is None or not cc.width or not cc.height:
            c.close()
            raise SourceError(self.path, f"video stream {s.index} has no decodable format (codec {s.codec_tag!r})")
        self.width, self.height = int(cc.width), int(cc.height)
        bits = max(comp.bits for comp in cc.format.components)
        self.bit_depth = 16 if bits > 8 else 8
        self._to_format = "gray16le" if self.bit_depth == 16 else "gray"
        self._tb = s.time_base
        self._pts = index_packets(c, s, self.path, "video stream")
        self._index = {int(p): i for i, p in enumerate(self._pts)}
        self.num_frames = len(self._pts)
        expected = c.metadata.get(FRAMES_TAG)
        if expected is not None and expected.isdigit() and int(expected) != self.num_frames:
            c.close()
            raise SourceError(
                self.path,
                f"truncated: holds {self.num_frames} of its {expected} frames",
                "copy or convert the recording again",
            )
        rate = s.average_rate or s.guessed_rate
        if rate:
            self.fps = float(rate)
        elif self.num_frames > 1:
            self.fps = float((self.num_frames - 1) / ((self._pts[-1] - self._pts[0]) * self._tb))
        else:
            self.fps = 30.0
        self._frames: Iterator[Any] | None = None
        self._next = -1  # index of the frame the live decoder yields next

    def frame_times(self, start: int, stop: int) -> np.ndarray:
        return ((self._pts[start:stop] - self._pts[0]) * float(self._tb)).astype(np.float64)

    def _decoded(self) -> Iterator[tuple[int, np.ndarray]]:
        assert self._frames is not None
        for frame in self._frames:
            if frame.pts is None or int(frame.pts) not in self._index:
                continue
            yield self._index[int(frame.pts)], frame.to_ndarray(format=self._to_format)

    def _read(self, start: int, stop: int) -> np.ndarray:
        import av

        out = np.empty((stop - start, self.height, self.width), np.uint16)
        try:
            if self._frames is None or self._next != start:
                self._container.seek(int(self._pts[start]), stream=self._stream, backward=True, any_frame=False)
                self._frames = self._container.decode(self._stream)
            got = start
            for i, arr in self._decoded():
                if i < start:
                    continue
                if i != got:
                    raise SourceError(
                        self.path, f"frame {got} is missing from the decoded stream", "the file is corrupt"
                    )
                out[i - start] = arr
                got += 1
                if got == stop:
                    break
        except av.error.FFmpegError as e:
            self._frames, self._next = None, -1
            raise SourceError(
                self.path, f"cannot decode frames [{start}, {stop}) ({e})", "the file is corrupt or truncated"
            ) from e
        if got != stop:
            self._frames, self._next = None, -1
            raise SourceError(
                self.path,
                f"truncated: decoding stopped at frame {got} of {self.num_frames}",
                "copy or convert the recording again",
            )
        self._next = stop
        return out

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._frames = None
