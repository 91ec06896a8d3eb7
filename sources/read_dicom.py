"""Multi-frame grayscale DICOM video (``.dcm``): 16-bit or 8-bit, any transfer syntax listed below.

=====================================  ==============================  ===============================
transfer syntax                        UID                             decoded by
=====================================  ==============================  ===============================
Implicit / Explicit VR Little Endian   1.2.840.10008.1.2, .1.2.1       read in place (no decoding)
Explicit VR Big Endian                 1.2.840.10008.1.2.2             read in place, byte-swapped
RLE Lossless                           1.2.840.10008.1.2.5             imagecodecs (DICOM RLE)
JPEG Baseline / Extended               1.2.840.10008.1.2.4.50, .51     imagecodecs (libjpeg-turbo)
JPEG Lossless (SV1)                    1.2.840.10008.1.2.4.57, .70     imagecodecs (LJPEG)
JPEG-LS (near-)lossless                1.2.840.10008.1.2.4.80, .81     imagecodecs (CharLS)
JPEG 2000 (lossless)                   1.2.840.10008.1.2.4.90, .91     imagecodecs (OpenJPEG)
HTJ2K (lossless, RPCL)                 1.2.840.10008.1.2.4.201..203    imagecodecs (OpenJPH), :mod:`.htj2k_codec`
=====================================  ==============================  ===============================

The header is parsed with pydicom, **only the attributes listed in** :data:`HEADER_TAGS`: patient and
study identifiers are never read into memory here, so they cannot reach a log line or an error message.
Frames are located once at open (:mod:`.dicom_frames`: Extended / Basic Offset Table, or the item headers)
and ``read(start, stop)`` reads only the bytes of those frames; compressed frames of a window are decoded
in parallel threads (the codecs release the GIL). The frame rate comes from Frame Time, Frame Time Vector,
Cine Rate or Recommended Display Frame Rate (in that order); capture times from Frame Time Vector when
the file has one. MONOCHROME1 frames are inverted to MONOCHROME2 sense (bright = warm), unused high bits
are cleared. Colour, signed, floating-point and video (MPEG/H.264) files raise :class:`SourceError`.

**Integrity**: a file with per-frame checksums (:mod:`.frame_checksum`, written by ``semiostream convert``)
has every frame it reads checked against them before decoding (:meth:`DicomSource.codestreams` and
:meth:`DicomSource.read`, hence also the DALI graph); a damaged frame raises :class:`SourceError` naming the
file and the frame. Every codec error raises too (HTJ2K: :mod:`.htj2k_codec`), never returns zeros. Every
JPEG 2000 / HTJ2K frame's main header and tile-part lengths are checked (:mod:`.j2k_header`, also against
Rows and Columns) before a decoder sees it, with or without checksums: a damaged header from any writer is
an error naming the frame, never a decoder that hangs.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import frame_checksum, j2k_header
from .dicom_frames import FrameIndexError, encapsulated_index, locate_pixel_data, split_items
from .source import ASSUMED_FPS, Source, SourceError, check_file

SUFFIXES = (".dcm", ".dicom")
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"

#: the only attributes read from a file's data set (no patient, study or operator identifiers)
HEADER_TAGS = (
    "SOPClassUID", "NumberOfFrames", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "FrameTime", "FrameTimeVector",
    "CineRate", "RecommendedDisplayFrameRate", "AcquisitionDateTime", "ExtendedOffsetTable",
    (0x7FE0, 0x0008), (0x7FE0, 0x0009),  # Float / Double Float Pixel Data
    *frame_checksum.CREATOR_TAGS,  # which private block, if any, holds the frame checksums
)

#: (name, native (explicit VR, little endian) or None)
NATIVE = {
    "1.2.840.10008.1.2": ("Implicit VR Little Endian", False, True),
    "1.2.840.10008.1.2.1": ("Explicit VR Little Endian", True, True),
    "1.2.840.10008.1.2.2": ("Explicit VR Big Endian", True, False),
}
#: UID -> (name, imagecodecs decoder, codestream family for grouping fragments)
ENCAPSULATED = {
    "1.2.840.10008.1.2.5": ("RLE Lossless", "dicomrle", None),
    "1.2.840.10008.1.2.4.50": ("JPEG Baseline", "jpeg8", "jpeg"),
    "1.2.840.10008.1.2.4.51": ("JPEG Extended", "jpeg8", "jpeg"),
    "1.2.840.10008.1.2.4.57": ("JPEG Lossless", "ljpeg", "jpeg"),
    "1.2.840.10008.1.2.4.70": ("JPEG Lossless SV1", "ljpeg", "jpeg"),
    "1.2.840.10008.1.2.4.80": ("JPEG-LS Lossless", "jpegls", "jpeg"),
    "1.2.840.10008.1.2.4.81": ("JPEG-LS Near-Lossless", "jpegls", "jpeg"),
    "1.2.840.10008.1.2.4.90": ("JPEG 2000 Lossless", "jpeg2k", "j2k"),
    "1.2.840.10008.1.2.4.91": ("JPEG 2000", "jpeg2k", "j2k"),
    "1.2.840.10008.1.2.4.201": ("HTJ2K Lossless", "htj2k", "j2k"),
    "1.2.840.10008.1.2.4.202": ("HTJ2K Lossless RPCL", "htj2k", "j2k"),
    "1.2.840.10008.1.2.4.203": ("HTJ2K", "htj2k", "j2k"),
}
HTJ2K_SYNTAXES = ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")
FIX_CONVERT = "convert it to a supported transfer syntax (e.g. uncompressed or HTJ2K Lossless) with a DICOM toolkit"

_POOL: cf.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def decode_threads() -> int:
    """Threads that decode the frames of one window: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool() -> cf.ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = cf.ThreadPoolExecutor(decode_threads(), thread_name_prefix="dicom-decode")
        return _POOL


