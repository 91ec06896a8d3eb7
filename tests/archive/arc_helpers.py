"""Helpers for the archive (``semiostream score``) tests."""

from __future__ import annotations

import numpy as np
from random_bundle import make_random_bundle

from semiostream.core.preprocess_spec import PreprocessSpec

#: options every scoring test passes: the fp32 reference backend, no torch.compile (fast start) and the
#: plain-torch preprocessing (test_arc_score.py also runs the default DALI path)
FAST = ["--backend", "torch-cpu-fp32", "--no-compile", "--preprocessing", "reference", "--quiet"]


def make_bundle(path, ckpt, seed: int):
    """A bundle of the real I3D and an untrained, seeded random classifier (16-frame windows)."""
    return make_random_bundle(path, ckpt, seed, PreprocessSpec(window=16, fps=15, min_frames=9), reuse=False)


def add_bad_inputs(folder):
    """Add bad/truncated.mkv, bad/garbage.mkv (not a video), bad/short.npy (5 frames < min_frames) and
    bad/corrupt_middle.mkv (opens, its first window decodes, its second does not)."""
    good = sorted(folder.glob("*.mkv"))[0]
    (folder / "bad").mkdir()
    data = bytearray(good.read_bytes())
    (folder / "bad" / "truncated.mkv").write_bytes(data[:60_000])
    data[len(data) // 2:len(data) // 2 + 4000] = bytes(4000)
    (folder / "bad" / "corrupt_middle.mkv").write_bytes(data)
    (folder / "bad" / "garbage.mkv").write_bytes(b"this is not a video\n" * 10)
    np.save(folder / "bad" / "short.npy", np.full((5, 72, 96), 3000, np.uint16))
    return {"truncated.mkv", "garbage.mkv", "short.npy", "corrupt_middle.mkv"}


def rows_by_key(rows, key=("input_id", "window")):
    """``{(input_id, window): row}``; fails on a duplicated key."""
    out = {}
    for r in rows:
        k = tuple(r[c] for c in key)
        assert k not in out, f"duplicate row {k}"
        out[k] = r
    return out
