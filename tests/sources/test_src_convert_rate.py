"""`semiostream convert` invents no frame rate for either output: a source without one (``.npy``) gives a
``.dcm`` without timing attributes and an FFV1 ``.mkv`` tagged ``SEMIOSTREAM_RATE=unknown`` (its timestamps
step at the assumed 30 frames/s, since Matroska needs some); both read back with ``fps_from == "assumed"``
(a rate given when reading is ``given``), so scoring takes the bundle's rate instead of resampling from an
invented one. ``--fps`` states a rate, which is then the file's own."""

from __future__ import annotations

import av
import numpy as np
import pydicom
import pytest

from semiostream.cli import main
from semiostream.sources.rate import at_rate
from semiostream.sources.read_av import RATE_TAG
from semiostream.sources.readers import open_source


@pytest.fixture
def npy(tmp_path, frames16):
    np.save(tmp_path / "in.npy", frames16)
    return tmp_path / "in.npy"


def test_a_source_without_rate_gives_an_mkv_tagged_unknown_read_as_assumed(tmp_path, npy, frames16, capsys):
    mkv = tmp_path / "n.mkv"
    assert main(["convert", str(npy), str(mkv)]) == 0
    err = capsys.readouterr().err
    assert "in.npy stores no frame rate: n.mkv is tagged SEMIOSTREAM_RATE=unknown" in err
    assert "timestamps step at 30 frames/s, which readers report as an assumed rate" in err
    with av.open(str(mkv)) as c:  # the tag as any Matroska reader (ffprobe, mkvinfo) shows it
        assert c.metadata.get(RATE_TAG) == "unknown"
    with open_source(mkv) as src:
        assert (src.fps, src.fps_from) == (30.0, "assumed") and np.array_equal(src.read(0, 20), frames16)
        resampled = at_rate(src, 15.0)  # scoring: an assumed rate is taken to be the bundle's, nothing dropped
        assert (resampled.fps, resampled.num_frames) == (15.0, 20)
    with open_source(mkv, fps=8.0) as src:
        assert (src.fps, src.fps_from) == (8.0, "given")
    dcm = tmp_path / "n.dcm"  # converting it on: still no rate invented
    assert main(["convert", str(mkv), str(dcm)]) == 0
    assert "n.mkv stores no frame rate: none is written to n.dcm" in capsys.readouterr().err
    assert not {"FrameTime", "FrameTimeVector", "CineRate"} & set(pydicom.dcmread(dcm, stop_before_pixels=True).dir())
    with open_source(dcm) as src:
        assert src.fps_from == "assumed"
    with open_source(dcm, fps=8.0) as src:
        assert (src.fps, src.fps_from) == (8.0, "given")


def test_a_given_rate_is_written_as_the_files_own(tmp_path, npy, capsys):
    mkv = tmp_path / "r.mkv"
    assert main(["convert", str(npy), str(mkv), "--fps", "12.5"]) == 0
    assert "stores no frame rate" not in capsys.readouterr().err
    with av.open(str(mkv)) as c:
        assert RATE_TAG not in c.metadata
    with open_source(mkv) as src:
        assert (src.fps, src.fps_from) == (12.5, "file")
    dcm = tmp_path / "r.dcm"
    assert main(["convert", str(mkv), str(dcm)]) == 0
    with open_source(dcm) as src:
        assert (src.fps, src.fps_from) == (12.5, "file")
