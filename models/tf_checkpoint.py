"""Read a TensorFlow checkpoint (V2 "tensor bundle") in pure Python: no TensorFlow needed.

A checkpoint ``PREFIX`` is two or more files:

* ``PREFIX.index``: a LevelDB-format table (sorted string keys) whose first entry (key ``""``) is a
  ``BundleHeaderProto`` and whose other entries map each variable name to a ``BundleEntryProto``
  (dtype, shape, shard, byte offset and size, crc32c of the bytes);
* ``PREFIX.data-SSSSS-of-NNNNN``: the raw little-endian tensor bytes of each shard.

This is the format of DeepMind's kinetics-i3d release (``data/checkpoints/rgb_imagenet/model.ckpt``).
Only what those files use is supported: uncompressed table blocks, numeric dtypes, whole (unsliced)
tensors, little-endian. Anything else raises :class:`TFCheckpointError` saying what was found.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
# tensorflow/core/framework/types.proto DataType -> numpy
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 14: np.uint16, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
BFLOAT16 = 14


class TFCheckpointError(ValueError):
    """The files are not a TensorFlow V2 checkpoint this reader supports (the message says why)."""


@dataclass(frozen=True)
class TensorEntry:
    """Where one variable lives: dtype code, shape, shard, byte range, crc32c (masked, as TF stores it)."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None


# ----------------------------------------------------------------------------- protobuf (minimal)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise TFCheckpointError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise TFCheckpointError("varint longer than 64 bits")


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of a protobuf message (varint, fixed32/64, bytes)."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 1:
            val, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            val, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise TFCheckpointError(f"unsupported protobuf wire type {wire}")
        out.append((num, wire, val))
    return out


def _shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for num, _, val in _fields(buf):
        if num == 2:  # TensorShapeProto.dim
            size = next((v for n, _, v in _fields(val) if n == 1), 0)
            dims.append(int(size))
        elif num == 3 and val:
            raise TFCheckpointError("a tensor of unknown rank")
    return tuple(dims)


def _entry(name: str, buf: bytes) -> TensorEntry:
    dtype, shape, shard, offset, size, crc = 0, (), 0, 0, 0, None
    for num, _, val in _fields(buf):
        if num == 1:
            dtype = int(val)
        elif num == 2:
            shape = _shape(val)
        elif num == 3:
            shard = int(val)
        elif num == 4:
            offset = int(val)
        elif num == 5:
            size = int(val)
        elif num == 6:
            crc = int(val)
        elif num == 7:
            raise TFCheckpointError(f"variable {name!r} is stored in slices (partitioned); not supported")
    return TensorEntry(name, dtype, shape, shard, offset, size, crc)


# ------------------------------------------------------------------------------- LevelDB table


def _block(data: bytes, offset: int, size: int) -> bytes:
    if offset + size + 5 > len(data):
        raise TFCheckpointError("a table block lies beyond the end of the index file (truncated?)")
    compression = data[offset + size]
    if compression != 0:
        raise TFCheckpointError(f"compressed index blocks (type {compression}) are not supported")
    return data[offset:offset + size]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise TFCheckpointError("table block too short")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    out, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + vlen]))
        pos += vlen
    return out


