"""Write uint16 (or uint8) frames as a lossless HTJ2K multi-frame DICOM file: the GPU-speed archive.

Container: one DICOM Part 10 file per recording, Transfer Syntax **HTJ2K Lossless**
(1.2.840.10008.1.2.4.201), Multi-frame Grayscale Word (16-bit) or Byte (8-bit) Secondary Capture
Image Storage, one HTJ2K codestream per frame, each in one fragment (encapsulated Pixel Data).

* **Random access**: an Extended Offset Table (7FE0,0001) and its lengths (7FE0,0002) give every frame's
  byte range (64-bit, so recordings over 4 GiB work; the Basic Offset Table is then empty, as the
  standard requires). Readers without Extended Offset Table support still find frame ``i`` as fragment
  ``i``, since there is exactly one fragment per frame.
* **Timing**: Frame Time (0018,1063, ms), Cine Rate and Recommended Display Frame Rate for a constant
  rate; Frame Time Vector (0018,1065) as well when the source's capture times are irregular (the Frame
  Increment Pointer names whichever applies); Acquisition DateTime when the source knows it.
* **Losslessness**: reversible HTJ2K (imagecodecs / OpenJPH); with ``verify=True`` every frame is decoded
  again and compared bit for bit before the file is published.

Streaming: frames are encoded chunk by chunk (in parallel threads) and appended; the offset table is
filled in at the end; the file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .read_dicom import HTJ2K_LOSSLESS, decode_threads
from .source import Source

WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word Secondary Capture Image Storage
BYTE_SC = "1.2.840.10008.5.1.4.1.1.7.2"  # Multi-frame Grayscale Byte Secondary Capture Image Storage
FRAME_TIME, FRAME_TIME_VECTOR = 0x00181063, 0x00181065
#: attributes a DICOM source's header may pass on to its HTJ2K copy (everything but the pixel description)
PIXEL_KEYWORDS = {
    "PixelData", "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "NumberOfFrames", "Rows", "Columns",
    "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "PlanarConfiguration", "LossyImageCompression", "FrameIncrementPointer",
    "FrameTime", "FrameTimeVector", "CineRate", "RecommendedDisplayFrameRate", "SOPClassUID",
    "FloatPixelData", "DoubleFloatPixelData", "PixelPaddingValue", "SmallestImagePixelValue",
    "LargestImagePixelValue", "RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth",
}


class LosslessError(ValueError):
    """A frame did not decode back to itself (never expected: the codec library is broken)."""


def encode_frame(frame: np.ndarray) -> bytes:
    """``[H, W]`` uint16 or uint8 -> reversible (lossless) HTJ2K codestream."""
    import imagecodecs

    return bytes(imagecodecs.htj2k_encode(np.ascontiguousarray(frame), reversible=True))


def _header(height: int, width: int, num_frames: int, bit_depth: int, fps: float, times: np.ndarray | None,
            acquired: str | None, base: Any | None, title: str) -> Any:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

    ds = Dataset()
    now = dt.datetime.now(dt.UTC)
    if base is not None:  # a DICOM source: same patient, study, series and instance, new pixel encoding
        for elem in base:
            if elem.keyword not in PIXEL_KEYWORDS and elem.tag.group != 0x0002:
                ds.add(elem)
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            if key not in ds:
                setattr(ds, key, generate_uid())
    else:
        for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "ReferringPhysicianName",
                    "StudyID", "AccessionNumber"):
            setattr(ds, key, "")
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
        ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        ds.ContentDate, ds.ContentTime = ds.StudyDate, ds.StudyTime
        ds.Modality, ds.ConversionType, ds.SeriesNumber, ds.InstanceNumber = "OT", "DI", 1, 1
        ds.SeriesDescription = f"{title} video"
        ds.BurnedInAnnotation = "NO"
    if acquired:
        ds.AcquisitionDateTime = acquired
    ds.SOPClassUID = WORD_SC if bit_depth == 16 else BYTE_SC
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns, ds.NumberOfFrames = int(height), int(width), int(num_frames)
    ds.BitsAllocated = ds.BitsStored = bit_depth
    ds.HighBit, ds.PixelRepresentation = bit_depth - 1, 0
    ds.LossyImageCompression = "00"
    frame_ms = 1000.0 / fps
    ds.FrameTime = f"{frame_ms:.10g}"[:16]
    ds.CineRate = int(round(fps))
    ds.RecommendedDisplayFrameRate = int(round(fps))
    ds.FrameIncrementPointer = FRAME_TIME
    if times is not None:
        ds.FrameTimeVector = [f"{v:.10g}"[:16] for v in np.concatenate([[0.0], np.diff(times) * 1000.0])]
        ds.FrameIncrementPointer = FRAME_TIME_VECTOR
    ds.ExtendedOffsetTable = bytes(8 * num_frames)  # placeholders, filled in at the end
    ds.ExtendedOffsetTableLengths = bytes(8 * num_frames)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = HTJ2K_LOSSLESS
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def _irregular(times: np.ndarray | None, fps: float) -> np.ndarray | None:
    """``times`` if they depart from ``i / fps`` by more than 0.1 ms, else None."""
    if times is None or len(times) < 2:
        return None
    times = np.asarray(times, np.float64) - float(times[0])
    return times if np.max(np.abs(times - np.arange(len(times)) / fps)) > 1e-4 else None


def write_htj2k_dicom(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = 30.0,
    *,
    num_frames: int | None = None,
    bit_depth: int = 16,
    frame_times: Sequence[float] | np.ndarray | None = None,
    acquired: str | None = None,
    base_header: Any | None = None,
    title: str = "IR",
    verify: bool = True,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write frames losslessly as an HTJ2K multi-frame DICOM file (see the module docstring).

    Args:
        path: output file (``.dcm``).
        frames: ``[T, H, W]`` uint16 (or uint8) array, or an iterable of such chunks (same H, W).
        fps: frame rate (> 0).
        num_frames: total frames when ``frames`` is an iterable (the offset table is sized from it).
        bit_depth: 16 (Word SC) or 8 (Byte SC; values must be 0..255).
        frame_times: ``[T]`` capture times in seconds; stored as a Frame Time Vector when irregular.
        acquired: DICOM DT of the first frame (``YYYYMMDDHHMMSS.FFFFFF``), stored as Acquisition DateTime.
        base_header: a pydicom data set (without pixel data) whose patient, study, series and instance
            attributes are kept (transcoding a DICOM file); None writes fresh, empty identifiers.
        verify: decode every frame again and compare it bit for bit (raises :class:`LosslessError`).
        threads: encoding threads (default: the cores this process may use).
        progress: called with the number of frames written after each chunk.

    Returns:
        ``path``.
    """
    from pydicom.filewriter import dcmwrite

    path = Path(path)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if isinstance(frames, np.ndarray):
        frames = frames[None] if frames.ndim == 2 else frames
        num_frames = len(frames)
        chunks: Iterable[np.ndarray] = [frames]
    else:
        chunks = frames
    if not num_frames:
        raise ValueError("num_frames is needed (and > 0) when frames is an iterable")
    times = _irregular(None if frame_times is None else np.asarray(frame_times, np.float64), fps)
    if times is not None and len(times) != num_frames:
        raise ValueError(f"{len(times)} frame times for {num_frames} frames")
    tmp = path.with_name(f".{path.name}.partial{path.suffix}")
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    pool = cf.ThreadPoolExecutor(threads or decode_threads(), thread_name_prefix="htj2k-encode")
    offsets, lengths = np.zeros(num_frames, "<u8"), np.zeros(num_frames, "<u8")
    try:
        with open(tmp, "wb") as f:
            written, pos, eot_at = 0, 0, -1
            for chunk in chunks:
                chunk = _check(chunk, bit_depth)
                if written == 0:
                    ds = _header(chunk.shape[1], chunk.shape[2], num_frames, bit_depth, fps, times, acquired,
                                 base_header, title)
                    dcmwrite(f, ds, enforce_file_format=True)
                    eot_at = f.tell() - 2 * (12 + 8 * num_frames) + 12
                    # Pixel Data: OB, undefined length; an empty Basic Offset Table item
                    f.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
                    f.write(struct.pack("<HHI", 0xFFFE, 0xE000, 0))
                    shape = chunk.shape[1:]
                elif chunk.shape[1:] != shape:
                    raise ValueError(f"frame size changed from {shape[1]}x{shape[0]} to "
                                     f"{chunk.shape[2]}x{chunk.shape[1]}")
                if written + len(chunk) > num_frames:
                    raise ValueError(f"num_frames={num_frames} but more frames were given")
                chunk = chunk.astype(dtype, copy=False)
                encoded = list(pool.map(encode_frame, chunk))
                if verify:
                    _verify(pool, encoded, chunk, written)
                for data in encoded:
                    pad = len(data) % 2
                    f.write(struct.pack("<HHI", 0xFFFE, 0xE000, len(data) + pad))
                    f.write(data)
                    if pad:
                        f.write(b"\x00")
                    offsets[written], lengths[written] = pos, len(data) + pad
                    pos += 8 + len(data) + pad
                    written += 1
                if progress is not None:
                    progress(written)
            if written != num_frames:
                raise ValueError(f"num_frames={num_frames} but {written} frames were given")
            f.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
            f.seek(eot_at)
            f.write(offsets.tobytes())
            f.seek(eot_at + 8 * num_frames + 12)
            f.write(lengths.tobytes())
        _check_tables(tmp, eot_at, num_frames)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        pool.shutdown(wait=True)
    return path


