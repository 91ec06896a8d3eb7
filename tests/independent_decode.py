"""A second, independent decoder for the DICOM files the tests write: pydicom's pixel-data plugins (HTJ2K and
JPEG 2000 through pylibjpeg-openjpeg, i.e. OpenJPEG), never the OpenJPH library that encoded the frames."""

from __future__ import annotations

import numpy as np


def pydicom_frames(path) -> np.ndarray:
    """All frames of ``path`` as ``[T, H, W]``, decoded by pydicom alone (its own file parsing and frame
    lookup, its HTJ2K plugin)."""
    import pydicom

    arr = pydicom.dcmread(path).pixel_array
    return arr if arr.ndim == 3 else arr[None]


def assert_pydicom_reads(path, frames: np.ndarray) -> None:
    """pydicom decodes ``path`` to exactly ``frames`` (``[T, H, W]`` or ``[H, W]``)."""
    frames = np.asarray(frames)
    frames = frames if frames.ndim == 3 else frames[None]
    got = pydicom_frames(path)
    assert got.shape == frames.shape, (got.shape, frames.shape)
    assert np.array_equal(got.astype(np.uint16), frames.astype(np.uint16)), f"{path}: pydicom decodes other pixels"
