"""The one interface every IR source implements, and the one error type readers raise.

A :class:`Source` is an open video of ``num_frames`` frames of ``height`` x ``width`` pixels.
``read(start, stop)`` returns ``[T, H, W] uint16`` frames, never the whole archive at once.
8-bit sources (ordinary video, 8-bit PNG) are returned as uint16 holding the values 0..255 and report
``bit_depth == 8``; see :func:`semiostream.dali_pipes.intensity.spec_for_bit_depth`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from semiostream.core.files import file_kind

#: file suffixes (lower case) that :func:`~.readers.open_source` reads, by format
NPY_SUFFIXES = (".npy",)
VIDEO_SUFFIXES = (".mkv", ".mp4", ".avi", ".mov", ".m4v", ".webm")
DICOM_SUFFIXES = (".dcm", ".dicom")

#: the frame rate assumed for a source that stores none when none is given (frames/s); a source read
#: for a model takes the bundle's rate instead (:func:`~.rate.at_rate`)
ASSUMED_FPS = 30.0


def supported_suffixes() -> list[str]:
    """The file suffixes :func:`~.readers.open_source` reads (besides folders of frames and DICOM files
    recognised by their preamble), sorted."""
    return sorted(NPY_SUFFIXES + VIDEO_SUFFIXES + DICOM_SUFFIXES)


class SourceError(ValueError):
    """A file cannot be read as an IR source: missing, empty, truncated, corrupt or unsupported.

    The message names the file, the problem and how to fix it.
    """

    def __init__(self, path: str | os.PathLike, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f"; {fix}"
        super().__init__(msg)


class Source(ABC):
    """An open video source of uint16 frames.

    Attributes:
        path: the file or folder it reads.
        stream: which stream of the file (``"ir"`` or ``"depth"``; single-stream files are ``"ir"``).
        num_frames, height, width: frame count and frame size in pixels.
        fps: nominal frame rate (frames per second).
        fps_from: where ``fps`` comes from: ``"file"`` (the file stores it: stream rate, timestamps, DICOM
            Frame Time), ``"given"`` (``--fps`` or a manifest's ``fps``) or ``"assumed"`` (none stored or given:
            30 fps assumed).
        bit_depth: 16 for IR/depth sensors, 8 for ordinary video (values 0..255).
    """

    path: Path
    stream: str = "ir"
    num_frames: int
    height: int
    width: int
    fps: float
    fps_from: str = "file"
    bit_depth: int = 16

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the stored samples (uint16 or uint8); :meth:`read` always returns uint16."""
        return np.dtype(np.uint16 if self.bit_depth > 8 else np.uint8)

    @property
    def source_id(self) -> str:
        return f"{self.path}" if self.stream == "ir" else f"{self.path}#{self.stream}"

    @abstractmethod
    def _read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)`` (already range-checked) as ``[T, H, W] uint16``."""

    def read(self, start: int, stop: int) -> np.ndarray:
        """Read frames ``start <= i < stop``.

        Returns:
            ``[stop - start, H, W] uint16`` C-contiguous array (8-bit sources: values 0..255).

        Raises:
            IndexError: the range is empty or outside ``[0, num_frames)``.
            SourceError: the file turned out to be truncated or corrupt while decoding.
        """
        start, stop = int(start), int(stop)
        if not 0 <= start < stop <= self.num_frames:
            raise IndexError(f"{self.path}: frames [{start}, {stop}) are outside the source's {self.num_frames} frames")
        out = self._read(start, stop)
        if out.shape != (stop - start, self.height, self.width) or out.dtype != np.uint16:
            raise SourceError(
                self.path,
                f"decoded {out.shape} {out.dtype} for frames [{start}, {stop}), "
                f"expected ({stop - start}, {self.height}, {self.width}) uint16",
                "the file is probably corrupt",
            )
        return out

    def frame_times(self, start: int, stop: int) -> np.ndarray:
        """Capture times in seconds of frames ``[start, stop)``, relative to the first frame.

        Sources without timestamps (npy, image folders) use ``index / fps``.
        """
        return np.arange(start, stop, dtype=np.float64) / self.fps

    def iter_chunks(self, chunk: int = 60, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_index, [<=chunk, H, W] uint16)`` over the whole source, in order."""
        for s in range(start, self.num_frames, chunk):
            yield s, self.read(s, min(s + chunk, self.num_frames))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles (idempotent)."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, stream={self.stream!r}, frames={self.num_frames}, "
            f"{self.width}x{self.height}, {self.fps:g} fps, {self.bit_depth}-bit)"
        )


def check_file(path: Path) -> None:
    """Raise :class:`SourceError` if ``path`` is not a non-empty regular file (FIFOs, devices, sockets and
    symbolic link loops are refused without being opened)."""
    kind = file_kind(path)
    if kind == "missing":
        raise SourceError(path, "no such file", "check the path")
    if kind != "file":
        raise SourceError(path, f"is {kind}, not a regular file", "pass a video file or a folder of frames")
    if path.stat().st_size == 0:
        raise SourceError(path, "the file is empty (0 bytes)", "the recording or copy did not complete")
