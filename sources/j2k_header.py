"""Structural check of a JPEG 2000 / HTJ2K codestream's main header and tile-part chain (ITU-T T.800 Annex A),
done before a codestream reaches OpenJPH.

OpenJPH (0.26.3, inside imagecodecs 2026.3.6) trusts the SIZ marker segment: a codestream whose image offset
``XOsiz`` exceeds its width ``Xsiz`` (three flipped bytes of a 5 kB frame suffice) makes ``htj2k_decode`` loop
forever, with or without ``resilient=True``, where OpenJPEG says "failed to read the header". A geometry
larger than the frame the container describes would make it allocate that much. :func:`check` rejects
both, and every other violation of the constraints of the main header and the tile-part lengths, in a few
microseconds; it cannot see damage inside the coded data (that decodes, or raises, in bounded time; only a
checksum finds it, see :mod:`.frame_checksum`).
"""

from __future__ import annotations

import struct

SOC, SIZ, COD, QCD, SOT, SOD, EOC = 0xFF4F, 0xFF51, 0xFF52, 0xFF5C, 0xFF90, 0xFF93, 0xFFD9


class CodestreamError(ValueError):
    """The codestream's main header or tile-part chain breaks the JPEG 2000 syntax (or the expected shape)."""


def check(data: bytes | memoryview, shape: tuple[int, int] | None = None, max_bits: int = 16) -> None:
    """Raise :class:`CodestreamError` unless ``data`` is one well-formed codestream.

    Args:
        data: a J2K codestream (starting with SOC), or a JP2 file holding one (some DICOM writers wrap it).
        shape: ``(rows, columns)`` the image must have (from the container), or None.
        max_bits: the largest sample precision accepted, in bits.
    """
    data = _codestream(memoryview(data))
    b = bytes(data[: 1 << 16])  # the main header is far smaller
    n = len(data)
    if n < 2 + 2 + 38 + 3 or struct.unpack_from(">HH", b, 0) != (SOC, SIZ):
        raise CodestreamError("does not start with the SOC and SIZ markers of a JPEG 2000 codestream")
    lsiz, _rsiz, xsiz, ysiz, xo, yo, xt, yt, xto, yto, csiz = struct.unpack_from(">HHIIIIIIIIH", b, 4)
    if not 1 <= csiz <= 16384 or lsiz != 38 + 3 * csiz or 4 + lsiz > len(b):
        raise CodestreamError(f"SIZ marker segment is malformed (length {lsiz}, {csiz} components)")
    if not (xo < xsiz and yo < ysiz and xto <= xo and yto <= yo and xt > 0 and yt > 0
            and xt + xto > xo and yt + yto > yo):
        raise CodestreamError(f"SIZ geometry is impossible (image {xsiz}x{ysiz} at offset {xo},{yo}, tiles "
                              f"{xt}x{yt} at offset {xto},{yto})")
    if shape is not None and (ysiz - yo, xsiz - xo) != tuple(shape):
        raise CodestreamError(f"SIZ says {xsiz - xo}x{ysiz - yo}, the frame is {shape[1]}x{shape[0]}")
    for c in range(csiz):
        ssiz, xr, yr = b[42 + 3 * c : 45 + 3 * c]
        if (ssiz & 0x7F) + 1 > max_bits or xr == 0 or yr == 0:
            raise CodestreamError(f"SIZ component {c} is malformed (precision {(ssiz & 0x7F) + 1} bits, "
                                  f"subsampling {xr}x{yr})")
    tiles = -(-(xsiz - xto) // xt) * -(-(ysiz - yto) // yt)
    pos, seen = 4 + lsiz, set()
    while True:  # the other main-header marker segments, up to the first SOT
        if pos + 4 > len(b):
            raise CodestreamError("main header ends before the first tile-part (no SOT marker)")
        marker, length = struct.unpack_from(">HH", b, pos)
        if marker == SOT:
            break
        if marker >> 8 != 0xFF or marker < 0xFF50 or marker in (SOC, SIZ, SOD, EOC) or length < 2:
            raise CodestreamError(f"unexpected marker 0x{marker:04X} at byte {pos} of the main header")
        if marker == COD:
            _check_cod(b, pos, length)
        seen.add(marker)
        pos += 2 + length
    if COD not in seen or QCD not in seen:
        raise CodestreamError("main header lacks its COD or QCD marker segment")
    while pos + 2 <= n:  # the tile-parts: SOT (length 10) ... Psot bytes from SOT, then SOT again or EOC
        marker = struct.unpack_from(">H", data, pos)[0]
        if marker == EOC:
            return
        if marker != SOT or pos + 12 > n:
            raise CodestreamError(f"expected a tile-part (SOT) or the end (EOC) at byte {pos}")
        lsot, isot, psot = struct.unpack_from(">HHI", data, pos + 2)
        if lsot != 10 or isot >= tiles or (psot != 0 and psot < 14) or pos + psot > n:
            raise CodestreamError(f"tile-part at byte {pos} is malformed (tile {isot} of {tiles}, {psot} bytes "
                                  f"of the {n - pos} left)")
        if psot == 0:  # the last tile-part runs to the end of the codestream
            return
        pos += psot
    raise CodestreamError("codestream ends without its EOC marker")


def _check_cod(b: bytes, pos: int, length: int) -> None:
    if length < 12 or pos + 2 + length > len(b):
        raise CodestreamError("COD marker segment is malformed")
    layers = struct.unpack_from(">H", b, pos + 6)[0]
    levels, xcb, ycb, transform = b[pos + 9], b[pos + 10], b[pos + 11], b[pos + 13]
    if layers == 0 or levels > 32 or xcb > 8 or ycb > 8 or xcb + ycb > 8 or transform > 1:
        raise CodestreamError(f"COD marker segment is malformed ({layers} layers, {levels} levels, code-block "
                              f"exponents {xcb + 2},{ycb + 2})")


def _codestream(data: memoryview) -> memoryview:
    """The codestream of a JP2 file (its ``jp2c`` box), else ``data`` itself."""
    if bytes(data[4:12]) != b"jP  \r\n\x87\n":
        return data
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1 and pos + 16 <= len(data):
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        if kind == b"jp2c":
            return data[pos + head : len(data) if size == 0 else pos + size]
        if size < head:
            break
        pos += size
    raise CodestreamError("JP2 file holds no codestream (jp2c box)")
