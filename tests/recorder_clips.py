"""Clips as real recorders write them, encoded here with PyAV from a real picture source.

The pictures are the frames of ``../shared/assets/mmaction2_demo.mp4`` (a real Kinetics clip), re-encoded
with the codecs and containers that cameras and public datasets use: MPEG-4 Part 2 with B-frames in AVI,
H.264 with B-frames in AVI and MP4, at any declared frame rate. ``reference_frames`` is the independent
reference: PyAV decoding the whole file sequentially, frames in the order the decoder outputs them.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
DEMO = ASSETS / "mmaction2_demo.mp4"

#: name -> (container suffix, codec, codec options, max B-frames)
KINDS = {
    "mpeg4-avi": (".avi", "mpeg4", {}, 2),
    "h264-avi": (".avi", "libx264", {"bf": "3", "preset": "veryfast"}, 3),
    "h264-mp4": (".mp4", "libx264", {"bf": "3", "preset": "veryfast"}, 3),
}


def demo_frames(n: int, size: tuple[int, int] | None = None, gray: bool = False) -> list[np.ndarray]:
    """The first ``n`` frames (``n`` <= 280) of the real demo clip as ``[H, W, 3]`` uint8 RGB (resized to
    ``size = (width, height)`` when given; ``gray``: R = G = B = the luma, as an IR camera's H.264 holds);
    skips the test when the asset is absent."""
    import av

    if not DEMO.is_file():
        pytest.skip(f"real asset {DEMO} is absent (expected ../shared/assets/mmaction2_demo.mp4)")
    out = []
    with av.open(str(DEMO)) as c:
        for f in c.decode(video=0):
            if size is not None:
                f = f.reformat(width=size[0], height=size[1])
            out.append(np.repeat(f.to_ndarray(format="gray")[..., None], 3, axis=2) if gray
                       else f.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return out


def encode_clip(path: Path, kind: str, frames: list[np.ndarray], fps: float = 30.0, gop: int = 24) -> Path:
    """Encode ``frames`` (``[H, W, 3]`` uint8) as ``kind`` (a key of :data:`KINDS`) at ``fps`` to
    ``path`` (its suffix replaced by the kind's container)."""
    import av

    suffix, codec, options, bframes = KINDS[kind]
    path = Path(path).with_suffix(suffix)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.max_b_frames = bframes
        s.codec_context.gop_size = gop
        s.options = dict(options)
        for a in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def reference_frames(path: Path) -> np.ndarray:
    """``[N, H, W]`` uint16 luma of every frame, PyAV decoding the whole file from the start."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="gray") for f in c.decode(video=0)]).astype(np.uint16)