def _check(chunk: np.ndarray, bit_depth: int) -> np.ndarray:
    if chunk.ndim == 2:
        chunk = chunk[None]
    if chunk.ndim != 3 or chunk.dtype not in (np.uint16, np.uint8) or 0 in chunk.shape:
        raise ValueError(f"frames must be [T, H, W] uint16 (or uint8), got {chunk.shape} {chunk.dtype}")
    if bit_depth == 8 and chunk.dtype == np.uint16 and int(chunk.max()) > 255:
        raise ValueError("bit_depth=8 but frames hold values above 255")
    return chunk


def _verify(pool: cf.ThreadPoolExecutor, encoded: list[bytes], chunk: np.ndarray, first: int) -> None:
    import imagecodecs

    def same(i: int) -> bool:
        return bool(np.array_equal(imagecodecs.htj2k_decode(encoded[i]), chunk[i]))

    for i, ok in enumerate(pool.map(same, range(len(encoded)))):
        if not ok:
            raise LosslessError(f"frame {first + i} did not decode to itself after HTJ2K encoding; "
                                "reinstall imagecodecs (its OpenJPH build is broken)")


def _check_tables(path: Path, eot_at: int, num_frames: int) -> None:
    """The placeholders were where they were meant to be: the tags just before each table's value."""
    with open(path, "rb") as f:
        f.seek(eot_at - 12)
        a = f.read(12)
        f.seek(eot_at + 8 * num_frames)
        b = f.read(12)
    if a[:6] != b"\xe0\x7f\x01\x00OV" or b[:6] != b"\xe0\x7f\x02\x00OV":
        raise RuntimeError("internal error: the Extended Offset Table was not where it was written")


def source_header(src: Source) -> Any | None:
    """A DICOM source's data set without pixel data (identifiers included), to carry into its copy."""
    from .read_dicom import DicomSource

    if not isinstance(src, DicomSource):
        return None
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(src.path, stop_before_pixels=True)


def convert_to_htj2k(src: Source, dst: str | os.PathLike, chunk: int = 60, *, verify: bool = True,
                     progress: Callable[[int], None] | None = None) -> Path:
    """Re-encode any readable source as an HTJ2K Lossless DICOM file (its bit depth, rate and capture
    times kept; a DICOM source's identifiers and acquisition time kept too)."""
    from .read_dicom import DicomSource

    acquired = src.header.acquisition_datetime if isinstance(src, DicomSource) else None
    return write_htj2k_dicom(
        dst,
        (frames for _, frames in src.iter_chunks(chunk)),
        fps=src.fps,
        num_frames=src.num_frames,
        bit_depth=src.bit_depth,
        frame_times=src.frame_times(0, src.num_frames),
        acquired=acquired,
        base_header=source_header(src),
        title=src.stream.upper(),
        verify=verify,
        progress=progress,
    )
