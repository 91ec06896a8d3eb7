"""Per-frame checksums of a DICOM file's Pixel Data: one private data element, written by ``semiostream
convert`` (:mod:`.write_dicom`) and verified by every reader of the file (:class:`.read_dicom.DicomSource`,
hence also the DALI HTJ2K graph, which takes its codestreams from it).

A codestream carries no checksum of its own, and a damaged HTJ2K codestream often decodes without any error
to wrong pixels; the checksum turns any change of a frame's stored bytes into an error naming the frame.

Layout (in the data set, before Pixel Data; explicit VR little endian as the rest of the file):

=================  ====  ==================================================================================
tag                VR    value
=================  ====  ==================================================================================
(0009,00xx)        LO    Private Creator ``"SEMIOSTREAM FRAME CRC32"`` (reserves block xx, normally 10)
(0009,xx01)        OL    Number of Frames little-endian uint32 values: value ``i`` is the CRC-32
                         (ISO-HDLC, as ``zlib.crc32``, PNG and gzip) of frame ``i``'s bytes as stored
=================  ====  ==================================================================================

A frame's bytes *as stored*: for encapsulated (compressed) Pixel Data, the values of the frame's fragment
items concatenated in order, the zero byte that pads an odd-length codestream to even length included (with
one fragment per frame, as this project writes, the frame's one item value); for native Pixel Data, the
frame's ``Rows * Columns * Samples per Pixel * Bits Allocated / 8`` bytes.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

GROUP = 0x0009
CREATOR = "SEMIOSTREAM FRAME CRC32"
ELEMENT = 0x01
#: the private creator slots of :data:`GROUP` (read to find which block, if any, is ours)
CREATOR_TAGS = tuple((GROUP << 16) | e for e in range(0x10, 0x100))


def crc(data: bytes | bytearray | memoryview) -> int:
    """CRC-32 (ISO-HDLC, ``zlib.crc32``) of one frame's stored bytes, as an unsigned 32-bit int."""
    return zlib.crc32(data) & 0xFFFFFFFF


def checksum_tag(ds: Any) -> int | None:
    """The tag of the checksum element of data set ``ds`` (read with :data:`CREATOR_TAGS`), or None."""
    for tag in CREATOR_TAGS:
        elem = ds.get(tag)
        if elem is not None and str(elem.value).strip() == CREATOR:
            return (GROUP << 16) | ((tag & 0xFF) << 8) | ELEMENT
    return None


def add_placeholder(ds: Any, num_frames: int) -> int:
    """Reserve the checksum element in ``ds`` (zeros, filled in once the frames are written); a block of
    ours that ``ds`` already holds (copied from a source archive) is dropped first. Returns the tag."""
    for tag in CREATOR_TAGS:
        elem = ds.get(tag)
        if elem is not None and str(elem.value).strip() == CREATOR:
            block = (tag & 0xFF) << 8
            for t in [e.tag for e in ds if e.tag.group == GROUP and (e.tag.element & 0xFF00) == block]:
                del ds[t]
            del ds[tag]
    block = ds.private_block(GROUP, CREATOR, create=True)
    block.add_new(ELEMENT, "OL", bytes(4 * num_frames))
    return int(block.get_tag(ELEMENT))


def parse(value: bytes, num_frames: int) -> np.ndarray | None:
    """The element's value -> ``[num_frames]`` uint32, or None if it holds another number of values."""
    if value is None or len(value) != 4 * num_frames:
        return None
    return np.frombuffer(bytes(value), "<u4").astype(np.uint32)
