"""Write uint16 (or uint8) frames as a lossless HTJ2K multi-frame DICOM file: the GPU-speed archive.

Container: one DICOM Part 10 file per recording, Transfer Syntax **HTJ2K Lossless**
(1.2.840.10008.1.2.4.201), Multi-frame Grayscale Word (16-bit) or Byte (8-bit) Secondary Capture
Image Storage, one HTJ2K codestream per frame, each in one fragment (encapsulated Pixel Data).

* **Random access**: an Extended Offset Table (7FE0,0001) and its lengths (7FE0,0002) give every frame's
  byte range (64-bit, so recordings over 4 GiB work; the Basic Offset Table is then empty, as the
  standard requires). Readers without Extended Offset Table support still find frame ``i`` as fragment
  ``i``, since there is exactly one fragment per frame.
* **Timing**: only what the source knows (or the caller states): Frame Time (0018,1063, ms), Cine Rate
  and Recommended Display Frame Rate for a known constant rate; Frame Time Vector (0018,1065) as well when
  the capture times are irregular (the Frame Increment Pointer names whichever applies); Acquisition
  DateTime when the source knows it. Without a known rate no timing attribute is written, and no Frame
  Increment Pointer either (the frames are in capture order; readers assume a rate and say so).
* **Pixel description**: Bits Stored as the source says (e.g. 12 of 16 bits allocated), MONOCHROME2,
  unsigned; Rescale Slope / Intercept / Type kept from a DICOM source, else the identity (1, 0, ``US``).
* **Losslessness**: reversible HTJ2K (:mod:`.htj2k_codec`); with ``verify=True`` every frame is decoded
  again and compared bit for bit before the file is published.
* **Integrity**: a CRC-32 of every frame's stored bytes in a private data element (:mod:`.frame_checksum`),
  verified by every reader: a damaged frame is an error naming it, never wrong pixels.

Streaming: frames are encoded chunk by chunk (in parallel threads) and appended; the offset table is
filled in at the end; the file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import io
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semiostream.core.files import replacing

from . import frame_checksum, htj2k_codec
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
    "FrameTime", "FrameTimeVector", "FrameLabelVector", "CineRate", "RecommendedDisplayFrameRate",
    "SOPClassUID", "FloatPixelData", "DoubleFloatPixelData", "PixelPaddingValue", "SmallestImagePixelValue",
    "LargestImagePixelValue", "WindowCenter", "WindowWidth",
}
#: lossy transfer syntaxes a DICOM source may have -> Lossy Image Compression Method (PS3.3 C.7.6.1.1.5.1)
LOSSY_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1", "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1", "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",
}
#: identity rescale, written when the source states none (Rescale Type US: unspecified units)
IDENTITY_RESCALE = {"RescaleIntercept": "0", "RescaleSlope": "1", "RescaleType": "US"}


class LosslessError(ValueError):
    """A frame did not decode back to itself (never expected: a defect of the HTJ2K codec library)."""


def _header(height: int, width: int, num_frames: int, bit_depth: int, bits_stored: int, fps: float | None,
            times: np.ndarray | None, acquired: str | None, base: Any | None, title: str) -> Any:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

    ds = Dataset()
    now = dt.datetime.now(dt.UTC)
    if base is not None:  # a DICOM source: same patient, study, series (and instance when it was a
        # multi-frame grayscale SC object already: then only the transfer syntax changes)
        for elem in base:
            if elem.keyword not in PIXEL_KEYWORDS and elem.tag.group != 0x0002:
                ds.add(elem)
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            if key not in ds:
                setattr(ds, key, generate_uid())
        sop_class = WORD_SC if bit_depth == 16 else BYTE_SC
        if str(base.get("SOPClassUID", "")) != sop_class:  # another kind of object: a new instance, derived
            ref = Dataset()
            ref.ReferencedSOPClassUID = str(base.get("SOPClassUID", "")) or sop_class
            ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
            ds.SourceImageSequence = [ref]
            ds.SOPInstanceUID = generate_uid()
            if "ConversionType" not in ds:
                ds.ConversionType = "WSD"  # converted on a workstation
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
    ds.BitsAllocated, ds.BitsStored = bit_depth, bits_stored
    ds.HighBit, ds.PixelRepresentation = bits_stored - 1, 0
    for key, value in IDENTITY_RESCALE.items():
        if key not in ds:
            setattr(ds, key, value)
    # once lossy, always lossy (PS3.3 C.7.6.1.1.5): a lossy source's history is kept, never reset to "00"
    lossy = base is not None and str(base.get("LossyImageCompression", "")).strip() == "01"
    ds.LossyImageCompression = "01" if lossy else "00"
    if fps is not None:
        frame_ms = 1000.0 / fps
        ds.FrameTime = f"{frame_ms:.10g}"[:16]
        ds.CineRate = int(round(fps))
        ds.RecommendedDisplayFrameRate = int(round(fps))
        ds.FrameIncrementPointer = FRAME_TIME
    if times is not None:
        ds.FrameTimeVector = [f"{v:.10g}"[:16] for v in np.concatenate([[0.0], np.diff(times) * 1000.0])]
        ds.FrameIncrementPointer = FRAME_TIME_VECTOR
    frame_checksum.add_placeholder(ds, num_frames)
    ds.ExtendedOffsetTable = bytes(8 * num_frames)  # placeholders, filled in at the end
    ds.ExtendedOffsetTableLengths = bytes(8 * num_frames)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = HTJ2K_LOSSLESS
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def _irregular(times: np.ndarray | None, fps: float | None) -> np.ndarray | None:
    """``times`` if they depart from ``i / fps`` by more than 0.1 ms (or no rate is known), else None."""
    if times is None or len(times) < 2:
        return None
    times = np.asarray(times, np.float64) - float(times[0])
    if fps is None:
        return times
    return times if np.max(np.abs(times - np.arange(len(times)) / fps)) > 1e-4 else None


def _serialise(ds: Any, num_frames: int) -> tuple[bytes, dict[int, int]]:
    """``ds`` as DICOM Part 10 bytes (no Pixel Data), and the file offsets of the values of the elements
    filled in after the frames: the checksums and the Extended Offset Table and its lengths."""
    from pydicom.filereader import data_element_generator
    from pydicom.filewriter import dcmwrite

    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    head = buf.getvalue()
    start = 132 + 12 + struct.unpack_from("<I", head, 132 + 8)[0]  # after the file meta group
    want = {frame_checksum.checksum_tag(ds): 4, 0x7FE00001: 8, 0x7FE00002: 8}
    found = {}
    for elem in data_element_generator(io.BytesIO(head[start:]), False, True, defer_size=64):
        if int(elem.tag) in want:
            if elem.length != want[int(elem.tag)] * num_frames:
                break
            found[int(elem.tag)] = start + elem.value_tell
    if len(found) != len(want):
        raise RuntimeError("internal error: the checksum and offset tables are not where they were written")
    return head, found


def write_htj2k_dicom(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float | None = None,
    *,
    num_frames: int | None = None,
    bit_depth: int = 16,
    bits_stored: int | None = None,
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
        fps: frame rate (> 0) the source states; None: unknown, no Frame Time is written.
        num_frames: total frames when ``frames`` is an iterable (the offset table is sized from it).
        bit_depth: 16 (Word SC) or 8 (Byte SC; values must be 0..255).
        bits_stored: significant bits of each sample (default ``bit_depth``; e.g. 12 for a 12-bit sensor;
            values must be below ``2 ** bits_stored``).
        frame_times: ``[T]`` capture times in seconds; stored as a Frame Time Vector when irregular (or
            when ``fps`` is None).
        acquired: DICOM DT of the first frame (``YYYYMMDDHHMMSS.FFFFFF``), stored as Acquisition DateTime.
        base_header: a pydicom data set (without pixel data) whose patient, study, series and instance
            attributes are kept (transcoding a DICOM file); None writes fresh, empty identifiers.
        verify: decode every frame again and compare it bit for bit (raises :class:`LosslessError`).
            Without it the frames are still encoded correctly (see :mod:`.htj2k_codec`); only the proof
            is skipped.
        threads: encoding threads (default: the cores this process may use).
        progress: called with the number of frames written after each chunk.

    Returns:
        ``path``.
    """
    path = Path(path)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    bits_stored = bit_depth if bits_stored is None else int(bits_stored)
    if not 1 <= bits_stored <= bit_depth:
        raise ValueError(f"bits_stored must be 1..{bit_depth}, got {bits_stored}")
    if fps is not None and not fps > 0:
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
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    pool = cf.ThreadPoolExecutor(threads or decode_threads(), thread_name_prefix="htj2k-encode")
    offsets, lengths = np.zeros(num_frames, "<u8"), np.zeros(num_frames, "<u8")
    crcs = np.zeros(num_frames, "<u4")
    try:
        with replacing(path) as tmp, open(tmp, "wb") as f:
            written, pos, at = 0, 0, {}
            for chunk in chunks:
                chunk = _check(chunk, bit_depth, bits_stored)
                if written == 0:
                    ds = _header(chunk.shape[1], chunk.shape[2], num_frames, bit_depth, bits_stored, fps, times,
                                 acquired, base_header, title)
                    head, at = _serialise(ds, num_frames)
                    f.write(head)
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
                encoded = list(pool.map(htj2k_codec.encode, chunk))
                if verify:
                    _verify(pool, encoded, chunk, written)
                for data in encoded:
                    pad = len(data) % 2
                    if pad:
                        data += b"\x00"
                    f.write(struct.pack("<HHI", 0xFFFE, 0xE000, len(data)))
                    f.write(data)
                    crcs[written] = frame_checksum.crc(data)
                    offsets[written], lengths[written] = pos, len(data)
                    pos += 8 + len(data)
                    written += 1
                if progress is not None:
                    progress(written)
            if written != num_frames:
                raise ValueError(f"num_frames={num_frames} but {written} frames were given")
            f.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
            for tag, table in ((0x7FE00001, offsets), (0x7FE00002, lengths),
                               (frame_checksum.checksum_tag(ds), crcs)):
                f.seek(at[tag])
                f.write(table.tobytes())
    finally:
        pool.shutdown(wait=True)
    return path


