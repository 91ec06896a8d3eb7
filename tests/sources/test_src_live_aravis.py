"""GenICam cameras through Aravis, tested with Aravis' built-in simulated camera (``Fake_1``, Mono16):
16-bit frames at the frame rate set, capture times from the camera's timestamps, a clear error for a
camera that is not there. Needs the ``genicam`` extra (aravis-python + PyGObject); skipped without it."""

from __future__ import annotations

import time

import numpy as np
import pytest

from semiostream.sources.cameras import open_live
from semiostream.sources.live_aravis import load_aravis
from semiostream.sources.source import SourceError

try:
    load_aravis()
except SourceError as e:
    pytest.skip(f"Aravis is not installed: {e}", allow_module_level=True)


def test_fake_camera_streams_mono16_with_capture_times():
    src = open_live("genicam://Fake_1", fps=20)
    frames = src.frames()
    t0 = time.monotonic()
    got = [next(frames) for _ in range(20)]
    took = time.monotonic() - t0
    frames.close()
    assert (src.width, src.height, src.bit_depth, src.pixel_format) == (512, 512, 16, "Mono16")
    assert src.fps == pytest.approx(20, rel=0.01)
    img = got[-1].image
    assert img.shape == (512, 512) and img.dtype == np.uint16 and img.max() > 255  # really 16-bit
    assert 0.5 < took < 5  # paced by the camera at 20 fps, not as fast as possible
    t = np.array([f.t_ns for f in got])
    assert np.all(np.diff(t) > 0) and abs(t[-1] - time.time_ns()) < 2e9
    assert np.median(np.diff(t)) == pytest.approx(50e6, rel=0.2)  # camera timestamps: 1/20 s apart
    assert [f.seq for f in got] == sorted({f.seq for f in got}) and got[0].seq == 0


def test_missing_camera_names_the_cameras_found():
    load_aravis().enable_interface("Fake")  # the simulated camera is then one of the cameras found (any test order)
    with pytest.raises(SourceError, match=r"genicam://Nope_9: no such GenICam camera .*found: .*Fake_1"):
        next(open_live("genicam://Nope_9").frames())
