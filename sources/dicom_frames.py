"""Where each frame of a DICOM file's Pixel Data lies, found without reading the pixel data.

The Pixel Data element (7FE0,0010) is either *native* (uncompressed: frame ``i`` is the ``i``-th run of
``rows * columns * samples * bits_allocated / 8`` bytes) or *encapsulated* (compressed: an item
sequence that starts with the Basic Offset Table item, followed by fragment items; a frame is one or more
fragments). :func:`locate_pixel_data` reads only the element's header; :func:`encapsulated_index` finds
each frame's byte range from the Extended Offset Table (7FE0,0001), else the Basic Offset Table, else by
walking the item headers (8 bytes each, the fragments themselves are skipped with ``seek``), so a window
later reads exactly the bytes of its frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

ITEM = (0xFFFE, 0xE000)
SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
UNDEFINED_LENGTH = 0xFFFFFFFF
#: explicit-VR representations whose length field is 4 bytes after 2 reserved bytes
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
#: first bytes of a codestream, per transfer-syntax family (to group fragments into frames)
CODESTREAM_START = {"jpeg": b"\xff\xd8", "j2k": b"\xff\x4f\xff\x51"}


class FrameIndexError(ValueError):
    """The Pixel Data element or its item sequence is malformed or truncated (the message says where)."""


@dataclass(frozen=True)
class PixelDataLocation:
    """Pixel Data element: file offset of its value and its length (None = undefined: encapsulated)."""

    value_offset: int
    length: int | None


def locate_pixel_data(f: BinaryIO, explicit_vr: bool, little_endian: bool) -> PixelDataLocation:
    """Parse the element header at ``f``'s position (which must be the Pixel Data tag)."""
    order = "<" if little_endian else ">"
    head = f.read(8)
    if len(head) < 8:
        raise FrameIndexError("the file ends before its Pixel Data element")
    group, elem = struct.unpack(order + "HH", head[:4])
    if (group, elem) != (0x7FE0, 0x0010):
        raise FrameIndexError(f"expected the Pixel Data element (7FE0,0010), found ({group:04X},{elem:04X})")
    if explicit_vr:
        vr = head[4:6]
        if vr in LONG_VRS:
            more = f.read(4)
            if len(more) < 4:
                raise FrameIndexError("the file ends inside the Pixel Data element header")
            (length,) = struct.unpack(order + "I", more)
        else:
            (length,) = struct.unpack(order + "H", head[6:8])
    else:
        (length,) = struct.unpack(order + "I", head[4:8])
    return PixelDataLocation(f.tell(), None if length == UNDEFINED_LENGTH else int(length))


def _item_header(buf: bytes, pos: int = 0) -> tuple[tuple[int, int], int]:
    group, elem, length = struct.unpack_from("<HHI", buf, pos)
    return (group, elem), length


