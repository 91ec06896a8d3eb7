"""Video files read with PyAV (FFmpeg) on the CPU.

* Lossless FFV1 ``gray16le`` in Matroska (``.mkv``): the recommended 16-bit IR archive format
  (written by :func:`semiostream.sources.writers.write_ffv1`);
* other 16-bit video (any pixel format with more than 8 bits per sample, converted to ``gray16le``);
* ordinary 8-bit video (mp4/avi/mkv, H.264 etc.): the luma plane, values 0..255, ``bit_depth == 8``.

Opening a file scans its packet headers once (demuxing only, no decoding) to count frames and to index
their timestamps, so ``read(start, stop)`` can seek. Sequential reads continue decoding without seeking.

Frame ``i`` is the ``i``-th frame in presentation order, exactly as a decoder run over the whole file
outputs it. Two ways to find it:

* **by timestamp** (Matroska, MP4, and AVI whose parser recovers presentation times, e.g. MPEG-4 Part 2):
  the packets carry presentation timestamps, in decode order and out of order when the stream has
  B-frames; their sorted values are the frame index, a decoded frame is placed by its timestamp, and a
  read seeks to the keyframe before its first frame;
* **by decoding order** (AVI with H.264 and other files whose packets carry only a decode-order counter,
  i.e. timestamps that never go back in a stream that can reorder frames, or packets without any): the
  decoder's output is counted from the start of the file, the only anchor whose presentation index is
  certain. Reading on from the last frame read continues decoding; reading backwards decodes from the
  start again.

A file whose decoded timestamps turn out not to match its packets' falls back to decoding order once.
A file that ends inside its last packet (a recorder stopped mid-frame: the demuxer flags the packet
corrupt) is read as a decoder given every packet but that one outputs it (:attr:`AvSource.cut`).
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
#: Matroska tag ``unknown`` written by our FFV1 writer when the source stated no rate (its timestamps then
#: step at the assumed rate): such a file's rate is ``assumed``, not ``file``.
RATE_TAG = "SEMIOSTREAM_RATE"


def _open_container(path: Path) -> Any:
    import av

    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise SourceError(
            path, f"not a readable video container ({e})", "the file is corrupt, truncated or not a video"
        ) from e


def packet_pts(container: Any, stream: Any, path: Path, what: str,
               cut: list[tuple[int | None, int | None]] | None = None) -> list[int | None]:
    """Presentation timestamps of ``stream``'s non-empty, non-discarded packets, in decode (file) order
    (None where a packet has none). Closes ``container`` and raises :class:`SourceError` when the packets
    are corrupt or there are none.

    With ``cut`` (a list), an incomplete last packet (flagged corrupt by the demuxer: the file ends inside
    it, as when a recorder stops mid-frame) is left out and its ``(pos, dts)`` appended to ``cut``."""
    import av

    try:
        packets = [(p.pts, p.is_corrupt, p.pos, p.dts) for p in container.demux(stream)
                   if p.size and not getattr(p, "is_discard", False)]
    except av.error.FFmpegError as e:
        container.close()
        raise SourceError(path, f"packet stream is corrupt ({e})") from e
    if cut is not None and len(packets) > 1 and packets[-1][1]:
        cut.append(packets.pop()[2:])
    pts = [p[0] for p in packets]
    if not pts:
        container.close()
        raise SourceError(path, f"{what} holds no frames", "the recording is empty")
    return pts


def index_packets(container: Any, stream: Any, path: Path, what: str) -> np.ndarray:
    """Sorted presentation timestamps ``[N]`` int64 of ``stream``'s non-empty packets (one per frame).

    Closes ``container`` and raises :class:`SourceError` when the packets are corrupt or there are none.
    """
    pts = [p for p in packet_pts(container, stream, path, what) if p is not None]
    if not pts:
        container.close()
        raise SourceError(path, f"{what} holds no frames with timestamps", "the recording is corrupt")
    return np.array(sorted(pts), dtype=np.int64)


def decode_order_only(pts: list[int | None], may_reorder: bool) -> bool:
    """True when packet timestamps cannot place decoded frames: some packet has none, or the stream can
    reorder frames (B-frames) yet its timestamps never go back in decode order (AVI stores a decode-order
    counter, not presentation times)."""
    if any(p is None for p in pts):
        return True
    return may_reorder and all(a < b for a, b in zip(pts[:-1], pts[1:], strict=True))


class _OutOfOrder(Exception):
    """A decoded frame's timestamp is not the next one of the packet index."""


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
        #: ``(pos, dts)`` of an incomplete last packet left out (the file ends inside it), else empty
        self.cut: list[tuple[int | None, int | None]] = []
        raw = packet_pts(c, s, self.path, "video stream", self.cut)
        #: frames numbered by the decoder's output order (see the module docstring), not by timestamp
        self.decode_order = decode_order_only(raw, bool(getattr(cc, "has_b_frames", 0)))
        if self.decode_order:
            known = [p for p in raw if p is not None]
            pts = sorted(known) if len(known) == len(raw) else None
            self._pts = np.array(pts if pts is not None else range(len(raw)), dtype=np.int64)
            self._times_known = pts is not None
        else:
            self._pts = np.array(sorted(raw), dtype=np.int64)
            self._times_known = True
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
        self.fps_from = "file"
        if c.metadata.get(RATE_TAG) == "unknown":
            self.fps, self.fps_from = 30.0, "assumed"  # the reader fills in a given rate
        elif rate:
            self.fps = float(rate)
        elif self._times_known and self.num_frames > 1 and self._pts[-1] > self._pts[0]:
            self.fps = float((self.num_frames - 1) / ((self._pts[-1] - self._pts[0]) * self._tb))
        else:
            self.fps, self.fps_from = 30.0, "assumed"  # the reader fills in a given rate
        self._frames: Iterator[Any] | None = None
        self._next = -1  # index of the frame the live decoder yields next

    def frame_times(self, start: int, stop: int) -> np.ndarray:
        if not self._times_known:
            return super().frame_times(start, stop)
        return ((self._pts[start:stop] - self._pts[0]) * float(self._tb)).astype(np.float64)

    def _restart(self) -> None:
        """Decode from the start of the file again (frame 0 is the decoder's first output)."""
        index = self._stream.index
        self._container.close()
        self._container = _open_container(self.path)
        self._stream = next(s for s in self._container.streams if s.index == index)
        self._frames = self._decode()
        self._next = 0

    def _decode(self) -> Iterator[Any]:
        """The stream's decoded frames from the container's position, without an incomplete last packet."""
        for packet in self._container.demux(self._stream):
            if not (self.cut and packet.is_corrupt and (packet.pos, packet.dts) in self.cut):
                yield from packet.decode()

    def _decoded(self) -> Iterator[tuple[int, Any]]:
        """``(frame index, av.VideoFrame)`` in decoding output order (index -1: not a frame of the index)."""
        assert self._frames is not None
        for frame in self._frames:
            if self.decode_order:
                i, self._next = self._next, self._next + 1
                yield i, frame
            elif frame.pts is not None and int(frame.pts) in self._index:
                yield self._index[int(frame.pts)], frame

    def _read(self, start: int, stop: int) -> np.ndarray:
        try:
            return self._read_frames(start, stop)
        except _OutOfOrder:
            # the decoded timestamps do not match the packets': number frames as the decoder outputs them
            self.decode_order, self._frames, self._next = True, None, -1
            return self._read_frames(start, stop)

    def _read_frames(self, start: int, stop: int) -> np.ndarray:
        import av

        out = np.empty((stop - start, self.height, self.width), np.uint16)
        got = start
        try:
            if self.decode_order:
                if self._frames is None or self._next > start:
                    self._restart()
            elif self._frames is None or self._next != start:
                self._container.seek(int(self._pts[start]), stream=self._stream, backward=True, any_frame=False)
                self._frames = self._decode()
            for i, frame in self._decoded():
                if i < start:
                    continue
                if i != got:
                    self._frames, self._next = None, -1
                    raise _OutOfOrder
                out[i - start] = frame.to_ndarray(format=self._to_format)
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