def is_dicom(path: str | os.PathLike) -> bool:
    """True if ``path`` is a regular file with the DICOM Part 10 preamble (``DICM`` at byte 128)."""
    from semiostream.core.files import file_kind

    if file_kind(path) != "file":
        return False
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


@dataclass(frozen=True)
class DicomHeader:
    """What :class:`DicomSource` knows of a file beyond the :class:`Source` attributes (no identifiers)."""

    transfer_syntax: str
    transfer_syntax_name: str
    sop_class: str
    bits_stored: int
    monochrome1: bool
    acquisition_datetime: str | None
    #: whether the file holds per-frame checksums (:mod:`.frame_checksum`), verified on every read
    checksummed: bool = False


def _decoder(name: str, dtype: np.dtype) -> Callable[[bytes], np.ndarray]:
    import imagecodecs

    if name == "dicomrle":
        def rle(data: bytes) -> np.ndarray:
            return np.frombuffer(imagecodecs.dicomrle_decode(data, dtype.newbyteorder("<")), dtype)
        return rle
    if name == "htj2k":
        from .htj2k_codec import decode

        return decode
    return getattr(imagecodecs, f"{name}_decode")


class DicomSource(Source):
    """A multi-frame (or single-frame) grayscale DICOM image read frame-exactly.

    Args:
        path: a DICOM Part 10 file.
        fps: frame rate when the file stores none (default :data:`~.source.ASSUMED_FPS`); ``fps_from``
            says which was used: ``file``, ``given`` or ``assumed``.

    Attributes (besides :class:`Source`'s): ``header`` (:class:`DicomHeader`), ``encapsulated``.
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None) -> None:
        self.path = Path(path)
        check_file(self.path)
        self._file: Any = open(self.path, "rb")  # noqa: SIM115 - held until close()
        try:
            self._open(fps)
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------------------------
    def _open(self, fps: float | None) -> None:
        import pydicom
        from pydicom.errors import InvalidDicomError

        f = self._file
        try:
            with warnings.catch_warnings():  # pydicom's warnings may quote element values
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=list(HEADER_TAGS))
        except InvalidDicomError as e:
            raise SourceError(self.path, "not a DICOM file (no DICOM Part 10 header)",
                              "pass a DICOM file with its 128-byte preamble and 'DICM' prefix") from e
        except Exception as e:  # noqa: BLE001 - any parse failure is a damaged file
            raise SourceError(self.path, f"cannot parse the DICOM header ({type(e).__name__})",
                              "the file is truncated or corrupt") from e
        pixel_at = f.tell()
        ts = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
        self._check_image(ds, ts)
        self.num_frames = int(ds.get("NumberOfFrames", 1) or 1)
        self.height, self.width = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        self.bit_depth = 8 if bits == 8 else 16
        self._stored = np.dtype(np.uint8 if bits == 8 else np.uint16)
        bits_stored = int(ds.get("BitsStored", bits) or bits)
        self._mask = (1 << bits_stored) - 1 if bits_stored < bits else None
        self._fps_and_times(ds, fps)
        name = NATIVE[ts][0] if ts in NATIVE else ENCAPSULATED[ts][0]
        self._crcs = self._checksums(frame_checksum.checksum_tag(ds))
        self.header = DicomHeader(ts, name, str(ds.get("SOPClassUID", "")), bits_stored,
                                  ds.PhotometricInterpretation == "MONOCHROME1",
                                  str(ds.AcquisitionDateTime) if ds.get("AcquisitionDateTime") else None,
                                  self._crcs is not None)
        size = self.path.stat().st_size
        f.seek(pixel_at)
        explicit, little = NATIVE[ts][1:] if ts in NATIVE else (True, True)
        try:
            loc = locate_pixel_data(f, explicit, little)
            self.encapsulated = ts in ENCAPSULATED
            if self.encapsulated:
                if loc.length is not None:
                    raise FrameIndexError("compressed Pixel Data must have an undefined length (encapsulated)")
                eot = ds.get("ExtendedOffsetTable")
                self._starts, self._stops = encapsulated_index(
                    f, loc.value_offset, self.num_frames, size, ENCAPSULATED[ts][2], bytes(eot) if eot else None)
                self._decode = _decoder(ENCAPSULATED[ts][1], self._stored)
            else:
                self._frame_bytes = self.height * self.width * self._stored.itemsize
                self._native_at = loc.value_offset
                self._native_dtype = self._stored.newbyteorder("<" if little else ">")
                need = self._frame_bytes * self.num_frames
                if loc.length is None or loc.length < need or loc.value_offset + need > size:
                    have = min(loc.length or 0, size - loc.value_offset) // max(1, self._frame_bytes)
                    raise FrameIndexError(f"truncated: holds {have} of its {self.num_frames} frames")
        except FrameIndexError as e:
            fix = "copy or convert the recording again" if "truncated" in str(e) else "the file is corrupt"
            raise SourceError(self.path, str(e), fix) from e

    def _checksums(self, tag: int | None) -> np.ndarray | None:
        """``[num_frames]`` uint32 per-frame checksums from the private element ``tag`` (None: no element)."""
        if tag is None:
            return None
        import pydicom

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = pydicom.dcmread(self.path, stop_before_pixels=True, specific_tags=[tag]).get(tag)
        except Exception as e:  # noqa: BLE001 - the header parsed a moment ago: the file changed or is damaged
            raise SourceError(self.path, f"cannot read its frame checksums ({type(e).__name__})",
                              "the file is corrupt") from e
        crcs = frame_checksum.parse(None if value is None else value.value, self.num_frames)
        if crcs is None:
            raise SourceError(self.path, f"its frame checksum element does not hold {self.num_frames} values",
                              "the file is corrupt")
        return crcs

    def _verify(self, data: bytes | memoryview, index: int) -> None:
        """Raise :class:`SourceError` if frame ``index``'s stored bytes differ from its checksum."""
        if self._crcs is not None and frame_checksum.crc(data) != int(self._crcs[index]):
            raise SourceError(self.path, f"frame {index} is damaged (its bytes do not match the checksum "
                              "written with the archive)", "restore the file from a backup copy")

    def _check_image(self, ds: Any, ts: str) -> None:
        if not ts:
            raise SourceError(self.path, "has no Transfer Syntax UID in its file meta information",
                              "the file is corrupt or not a DICOM Part 10 file")
        if ts not in NATIVE and ts not in ENCAPSULATED:
            if ts == "1.2.840.10008.1.2.1.99":
                what = "Deflated Explicit VR Little Endian (the whole data set is compressed: no frame access)"
            else:
                import pydicom.uid

                what = f"{pydicom.uid.UID(ts).name} ({ts})"
            raise SourceError(self.path, f"transfer syntax {what} is not supported", FIX_CONVERT)
        if (0x7FE0, 0x0008) in ds or (0x7FE0, 0x0009) in ds:
            raise SourceError(self.path, "holds floating-point pixel data, not a grayscale video",
                              "pass an 8- or 16-bit unsigned grayscale image")
        missing = [k for k in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation") if k not in ds]
        if missing:
            raise SourceError(self.path, f"has no pixel data description ({', '.join(missing)} missing)",
                              "pass a DICOM image, not a report or other non-image object")
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        photometric = str(ds.PhotometricInterpretation).strip()
        if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise SourceError(self.path, f"is a colour image ({photometric}, {samples} samples per pixel)",
                              "pass a grayscale (MONOCHROME2) IR video")
        if int(ds.BitsAllocated) not in (8, 16):
            raise SourceError(self.path, f"has {ds.BitsAllocated} bits allocated per pixel",
                              "pass an 8- or 16-bit grayscale video")
        if int(ds.get("PixelRepresentation", 0) or 0) != 0:
            raise SourceError(self.path, "holds signed pixel values", "pass an unsigned 8- or 16-bit IR video")
        if int(ds.Rows) < 1 or int(ds.Columns) < 1 or int(ds.get("NumberOfFrames", 1) or 1) < 1:
            raise SourceError(self.path, f"has {ds.get('NumberOfFrames', 1)} frames of {ds.Columns}x{ds.Rows}",
                              "the file holds no image")

    def _fps_and_times(self, ds: Any, fps: float | None) -> None:
        from pydicom.multival import MultiValue

        self._times: np.ndarray | None = None
        vector = ds.get("FrameTimeVector")  # ms since the previous frame, the first one 0
        values = [] if vector is None else list(vector) if isinstance(vector, list | MultiValue) else [vector]
        if len(values) == self.num_frames > 1:
            increments = np.asarray([float(v) for v in values])
            times = np.cumsum(np.concatenate([[0.0], increments[1:]])) / 1000.0
            if np.all(np.diff(times) > 0):
                self._times = times
        rate = None
        if ds.get("FrameTime") and float(ds.FrameTime) > 0:
            rate = 1000.0 / float(ds.FrameTime)
        elif self._times is not None and self.num_frames > 1:
            rate = (self.num_frames - 1) / float(self._times[-1])
        else:
            for key in ("CineRate", "RecommendedDisplayFrameRate"):
                if ds.get(key) and float(ds.get(key)) > 0:
                    rate = float(ds.get(key))
                    break
        if rate:  # DS values carry ~10 digits: 1000 / 66.66666667 -> 15 (and 30000/1001 for 29.97)
            exact = Fraction(rate).limit_denominator(1001)
            rate = float(exact) if abs(float(exact) - rate) < 1e-7 * rate else rate
        self.fps = float(rate or fps or ASSUMED_FPS)
        self.fps_from = "file" if rate else "given" if fps else "assumed"

    # -- reading ---------------------------------------------------------------------------------------
    def frame_times(self, start: int, stop: int) -> np.ndarray:
        if self._times is not None:
            return self._times[start:stop].copy()
        return super().frame_times(start, stop)

    def codestreams(self, start: int, stop: int) -> list[bytes]:
        """The compressed frames ``[start, stop)`` as stored (one codestream per frame, fragments joined);
        what a GPU decoder takes. Raises ``SourceError`` for uncompressed files or damaged items."""
        if not self.encapsulated:
            raise SourceError(self.path, f"holds uncompressed frames ({self.header.transfer_syntax_name})",
                              "read them with read()")
        if not 0 <= start < stop <= self.num_frames:
            raise IndexError(f"{self.path}: frames [{start}, {stop}) outside [0, {self.num_frames})")
        a, b = int(self._starts[start]), int(self._stops[stop - 1])
        f = self._file
        f.seek(a)
        buf = f.read(b - a)
        try:
            if len(buf) < b - a:
                raise FrameIndexError(f"truncated: the file ends inside frame {start + (len(buf) > 0)}")
            frames = split_items(buf, np.append(self._starts[start:stop], b), a, first=start)
        except FrameIndexError as e:
            fix = "restore the file from a backup copy" if self._crcs is not None else \
                "copy or convert the recording again"
            raise SourceError(self.path, str(e), fix) from e
        j2k = ENCAPSULATED[self.header.transfer_syntax][2] == "j2k"
        for i, data in enumerate(frames):
            self._verify(data, start + i)
            if j2k:  # before any decoder sees it: OpenJPH loops forever on some impossible headers
                try:
                    j2k_header.check(data, (self.height, self.width))
                except j2k_header.CodestreamError as e:
                    raise SourceError(self.path, f"frame {start + i} is not a valid JPEG 2000 codestream ({e})",
                                      "the file is corrupt") from e
        return frames

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, self.height, self.width), np.uint16)
        if self.encapsulated:
            frames = self.codestreams(start, stop)
            errors = list(_pool().map(lambda i: self._decode_into(frames[i], out, i, start), range(len(frames))))
            for err in errors:
                if err is not None:
                    raise err
        else:
            f = self._file
            f.seek(self._native_at + start * self._frame_bytes)
            raw = f.read((stop - start) * self._frame_bytes)
            if len(raw) < (stop - start) * self._frame_bytes:
                raise SourceError(self.path, f"truncated: the file ends inside frames [{start}, {stop})",
                                  "copy or convert the recording again")
            if self._crcs is not None:
                view = memoryview(raw)
                for i in range(stop - start):
                    self._verify(view[i * self._frame_bytes : (i + 1) * self._frame_bytes], start + i)
            out[:] = np.frombuffer(raw, self._native_dtype).reshape(out.shape)
        if self._mask is not None:
            np.bitwise_and(out, np.uint16(self._mask), out=out)
        if self.header.monochrome1:
            np.subtract(np.uint16((1 << self.header.bits_stored) - 1), out, out=out)
        return out

    def _decode_into(self, data: bytes, out: np.ndarray, i: int, start: int) -> SourceError | None:
        try:
            arr = np.asarray(self._decode(data))
            if arr.ndim == 1 and arr.size == self.height * self.width:
                arr = arr.reshape(self.height, self.width)
            if arr.ndim == 3 and arr.shape[-1] == 1:
                arr = arr[..., 0]
            if arr.shape != (self.height, self.width) or arr.dtype.itemsize > 2 or arr.dtype.kind != "u":
                return SourceError(self.path, f"frame {start + i} decodes to {arr.shape} {arr.dtype}, expected "
                                   f"({self.height}, {self.width}) uint{8 * self._stored.itemsize}",
                                   "the file is corrupt")
            out[i] = arr
        except Exception as e:  # noqa: BLE001 - codec errors name only the codec and the frame
            return SourceError(self.path, f"cannot decode frame {start + i} ({self.header.transfer_syntax_name}: "
                               f"{type(e).__name__})", "the file is corrupt or truncated")
        return None

    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None
