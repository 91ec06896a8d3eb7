"""Write uint16 frames as lossless FFV1 Matroska (the recommended archive), ``.npy`` or PNG/TIFF folders.

Files are written under a temporary name and renamed when complete, so an interrupted write never leaves
a file that looks finished. :func:`convert_source` turns any readable source into FFV1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from semiostream.core.files import replacing

from .read_av import FRAMES_TAG, RATE_TAG
from .source import ASSUMED_FPS, Source

FORMATS = ("mkv", "npy", "png", "tiff")


def _chunks(frames: np.ndarray | Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    if isinstance(frames, np.ndarray):
        if frames.ndim == 2:
            frames = frames[None]
        yield frames
    else:
        yield from frames


def _check_chunk(chunk: np.ndarray, bit_depth: int) -> np.ndarray:
    if chunk.ndim == 2:
        chunk = chunk[None]
    if chunk.ndim != 3:
        raise ValueError(f"frames must be [T, H, W], got shape {chunk.shape}")
    if chunk.dtype not in (np.uint16, np.uint8):
        raise ValueError(f"frames must be uint16 (or uint8), got {chunk.dtype}")
    if bit_depth == 8 and chunk.size and int(chunk.max()) > 255:
        raise ValueError("bit_depth=8 but frames hold values above 255")
    return chunk


def write_ffv1(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float | None = 30.0,
    *,
    num_frames: int | None = None,
    bit_depth: int = 16,
    title: str = "IR",
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write frames losslessly as FFV1 (``gray16le``, or ``gray`` for 8-bit) in Matroska.

    Args:
        path: output ``.mkv`` file.
        frames: ``[T, H, W]`` uint16 array, or an iterable of such chunks (all the same H, W).
        fps: frame rate; stored as an exact fraction (29.97 -> 30000/1001). None: the rate is unknown
            (the source stated none); Matroska needs timestamps, so they step at
            :data:`~.source.ASSUMED_FPS` and the file is tagged ``SEMIOSTREAM_RATE=unknown``
            (:data:`~.read_av.RATE_TAG`): :class:`~.read_av.AvSource` then reports ``fps_from="assumed"``
            and scoring takes the bundle's rate, as for any source without a rate.
        num_frames: total frame count when ``frames`` is an iterable; stored as the ``SEMIOSTREAM_FRAMES``
            tag so readers detect truncated copies. Taken from the array when ``frames`` is one.
        bit_depth: 16 (default) or 8.
        title: Matroska track title.
        progress: called with the number of frames written after each chunk.

    FFV1 level 3 with per-slice CRCs: every frame is a keyframe (exact seeking) and corruption is detected.
    """
    import av

    path = Path(path)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if isinstance(frames, np.ndarray):
        num_frames = frames.shape[0] if frames.ndim == 3 else 1
    rate = Fraction(ASSUMED_FPS if fps is None else fps).limit_denominator(1001)
    pix_fmt = "gray16le" if bit_depth == 16 else "gray"
    with replacing(path, keep_suffix=True) as tmp:
        container = av.open(str(tmp), mode="w", format="matroska")
        written = 0
        try:
            if num_frames is not None:
                container.metadata[FRAMES_TAG] = str(int(num_frames))
            if fps is None:
                container.metadata[RATE_TAG] = "unknown"
            stream = None
            for chunk in _chunks(frames):
                chunk = _check_chunk(chunk, bit_depth)
                if stream is None:
                    stream = container.add_stream("ffv1", rate=rate)
                    stream.width, stream.height = int(chunk.shape[2]), int(chunk.shape[1])
                    stream.pix_fmt = pix_fmt
                    stream.options = {"level": "3", "slicecrc": "1", "g": "1", "slices": "4"}
                    stream.metadata["title"] = title
                elif (chunk.shape[1], chunk.shape[2]) != (stream.height, stream.width):
                    raise ValueError(
                        f"frame size changed from {stream.width}x{stream.height} to {chunk.shape[2]}x{chunk.shape[1]}"
                    )
                for frame in chunk:
                    vf = av.VideoFrame.from_ndarray(
                        np.ascontiguousarray(frame, dtype=np.uint16 if bit_depth == 16 else np.uint8),
                        format=pix_fmt,
                    )
                    vf.pts = written
                    for packet in stream.encode(vf):
                        container.mux(packet)
                    written += 1
                if progress is not None:
                    progress(written)
            if stream is None:
                raise ValueError("no frames to write")
            if num_frames is not None and written != num_frames:
                raise ValueError(f"num_frames={num_frames} but {written} frames were given")
            for packet in stream.encode():
                container.mux(packet)
            container.close()
        except BaseException:
            container.close()
            raise
    return path


def write_npy(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    *,
    num_frames: int | None = None,
    shape_hw: tuple[int, int] | None = None,
) -> Path:
    """Write ``[T, H, W]`` uint16 frames as ``.npy`` (streamed through a memory map for iterables,
    which then need ``num_frames`` and ``shape_hw``)."""
    path = Path(path)
    with replacing(path, keep_suffix=True) as tmp:
        if isinstance(frames, np.ndarray):
            np.save(tmp, _check_chunk(frames, 16).astype(np.uint16, copy=False), allow_pickle=False)
        else:
            if num_frames is None or shape_hw is None:
                raise ValueError("streaming .npy writes need num_frames and shape_hw")
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint16, shape=(num_frames, *shape_hw))
            i = 0
            for chunk in frames:
                chunk = _check_chunk(chunk, 16)
                out[i : i + len(chunk)] = chunk
                i += len(chunk)
            if i != num_frames:
                raise ValueError(f"num_frames={num_frames} but {i} frames were given")
            out.flush()
            del out
    return path


def write_image_folder(
    path: str | os.PathLike, frames: np.ndarray | Iterable[np.ndarray], suffix: str = ".png"
) -> Path:
    """Write frames as ``frame_000000.png`` (or ``.tif``) 16-bit grayscale files in folder ``path``."""
    from PIL import Image

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    for chunk in _chunks(frames):
        for frame in _check_chunk(chunk, 16):
            name = folder / f"frame_{i:06d}{suffix}"
            with replacing(name, durable=False, keep_suffix=True) as tmp:  # a killed run leaves whole frames
                Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint16)).save(tmp)
            i += 1
    return folder


def write_frames(path: str | os.PathLike, frames: np.ndarray, fps: float, fmt: str, title: str = "IR") -> Path:
    """Write a ``[T, H, W]`` uint16 array in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "mkv":
        return write_ffv1(path, frames, fps, title=title)
    if fmt == "npy":
        return write_npy(path, frames)
    if fmt in ("png", "tiff"):
        return write_image_folder(path, frames, suffix=".png" if fmt == "png" else ".tif")
    raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")


def convert_source(
    src: Source, dst: str | os.PathLike, chunk: int = 60, progress: Callable[[int], None] | None = None
) -> Path:
    """Re-encode any readable source as lossless FFV1 ``.mkv`` (keeps its bit depth and frame rate; a source
    whose rate is assumed (``fps_from == "assumed"``) gives a file tagged as of unknown rate, see
    :func:`write_ffv1`)."""
    return write_ffv1(
        dst,
        (frames for _, frames in src.iter_chunks(chunk)),
        fps=None if getattr(src, "fps_from", "file") == "assumed" else src.fps,
        num_frames=src.num_frames,
        bit_depth=src.bit_depth,
        title=src.stream.upper(),
        progress=progress,
    )
