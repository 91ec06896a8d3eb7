"""What kind of picture an input holds: the first thing a clinician checks before trusting a result.

The model was trained on 16-bit grayscale IR video. Every reader returns grayscale samples (a colour video
is read as its luma plane), so the kind is looked up here, in the file itself, and recorded beside the
result as ``"<depth> <gray|colour>"``:

* ``"16-bit gray"``: grayscale with more than 8 bits per sample (IR and depth sensors, FFV1 ``gray16le``,
  16-bit PNG/TIFF, DICOM with Bits Allocated 16): what the model was made for;
* ``"8-bit gray"``: 8-bit grayscale (an 8-bit PNG, DICOM or ``.npy``, or a video whose frames hold no colour
  even though its pixel format could: e.g. a gray camera exported as H.264 ``yuv420p``);
* ``"8-bit colour"`` (``"16-bit colour"``): a colour picture (an ordinary camera or phone video), scored
  through its luma.

A video whose pixel format carries colour (chroma planes, RGB, a palette) is decoded for up to
:data:`SAMPLE_FRAMES` frames from its start and called colour when more than :data:`COLOUR_SHARE` of the
pixels of one of them differ between their RGB channels by more than :data:`COLOUR_DELTA` (compression
leaves gray video within a few levels of gray). :class:`InputKind` ``detail`` says what was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: frames decoded from a video's start to look for colour
SAMPLE_FRAMES = 8
#: a pixel is coloured when its RGB channels differ by more than this (0..255)
COLOUR_DELTA = 24
#: a frame is colour when more than this share of its pixels is coloured
COLOUR_SHARE = 0.02

KINDS = ("16-bit gray", "8-bit gray", "8-bit colour", "16-bit colour")


@dataclass(frozen=True)
class InputKind:
    """``kind`` (one of :data:`KINDS`) and ``detail`` (the stored format, e.g. ``"yuv420p h264, colour"``)."""

    kind: str
    detail: str


def path_kind(path: str | Path) -> InputKind | None:
    """The kind of the input at ``path`` (a video, DICOM, ``.npy`` file or a folder of frames), from the file's
    header and, for a video in a colour pixel format, its first few frames. None when the file cannot be
    inspected (missing, unreadable, not a picture); it never raises."""
    from .read_images import list_frames
    from .source import VIDEO_SUFFIXES

    p = Path(path)
    try:
        if p.is_dir():
            return image_kind(list_frames(p)[0])
        suffix = p.suffix.lower()
        if suffix == ".npy":
            dtype = np.load(p, mmap_mode="r").dtype
            return InputKind(f"{_depth(dtype.itemsize * 8)} gray", f"npy {dtype.name}")
        if suffix in VIDEO_SUFFIXES:
            return video_kind(p)
        return dicom_kind(p)
    except Exception:  # noqa: BLE001 - an input that cannot be inspected says so in its error column
        return None


def _depth(bits: int) -> str:
    return "16-bit" if bits > 8 else "8-bit"


def is_colour(rgb: np.ndarray) -> bool:
    """Whether an ``[H, W, 3]`` uint8 picture holds colour (see the module docstring)."""
    x = rgb.astype(np.int16)
    spread = np.maximum(np.abs(x[..., 0] - x[..., 1]), np.abs(x[..., 1] - x[..., 2]))
    return bool((spread > COLOUR_DELTA).mean() > COLOUR_SHARE)


def video_kind(path: Path) -> InputKind:
    """The kind of a video file's first video stream (PyAV); an Azure Kinect recording's IR/depth tracks."""
    import av

    from .read_k4a import is_k4a

    with av.open(str(path)) as c:
        if is_k4a(c):
            return InputKind("16-bit gray", "Azure Kinect recording (16-bit IR/depth tracks)")
        s = next(s for s in c.streams if s.type == "video")
        fmt = s.codec_context.format
        what = f"{fmt.name} {s.codec_context.name}"
        bits = max(comp.bits for comp in fmt.components)
        coloured = fmt.is_rgb or fmt.has_palette or any(comp.is_chroma for comp in fmt.components)
        if not coloured:
            return InputKind(f"{_depth(bits)} gray", what)
        for k, frame in enumerate(c.decode(s)):
            if is_colour(frame.to_ndarray(format="rgb24")):
                return InputKind(f"{_depth(bits)} colour", f"{what}, colour")
            if k + 1 >= SAMPLE_FRAMES:
                break
    return InputKind(f"{_depth(bits)} gray", f"{what}, no colour in its first {SAMPLE_FRAMES} frames")


def dicom_kind(path: Path) -> InputKind:
    """The kind of a DICOM file from its header (Photometric Interpretation, Bits Allocated/Stored)."""
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["PhotometricInterpretation", "BitsAllocated", "BitsStored",
                                            "SamplesPerPixel"])
    pi = str(ds.get("PhotometricInterpretation", "") or "")
    alloc = int(ds.get("BitsAllocated", 16) or 16)
    stored = int(ds.get("BitsStored", alloc) or alloc)
    detail = f"DICOM {pi or 'no Photometric Interpretation'}, {stored} of {alloc} bits"
    colour = not pi.startswith("MONOCHROME") or int(ds.get("SamplesPerPixel", 1) or 1) > 1
    return InputKind(f"{_depth(alloc)} {'colour' if colour else 'gray'}", detail)


def image_kind(path: Path) -> InputKind:
    """The kind of a frame folder from its first frame's image mode (Pillow)."""
    from PIL import Image

    with Image.open(path) as im:
        mode, fmt = im.mode, im.format or path.suffix.lstrip(".").upper()
        detail = f"{fmt} mode {mode}"
        if mode in ("1", "L"):
            return InputKind("8-bit gray", detail)
        if mode.startswith("I") or mode == "F":
            return InputKind("16-bit gray", detail)
        colour = is_colour(np.asarray(im.convert("RGB")))
    return InputKind(f"8-bit {'colour' if colour else 'gray'}", f"{detail}, {'colour' if colour else 'no colour'}")
