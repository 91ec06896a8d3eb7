"""Azure Kinect recordings (Matroska written by ``k4arecorder`` / the Azure Kinect SDK).

Such a file holds up to three video tracks named by their Matroska title tag, ``COLOR`` (MJPG),
``DEPTH`` and ``IR``, plus IMU and calibration attachments. DEPTH and IR are raw 16-bit frames with the
Video-for-Windows FOURCC ``b16g``: each Matroska block is exactly ``H * W`` **big-endian** uint16
samples. We read the blocks directly (no codec involved) and byte-swap them to native uint16, so frame
values are bit-exact (depth in millimetres, IR in sensor units).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .read_av import index_packets
from .source import Source, SourceError, check_file

#: ``--stream`` name -> Matroska track title in k4a recordings.
K4A_TRACKS = {"ir": "IR", "depth": "DEPTH"}


def is_k4a(container: Any) -> bool:
    """True if an open PyAV container looks like an Azure Kinect recording."""
    for s in container.streams:
        md = {k.upper(): v for k, v in (s.metadata or {}).items()}
        if any(k.startswith("K4A_") for k in md) or (
            s.type == "video" and md.get("TITLE") in ("IR", "DEPTH") and s.codec_tag == "b16g"
        ):
            return True
    return any(k.upper().startswith("K4A_") for k in (container.metadata or {}))


class K4aSource(Source):
    """The IR (or depth) track of an Azure Kinect ``.mkv`` recording.

    Args:
        path: the recording.
        stream: ``"ir"`` (default) or ``"depth"``.

    Opening scans the track's packets once; random access re-demuxes from the nearest seek point.
    """

    def __init__(self, path: str | os.PathLike, stream: str = "ir") -> None:
        import av

        self.path = Path(path)
        check_file(self.path)
        if stream not in K4A_TRACKS:
            raise SourceError(self.path, f"unknown stream {stream!r}", f"use one of {sorted(K4A_TRACKS)}")
        self.stream = stream
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise SourceError(self.path, f"not a readable Matroska file ({e})", "the file is corrupt") from e
        c = self._container
        title = K4A_TRACKS[stream]
        tracks = [s for s in c.streams if s.type == "video" and (s.metadata or {}).get("title") == title]
        if not tracks:
            present = [(s.metadata or {}).get("title", "?") for s in c.streams if s.type == "video"]
            c.close()
            raise SourceError(
                self.path,
                f"Azure Kinect recording has no {title} track (tracks: {present})",
                "record with the depth camera on (IR and DEPTH need a depth mode)",
            )
        self._stream = s = tracks[0]
        if s.codec_tag != "b16g":
            c.close()
            raise SourceError(
                self.path,
                f"{title} track has codec tag {s.codec_tag!r}, expected 'b16g'",
                "only raw 16-bit Azure Kinect tracks are supported",
            )
        self.width, self.height = int(s.codec_context.width), int(s.codec_context.height)
        self.bit_depth = 16
        self._frame_bytes = self.width * self.height * 2
        self._tb = float(s.time_base)
        self._pts = index_packets(c, s, self.path, f"{title} track")
        self._index = {int(p): i for i, p in enumerate(self._pts)}
        self.num_frames = len(self._pts)
        rate = s.average_rate or s.guessed_rate
        self.fps = float(rate) if rate else 30.0

    def frame_times(self, start: int, stop: int) -> np.ndarray:
        return (self._pts[start:stop] - self._pts[0]).astype(np.float64) * self._tb

    def _read(self, start: int, stop: int) -> np.ndarray:
        import av

        out = np.empty((stop - start, self.height, self.width), np.uint16)
        got = start
        try:
            self._container.seek(int(self._pts[start]), stream=self._stream, backward=True)
            for pkt in self._container.demux(self._stream):
                if not pkt.size or pkt.pts is None:
                    continue
                i = self._index.get(int(pkt.pts))
                if i is None or i < start:
                    continue
                if i != got:
                    raise SourceError(self.path, f"{self.stream} frame {got} is missing", "the file is corrupt")
                data = bytes(pkt)
                if len(data) != self._frame_bytes:
                    raise SourceError(
                        self.path,
                        f"{self.stream} frame {i} has {len(data)} bytes, expected {self._frame_bytes} "
                        f"({self.width}x{self.height} uint16)",
                        "the recording is corrupt or truncated",
                    )
                out[i - start] = np.frombuffer(data, dtype=">u2").reshape(self.height, self.width)
                got += 1
                if got == stop:
                    break
        except av.error.FFmpegError as e:
            raise SourceError(self.path, f"cannot demux frames [{start}, {stop}) ({e})") from e
        if got != stop:
            raise SourceError(
                self.path, f"truncated: {self.stream} track ends at frame {got}", "copy the recording again"
            )
        return out

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