def _handle(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    off, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return off, size, pos


def read_index(path: str | os.PathLike) -> tuple[dict[str, int], dict[str, TensorEntry]]:
    """Parse ``PREFIX.index``: ``({"num_shards", "endianness", "version"}, {name: TensorEntry})``."""
    data = Path(path).read_bytes()
    if len(data) < FOOTER_SIZE:
        raise TFCheckpointError(f"{path}: too short for a checkpoint index")
    footer = data[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
        raise TFCheckpointError(f"{path}: not a TensorFlow checkpoint index (bad table magic)")
    _, _, pos = _handle(footer)
    idx_off, idx_size, _ = _handle(footer, pos)
    header = {"num_shards": 1, "endianness": 0, "version": 0}
    entries: dict[str, TensorEntry] = {}
    for _, handle in _block_entries(_block(data, idx_off, idx_size)):
        off, size, _ = _handle(handle)
        for key, value in _block_entries(_block(data, off, size)):
            name = key.decode("utf-8")
            if name == "":
                for num, _, val in _fields(value):
                    if num == 1:
                        header["num_shards"] = int(val)
                    elif num == 2:
                        header["endianness"] = int(val)
                    elif num == 3:
                        header["version"] = 1
            else:
                entries[name] = _entry(name, value)
    if header["endianness"] != 0:
        raise TFCheckpointError(f"{path}: big-endian checkpoints are not supported")
    return header, entries


def checkpoint_prefix(path: str | os.PathLike) -> Path:
    """The checkpoint prefix for ``PREFIX``, ``PREFIX.index``, a ``PREFIX.data-*`` file, or a folder
    holding exactly one ``*.index`` file."""
    p = Path(path)
    if p.is_dir():
        indexes = sorted(p.glob("*.index"))
        if len(indexes) != 1:
            raise TFCheckpointError(f"{p}: expected one *.index checkpoint file in the folder, found {len(indexes)}")
        return indexes[0].with_suffix("")
    name = p.name
    if name.endswith(".index"):
        return p.with_name(name[: -len(".index")])
    if ".data-" in name:
        return p.with_name(name.split(".data-")[0])
    return p


def is_tf_checkpoint(path: str | os.PathLike) -> bool:
    """True if ``path`` names a TensorFlow V2 checkpoint (its ``.index`` file exists)."""
    try:
        prefix = checkpoint_prefix(path)
    except TFCheckpointError:
        return False
    return prefix.with_name(prefix.name + ".index").is_file()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``; uses ``google_crc32c``/``crc32c`` when installed."""
    try:
        import google_crc32c

        return int(google_crc32c.value(data))
    except ImportError:
        pass
    try:
        import crc32c as _crc

        return int(_crc.crc32c(data))
    except ImportError:
        pass
    table = _crc_table()
    crc = 0xFFFFFFFF
    arr = np.frombuffer(data, np.uint8)
    for b in arr.tolist():
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_TABLE: list[int] = []


def _crc_table() -> list[int]:
    if not _TABLE:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _TABLE.append(c)
    return _TABLE


def unmask_crc(masked: int) -> int:
    """TF stores ``crc32c`` masked (``rot15(crc) + 0xa282ead8``); undo that."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _fast_crc_available() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("google_crc32c", "crc32c"))


PURE_PYTHON_CRC_LIMIT = 256 * 1024  # bytes per tensor checked without a compiled crc32c module


def read_checkpoint(path: str | os.PathLike, verify_crc: bool | None = None) -> dict[str, np.ndarray]:
    """Every variable of a TensorFlow V2 checkpoint as numpy arrays (name -> array).

    Args:
        path: the prefix (``.../model.ckpt``), its ``.index`` file, a data file, or their folder.
        verify_crc: check each tensor's bytes against the crc32c stored in the index. None (default):
            every tensor when ``google-crc32c`` or ``crc32c`` is installed, otherwise the tensors up to
            256 KiB (pure Python checks about 1 MB/s).

    Raises:
        TFCheckpointError: missing data shard, bytes beyond a shard's end, unsupported dtype or layout,
            checksum mismatch.
    """
    prefix = checkpoint_prefix(path)
    index = prefix.with_name(prefix.name + ".index")
    if not index.is_file():
        raise TFCheckpointError(f"{index} does not exist; give the checkpoint prefix or its .index file")
    header, entries = read_index(index)
    n = header["num_shards"]
    fast = _fast_crc_available()
    shards: dict[int, bytes] = {}
    out: dict[str, np.ndarray] = {}
    for name, e in entries.items():
        if e.dtype not in DTYPES or e.dtype == BFLOAT16:
            raise TFCheckpointError(f"{index}: variable {name!r} has unsupported dtype code {e.dtype}")
        if e.shard not in shards:
            f = prefix.with_name(f"{prefix.name}.data-{e.shard:05d}-of-{n:05d}")
            if not f.is_file():
                raise TFCheckpointError(f"checkpoint data file {f} is missing; copy every file of the checkpoint")
            shards[e.shard] = f.read_bytes()
        blob = shards[e.shard]
        if e.offset + e.size > len(blob):
            raise TFCheckpointError(f"variable {name!r} lies beyond the end of data shard {e.shard} (truncated?)")
        raw = blob[e.offset:e.offset + e.size]
        check = verify_crc if verify_crc is not None else (fast or e.size <= PURE_PYTHON_CRC_LIMIT)
        if check and e.crc32c is not None and crc32c(raw) != unmask_crc(e.crc32c):
            raise TFCheckpointError(f"variable {name!r}: checksum mismatch; the checkpoint data is corrupt")
        dtype = np.dtype(DTYPES[e.dtype]).newbyteorder("<")
        count = int(np.prod(e.shape)) if e.shape else 1
        if count * dtype.itemsize != e.size:
            raise TFCheckpointError(f"variable {name!r}: {e.size} bytes do not hold shape {e.shape} of {dtype}")
        out[name] = np.frombuffer(raw, dtype).reshape(e.shape).astype(dtype.newbyteorder("="))
    return out