def encapsulated_index(
    f: BinaryIO,
    value_offset: int,
    num_frames: int,
    file_size: int,
    family: str | None,
    extended_offsets: bytes | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Byte range of each frame of encapsulated Pixel Data.

    Args:
        f: the open file (binary, seekable).
        value_offset: file offset of the Pixel Data value (the Basic Offset Table item's tag).
        num_frames: the dataset's Number of Frames.
        file_size: size of the file in bytes (to detect truncation).
        family: ``"jpeg"``, ``"j2k"`` or None: how to tell a frame's first fragment when there are more
            fragments than frames and no offset table (None: one fragment per frame is required).
        extended_offsets: the Extended Offset Table's value (``num_frames`` uint64), if the file has one.

    Returns:
        ``(starts [N] int64, stops [N] int64)``: frame ``i``'s items (item headers included) are the
        bytes ``[starts[i], stops[i])`` of the file; see :func:`split_items`.

    Raises:
        FrameIndexError: malformed, truncated, or fewer/more frames than ``num_frames``.
    """
    f.seek(value_offset)
    head = f.read(8)
    if len(head) < 8:
        raise FrameIndexError("the file ends at the start of its encapsulated Pixel Data")
    tag, bot_len = _item_header(head)
    if tag != ITEM:
        raise FrameIndexError("encapsulated Pixel Data does not start with a Basic Offset Table item")
    bot = f.read(bot_len)
    if len(bot) < bot_len:
        raise FrameIndexError("the file ends inside the Basic Offset Table")
    first = value_offset + 8 + bot_len  # offsets in either table count from here
    offsets: np.ndarray | None = None
    if extended_offsets:
        offsets = np.frombuffer(extended_offsets, "<u8").astype(np.int64)
    elif bot_len:
        offsets = np.frombuffer(bot, "<u4").astype(np.int64)
    if offsets is not None and len(offsets) == num_frames and num_frames > 0:
        starts = first + offsets
        if np.any(np.diff(starts) <= 0) or starts[-1] + 8 > file_size:
            raise FrameIndexError("the offset table points outside the file or is not increasing (truncated?)")
        end = _end_of_items(f, int(starts[-1]), file_size)
        return starts, np.append(starts[1:], end)
    return _walk(f, first, num_frames, file_size, family)


def _end_of_items(f: BinaryIO, pos: int, file_size: int) -> int:
    """Offset just after the last item, walking from ``pos`` to the sequence delimiter (or the file's end)."""
    while pos + 8 <= file_size:
        f.seek(pos)
        tag, length = _item_header(f.read(8))
        if tag == SEQUENCE_DELIMITER:
            return pos
        if tag != ITEM:
            raise FrameIndexError(f"unexpected element inside the encapsulated Pixel Data at byte {pos}")
        if pos + 8 + length > file_size:
            raise FrameIndexError(f"truncated: a fragment at byte {pos} runs past the end of the file")
        pos += 8 + length
    raise FrameIndexError("truncated: the encapsulated Pixel Data has no sequence delimiter")


def _walk(f: BinaryIO, pos: int, num_frames: int, file_size: int,
          family: str | None) -> tuple[np.ndarray, np.ndarray]:
    """No usable offset table: read every item header (and the first 4 bytes of each fragment)."""
    frag_starts: list[int] = []
    frag_heads: list[bytes] = []
    while True:
        if pos + 8 > file_size:
            raise FrameIndexError("truncated: the encapsulated Pixel Data has no sequence delimiter")
        f.seek(pos)
        chunk = f.read(12)
        tag, length = _item_header(chunk)
        if tag == SEQUENCE_DELIMITER:
            end = pos
            break
        if tag != ITEM:
            raise FrameIndexError(f"unexpected element inside the encapsulated Pixel Data at byte {pos}")
        if pos + 8 + length > file_size:
            raise FrameIndexError(f"truncated: a fragment at byte {pos} runs past the end of the file")
        frag_starts.append(pos)
        frag_heads.append(chunk[8:12])
        pos += 8 + length
    n = len(frag_starts)
    if n == num_frames:
        first_of_frame = list(range(n))
    elif num_frames == 1 and n > 1:
        first_of_frame = [0]
    elif family in CODESTREAM_START and n > num_frames:
        marker = CODESTREAM_START[family]
        first_of_frame = [i for i, h in enumerate(frag_heads) if h.startswith(marker)]
    else:
        first_of_frame = []
    if len(first_of_frame) != num_frames or (first_of_frame and first_of_frame[0] != 0):
        raise FrameIndexError(f"holds {n} fragments for {num_frames} frames and no offset table that says which "
                              "fragments form which frame (truncated or malformed)")
    starts = np.array([frag_starts[i] for i in first_of_frame], np.int64)
    return starts, np.append(starts[1:], end).astype(np.int64)


def split_items(buf: bytes, starts: np.ndarray, base: int, first: int = 0) -> list[bytes]:
    """The frames held in ``buf`` (the file's bytes from offset ``base``): one codestream per frame,
    its fragments joined. ``starts``: the file offsets of the frames' first items, plus the end;
    ``first``: the index of the first of these frames (named in errors)."""
    frames = []
    for k, (a, b) in enumerate(zip(starts[:-1], starts[1:], strict=True)):
        pos, stop, parts = int(a - base), int(b - base), []
        while pos < stop:
            if pos + 8 > len(buf):
                raise FrameIndexError(f"truncated: the file ends inside frame {first + k} at byte {base + pos}")
            tag, length = _item_header(buf, pos)
            if tag != ITEM or pos + 8 + length > stop:
                raise FrameIndexError(f"frame {first + k} is damaged: malformed or truncated fragment at byte "
                                      f"{base + pos}")
            parts.append(buf[pos + 8 : pos + 8 + length])
            pos += 8 + length
        frames.append(parts[0] if len(parts) == 1 else b"".join(parts))
    return frames