def _check(chunk: np.ndarray, bit_depth: int, bits_stored: int) -> np.ndarray:
    if chunk.ndim == 2:
        chunk = chunk[None]
    if chunk.ndim != 3 or chunk.dtype not in (np.uint16, np.uint8) or 0 in chunk.shape:
        raise ValueError(f"frames must be [T, H, W] uint16 (or uint8), got {chunk.shape} {chunk.dtype}")
    if int(chunk.max()) >= 1 << bits_stored:
        raise ValueError(f"bits_stored={bits_stored} but frames hold values up to {int(chunk.max())}")
    return chunk


def _verify(pool: cf.ThreadPoolExecutor, encoded: list[bytes], chunk: np.ndarray, first: int) -> None:
    def same(i: int) -> bool:
        try:
            return bool(np.array_equal(htj2k_codec.decode(encoded[i]), chunk[i]))
        except htj2k_codec.Htj2kDecodeError:
            return False

    for i, ok in enumerate(pool.map(same, range(len(encoded)))):
        if not ok:
            import imagecodecs

            raise LosslessError(
                f"frame {first + i} did not decode to itself after HTJ2K encoding, so nothing was written "
                f"(imagecodecs {imagecodecs.__version__}, {imagecodecs.htj2k_version()}): a defect of the "
                "codec library; write FFV1 instead (an .mkv output) and report the versions with the input")


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
    """Re-encode any readable source as an HTJ2K Lossless DICOM file, keeping what the source states and
    inventing nothing: its bit depth and Bits Stored (a DICOM source's; others: the bit depth), its frame
    rate and capture times when it stores them (``src.fps_from == "file"``) or the rate was given
    (``"given"``: the rate only), none when it was assumed; a DICOM source's identifiers, acquisition time
    and rescale kept too."""
    from .read_dicom import DicomSource

    dicom = isinstance(src, DicomSource)
    acquired = src.header.acquisition_datetime if dicom else None
    stated = getattr(src, "fps_from", "file")
    base = source_header(src)
    if dicom and src.header.transfer_syntax in LOSSY_SYNTAXES and not base.get("LossyImageCompression"):
        base.LossyImageCompression = "01"  # stored with a lossy codec, and the header says nothing else
        base.LossyImageCompressionMethod = LOSSY_SYNTAXES[src.header.transfer_syntax]
    return write_htj2k_dicom(
        dst,
        (frames for _, frames in src.iter_chunks(chunk)),
        fps=src.fps if stated in ("file", "given") else None,
        num_frames=src.num_frames,
        bit_depth=src.bit_depth,
        bits_stored=min(src.header.bits_stored, src.bit_depth) if dicom else None,
        frame_times=src.frame_times(0, src.num_frames) if stated == "file" else None,
        acquired=acquired,
        base_header=base,
        title=src.stream.upper(),
        verify=verify,
        progress=progress,
    )
