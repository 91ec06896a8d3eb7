"""What ``semiostream score`` agrees to open, and the frame sizes it agrees to score.

**Only regular files and folders of frames are opened.** A FIFO blocks the reader that opens it until a
writer appears (possibly forever); ``/dev/zero`` and other devices never end; sockets cannot be read as
files; a symbolic link loop cannot be followed. Such an input (given directly, found in a scanned folder,
or named by a manifest row, also behind a symbolic link with a video suffix) becomes an error row saying
what it is, before anything reads it; the rest of the archive is still scored. A symbolic link to a
regular file or a folder is followed as usual.

**Frame size.** Every frame side must be at least :data:`MIN_FRAME_SIDE` pixels: the I3D feature extractor
reduces each spatial side by 32 (the 224-pixel model input becomes 7 feature cells), so a side shorter than
32 source pixels leaves less than one real pixel per feature cell once resized, and the model would see
interpolation, not a patient (the same bound as the smallest ``PreprocessSpec.size``). A manifest ROI is
held to the same minimum, since its crop is what reaches the model. A frame of more than
:data:`MAX_FRAME_PIXELS` pixels is refused too, which bounds what decoding one window can take
(``window x MAX_FRAME_PIXELS x 2`` bytes: 2 GiB for 60 frames). Both are checked when the job is planned,
from the file's header, before any window is cut or decoded: a ``.npy`` of 100,000 frames of 2x2 pixels
is one error row, not 6,250 windows.
"""

from __future__ import annotations

import os
from pathlib import Path

#: shortest frame side (pixels) that is scored: I3D's total spatial stride (224-pixel input -> 7 cells)
MIN_FRAME_SIDE = 32
#: largest frame (pixels) that is scored: 4096 x 4096 (4K UHD video and every IR/depth sensor fit)
MAX_FRAME_PIXELS = 4096 * 4096


class InputRefused(ValueError):
    """An input that is not opened (FIFO, device, socket, symbolic link loop ...); the message says what it is."""


def absolute(path: str | os.PathLike) -> Path:
    """``path`` made absolute with symbolic links resolved where possible; a link loop or an unreadable
    component is kept as written (made absolute), so it can be reported as an error row instead of raising."""
    p = Path(os.path.expanduser(str(path)))
    try:
        return p.resolve()
    except (OSError, RuntimeError):  # RuntimeError: "Symlink loop" (Python < 3.13)
        return Path(os.path.abspath(p))


def refusal(path: str | os.PathLike) -> str | None:
    """Why the video file or frame folder ``path`` must not be opened, or None when it may be.

    Never opens ``path``: only ``stat`` (following links) is used.
    """
    from semiostream.core.files import file_kind

    kind = file_kind(path)
    if kind in ("file", "folder"):
        return None
    if kind == "missing":
        return "no such file or folder; check the path (or the manifest row)"
    if "symbolic link" in kind:  # a loop, or a link to nothing
        return f"is {kind}, not a regular file; fix or remove the link"
    target = ""
    if os.path.islink(path):
        target = f" (a symbolic link to {os.readlink(path)})"
    return (f"is {kind}{target}, not a regular file; only regular video files and folders of frames are "
            "scored: copy the recording to a regular file")


def check_input(path: str | os.PathLike) -> None:
    """Raise :class:`InputRefused` with :func:`refusal`'s reason, if there is one."""
    reason = refusal(path)
    if reason is not None:
        raise InputRefused(reason)


def frame_size_problem(width: int, height: int, what: str = "frames", fix: str | None = None) -> str | None:
    """Why ``width`` x ``height`` frames (or crops: ``what``) cannot be scored, or None; ``fix`` replaces the
    advice at the end of the message."""
    if min(width, height) < MIN_FRAME_SIDE:
        return (f"{what} are {width}x{height} pixels, below the minimum of {MIN_FRAME_SIDE} pixels per side "
                f"that the I3D features can use; {fix or 'record or export the video at a higher resolution'}")
    if width * height > MAX_FRAME_PIXELS:
        return (f"{what} are {width}x{height} pixels, more than the {MAX_FRAME_PIXELS:,} pixels a frame may "
                f"have; {fix or 'downscale the video (e.g. with ffmpeg -vf scale) before scoring'}")
    return None
