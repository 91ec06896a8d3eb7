"""``.npy`` sources: a ``[T, H, W]`` uint16 (or uint8) array, memory-mapped, never unpickled."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .source import Source, SourceError, check_file


class NpySource(Source):
    """A ``[T, H, W]`` array file read through a read-only memory map.

    Args:
        path: the ``.npy`` file (uint16 or uint8, 3-D; a single 2-D frame is read as T = 1).
        fps: frame rate to report (``.npy`` stores none); default 30.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0) -> None:
        self.path = Path(path)
        check_file(self.path)
        try:
            arr = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise SourceError(
                self.path, f"not a plain numeric .npy array ({e})", "save frames with np.save(uint16 array)"
            ) from e
        except (OSError, EOFError) as e:
            raise SourceError(self.path, f"truncated or not a .npy file ({e})") from e
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise SourceError(self.path, f"array has shape {arr.shape}; expected [T, H, W] frames")
        if arr.dtype not in (np.uint16, np.uint8):
            raise SourceError(
                self.path,
                f"array dtype is {arr.dtype}; expected uint16 (or uint8)",
                "convert with arr.astype(np.uint16) if the values fit",
            )
        if arr.dtype.byteorder == ">":
            raise SourceError(self.path, "big-endian array", "save it little-endian: arr.astype('<u2')")
        if min(arr.shape) == 0:
            raise SourceError(self.path, f"array has shape {arr.shape}: no frames")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._arr = arr
        self.num_frames, self.height, self.width = (int(s) for s in arr.shape)
        self.fps = float(fps)
        self.bit_depth = 8 if arr.dtype == np.uint8 else 16

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.array(self._arr[start:stop], dtype=np.uint16, order="C")  # a copy: owns its memory
