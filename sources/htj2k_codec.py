"""HTJ2K (OpenJPH, through imagecodecs) encoding and decoding that is safe on threads and never ignores an error.

Two defects of the OpenJPH build inside imagecodecs (2026.3.6 ships OpenJPH 0.26.3) are handled here, so
every HTJ2K call of the project goes through :func:`encode` and :func:`decode`:

* **First-use race.** OpenJPH fills its block-encoder tables lazily, on the first codestream a process
  creates (``initialize_block_encoder_tables`` and its AVX2/AVX-512 variants, called for every encode and
  every decode): an unguarded ``static bool`` is tested, the tables are zeroed with ``memset`` and filled
  again. When the first two codestreams are made on two threads at once, one thread zeroes the tables while
  the other is encoding with them, and that frame is encoded wrongly: it does not decode to itself, or does
  not decode at all. Once the first initialisation has finished the tables are never touched again
  (OpenJPH 0.27.0 fixed this with ``std::call_once``, upstream PR #243). :func:`_ensure_ready` therefore
  encodes and decodes one tiny frame under a process-wide lock before any other call proceeds.
* **Swallowed decoding errors.** imagecodecs copies the decoded lines in a ``noexcept`` Cython function,
  so OpenJPH's exception for a damaged codestream (``ojph error``) is printed to stderr ("Exception ignored
  in ...") and the call returns zeros or partly decoded pixels. :func:`decode` catches that report, which
  arrives on the decoding thread through :data:`sys.unraisablehook` (and :data:`sys.excepthook` for the
  printed traceback), and raises :class:`Htj2kDecodeError` instead.

* **Hangs on impossible headers.** OpenJPH trusts the SIZ marker segment: an image offset beyond the
  image's width (a few flipped header bytes) makes it loop forever, ``resilient=True`` or not. :func:`decode`
  therefore checks every codestream's main header and tile-part chain first (:func:`.j2k_header.check`,
  a few microseconds), and the frame size when the caller knows it, and raises instead.

A codestream can still be damaged in a way the decoder cannot notice (it then decodes to wrong pixels):
only a checksum finds that, see :mod:`.frame_checksum`.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

_READY = False
_READY_LOCK = threading.Lock()
_HOOK_LOCK = threading.Lock()
_local = threading.local()
#: the hooks that were installed before ours (called for every report that is not ours)
_NEXT: dict[str, Any] = {}


class Htj2kDecodeError(ValueError):
    """The HTJ2K decoder reported an error for a codestream (it is damaged or not HTJ2K)."""


def _ensure_ready() -> None:
    """Finish OpenJPH's one-time table initialisation on one thread before any concurrent use."""
    global _READY
    if _READY:
        return
    import imagecodecs

    with _READY_LOCK:
        if not _READY:
            tiny = np.arange(64, dtype=np.uint16).reshape(8, 8)
            if not np.array_equal(imagecodecs.htj2k_decode(imagecodecs.htj2k_encode(tiny, reversible=True)), tiny):
                raise RuntimeError("the HTJ2K codec (imagecodecs / OpenJPH) does not round-trip an 8x8 frame")
            _READY = True


def _unraisable(report: Any) -> None:
    errors = getattr(_local, "errors", None)
    if errors is not None:
        errors.append(report.exc_value)
    else:
        _NEXT["unraisable"](report)


def _excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    if getattr(_local, "errors", None) is not None:
        return  # the same error reaches _unraisable (Cython prints it first, through sys.excepthook)
    _NEXT["except"](kind, value, tb)


def _install_hooks() -> None:
    """Chain our hooks in front of whatever is installed (again if someone replaced them since)."""
    if sys.unraisablehook is _unraisable and sys.excepthook is _excepthook:
        return
    with _HOOK_LOCK:
        if sys.unraisablehook is not _unraisable:
            _NEXT["unraisable"] = sys.unraisablehook
            sys.unraisablehook = _unraisable
        if sys.excepthook is not _excepthook:
            _NEXT["except"] = sys.excepthook
            sys.excepthook = _excepthook


def encode(frame: np.ndarray) -> bytes:
    """``[H, W]`` uint16 or uint8 -> reversible (lossless) HTJ2K codestream (J2K, no JP2 box)."""
    import imagecodecs

    _ensure_ready()
    return bytes(imagecodecs.htj2k_encode(np.ascontiguousarray(frame), reversible=True))


def decode(data: bytes, shape: tuple[int, int] | None = None) -> np.ndarray:
    """One HTJ2K codestream -> ``[H, W]`` (or ``[H, W, C]``) array, its dtype from the codestream.

    Args:
        data: the codestream.
        shape: ``(H, W)`` the frame must have (from its container), checked before decoding; None: any.

    Raises:
        Htj2kDecodeError: the codestream's header is malformed or of another size (:mod:`.j2k_header`), or
            the decoder reported an error (including the ones imagecodecs would only print).
    """
    import imagecodecs

    from .j2k_header import CodestreamError, check

    try:
        check(data, shape)
    except CodestreamError as e:
        raise Htj2kDecodeError(str(e)) from e
    _ensure_ready()
    _install_hooks()
    _local.errors = errors = []
    try:
        out = imagecodecs.htj2k_decode(data)
    except Exception as e:  # noqa: BLE001 - any codec failure is a damaged codestream
        raise Htj2kDecodeError(f"{type(e).__name__}: {e}") from e
    finally:
        _local.errors = None
    if errors:
        raise Htj2kDecodeError(f"{type(errors[0]).__name__}: {errors[0]}") from errors[0]
    return out
