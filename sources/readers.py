"""Open any supported IR source with one call: :func:`open_source`.

==========================  ==========================================  ==============================
source                      reader                                      notes
==========================  ==========================================  ==============================
``*.npy``                   :class:`~.read_npy.NpySource`               ``[T, H, W]`` uint16, mmap
``*.mkv`` FFV1 gray16le     :class:`~.read_av.AvSource`                 recommended lossless archive
``*.mkv`` Azure Kinect      :class:`~.read_k4a.K4aSource`               IR track, or ``stream="depth"``
folder of PNG/TIFF frames   :class:`~.read_images.ImageFolderSource`    decoded by DALI (cpu or gpu)
``*.dcm`` DICOM video       :class:`~.read_dicom.DicomSource`           HTJ2K archive; any grayscale
                                                                        multi-frame DICOM (also without
                                                                        a suffix: ``DICM`` preamble)
``*.mp4``/``*.avi``/...     :class:`~.read_av.AvSource`                 8-bit, PyAV on CPU
8-bit video, device="gpu"   :class:`~.read_video_gpu.GpuVideoSource`    DALI NVDEC decoder
==========================  ==========================================  ==============================

Every failure to open or decode raises :class:`~.source.SourceError` naming the file and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from semiostream.core.files import file_kind

from .source import (
    ASSUMED_FPS,
    DICOM_SUFFIXES,
    NPY_SUFFIXES,
    VIDEO_SUFFIXES,
    Source,
    SourceError,
    supported_suffixes,
)

__all__ = ["READERS", "Source", "SourceError", "open_source"]

STREAMS = ("ir", "depth")


def _rate_from(src: Source, fps: float | None) -> Source:
    """Set ``src.fps_from`` for a source that stores no rate: ``given`` or ``assumed``."""
    src.fps_from = "given" if fps else "assumed"
    return src


def _open_npy(path: Path, stream: str, fps: float | None, device: str) -> Source:
    from .read_npy import NpySource

    _single_stream(path, stream)
    return _rate_from(NpySource(path, fps=fps or ASSUMED_FPS), fps)


def installed(module: str) -> bool:
    """Whether ``module`` (e.g. ``"av"``, ``"nvidia.dali"``) can be imported, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # e.g. no `nvidia` namespace at all
        return False


def require(path: str | os.PathLike, module: str, dist: str, what: str) -> None:
    """Raise :class:`SourceError` naming the package when ``module`` is not installed: the runtime imports
    neither PyAV nor DALI until an input needs them."""
    if not installed(module):
        raise SourceError(path, f"{what} needs {dist}, which is not installed here",
                          f"install it (pip install {dist.split()[0]}) or convert the recording to .npy where it is")


def _open_video(path: Path, stream: str, fps: float | None, device: str) -> Source:
    require(path, "av", "av (PyAV)", "reading video files")
    import av

    from .read_av import AvSource
    from .read_k4a import K4aSource, is_k4a
    from .source import check_file

    check_file(path)
    try:
        with av.open(str(path)) as c:
            k4a = is_k4a(c)
    except av.error.FFmpegError as e:
        raise SourceError(
            path, f"not a readable video file ({e})", "the file is corrupt, truncated or not a video"
        ) from e
    if k4a:
        return K4aSource(path, stream=stream)
    _single_stream(path, stream)
    src = AvSource(path)
    if src.fps_from == "assumed" and fps:  # neither a stream rate nor timestamps: the rate given
        src.fps, src.fps_from = float(fps), "given"
    # NVDEC (through DALI, where installed) places frames by timestamp
    if device == "gpu" and src.bit_depth == 8 and not src.decode_order and installed("nvidia.dali"):
        from .read_video_gpu import GpuVideoSource

        src.close()
        return GpuVideoSource(path)
    return src


def _open_dicom(path: Path, stream: str, fps: float | None, device: str) -> Source:
    from .read_dicom import DicomSource

    _single_stream(path, stream)
    return DicomSource(path, fps=fps)  # it sets fps_from itself (file, given or assumed)


def _open_folder(path: Path, stream: str, fps: float | None, device: str) -> Source:
    require(path, "nvidia.dali", "nvidia-dali-cuda130 (DALI)", "decoding folders of PNG/TIFF frames")
    from .read_images import ImageFolderSource

    _single_stream(path, stream)
    return _rate_from(ImageFolderSource(path, fps=fps or ASSUMED_FPS, device=device), fps)


#: suffix (lower case; ``"/"`` = a folder of frames) -> opener(path, stream, fps, device)
READERS: dict[str, Callable[[Path, str, float | None, str], Source]] = {
    **{s: _open_npy for s in NPY_SUFFIXES},
    "/": _open_folder,
    **{s: _open_video for s in VIDEO_SUFFIXES},
    **{s: _open_dicom for s in DICOM_SUFFIXES},
}


def _single_stream(path: Path, stream: str) -> None:
    if stream != "ir":
        raise SourceError(
            path,
            f"has a single stream; stream={stream!r} exists only in Azure Kinect recordings",
            "leave --stream at 'ir'",
        )


def open_source(
    path: str | os.PathLike, stream: str = "ir", *, fps: float | None = None, device: str = "cpu"
) -> Source:
    """Open an IR source file or folder.

    Args:
        path: ``.npy``, ``.mkv`` (FFV1 or Azure Kinect), 8-bit video, DICOM (``.dcm``, or any file with
            the DICOM preamble), or a folder of PNG/TIFF frames.
        stream: ``"ir"`` (default) or ``"depth"`` (Azure Kinect recordings only).
        fps: frame rate for sources that store none (``.npy``, image folders, DICOM files without Frame
            Time, videos without a stream rate or timestamps); default :data:`ASSUMED_FPS`. The source's
            ``fps_from`` says whether its rate was stored, given or assumed.
        device: ``"cpu"`` or ``"gpu"``: where image folders and 8-bit video are decoded (DALI).

    Returns:
        A :class:`Source` with ``num_frames``, ``height``, ``width``, ``fps``, ``bit_depth`` and
        ``read(start, stop) -> [T, H, W] uint16``.

    Raises:
        SourceError: missing, empty, truncated, corrupt or unsupported file (the message names it).
    """
    p = Path(path)
    if stream not in STREAMS:
        raise SourceError(p, f"unknown stream {stream!r}", f"use one of {', '.join(STREAMS)}")
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
    kind = file_kind(p)
    if kind == "folder":
        return READERS["/"](p, stream, fps, device)
    if kind == "missing":
        raise SourceError(p, "no such file or folder", "check the path")
    if kind != "file":
        raise SourceError(p, f"is {kind}, not a regular file", "pass a video file or a folder of frames")
    opener = READERS.get(p.suffix.lower())
    if opener is None:
        from .read_dicom import is_dicom

        if is_dicom(p):
            return _open_dicom(p, stream, fps, device)
        hint = (
            "pass the folder that holds the frames"
            if p.suffix.lower() in (".png", ".tif", ".tiff")
            else (
                f"supported: {', '.join(supported_suffixes())}, DICOM files and folders of PNG/TIFF frames; "
                "convert other formats to FFV1 .mkv (see `semiostream convert`)"
            )
        )
        raise SourceError(p, f"unsupported file type {p.suffix or '(no suffix)'!r}", hint)
    return opener(p, stream, fps, device)
