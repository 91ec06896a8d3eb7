"""The kind of picture an input holds, looked up in real third-party files: a colour H.264 clip, the same
clip's luma re-encoded as H.264 yuv420p (a colour pixel format holding a gray picture), an Azure Kinect
recording, DICOM files of pydicom's test data (grayscale, RGB, YBR, palette colour) and PNG frames."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from semiostream.sources.input_kind import is_colour, path_kind


def _frames(path, n):
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                return out
    return out


def test_videos(get_asset, tmp_path):
    mp4 = get_asset("mmaction2_demo.mp4")
    k = path_kind(mp4)
    assert (k.kind, k.detail) == ("8-bit colour", "yuv420p h264, colour")
    assert path_kind(get_asset("pyk4a_recording.mkv")).kind == "16-bit gray"
    # the same clip's gray picture (ITU-R BT.601 luma of its RGB) in H.264 yuv420p, as gray cameras export it
    gray = tmp_path / "gray.mp4"
    with av.open(str(gray), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 340, 256, "yuv420p"
        for rgb in _frames(mp4, 10):
            y = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.repeat(y[..., None], 3, axis=2), format="rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode())
    k = path_kind(gray)
    assert k.kind == "8-bit gray" and k.detail == "yuv420p h264, no colour in its first 8 frames"
    assert path_kind(tmp_path / "missing.mp4") is None


@pytest.mark.parametrize("name, kind, detail", [
    ("CT_small.dcm", "16-bit gray", "DICOM MONOCHROME2, 16 of 16 bits"),
    ("SC_rgb.dcm", "8-bit colour", "DICOM RGB, 8 of 8 bits"),
    ("US1_J2KR.dcm", "8-bit colour", "DICOM YBR_RCT, 8 of 8 bits"),
    ("OBXXXX1A.dcm", "8-bit colour", "DICOM PALETTE COLOR, 8 of 8 bits"),
])
def test_dicom_files(name, kind, detail):
    from pydicom.data import get_testdata_file

    k = path_kind(get_testdata_file(name))
    assert (k.kind, k.detail) == (kind, detail)


def test_frame_folders(get_asset, tmp_path):
    ir = np.load(get_asset("pyk4a_ir_frame0_uint16.npy"))
    (tmp_path / "ir").mkdir()
    Image.fromarray(ir).save(tmp_path / "ir" / "000.png")
    assert path_kind(tmp_path / "ir").kind == "16-bit gray"
    rgb = _frames(get_asset("mmaction2_demo.mp4"), 1)[0]
    (tmp_path / "rgb").mkdir()
    Image.fromarray(rgb).save(tmp_path / "rgb" / "000.png")
    assert path_kind(tmp_path / "rgb").kind == "8-bit colour"
    (tmp_path / "l").mkdir()
    Image.fromarray(rgb[..., 1]).save(tmp_path / "l" / "000.png")
    assert (path_kind(tmp_path / "l").kind, path_kind(tmp_path / "l").detail) == ("8-bit gray", "PNG mode L")
    assert path_kind(get_asset("pyk4a_ir_frame0_uint16.npy")).kind == "16-bit gray"


def test_colour_rule():
    gray = np.full((40, 50, 3), 120, np.uint8)
    gray[..., 0] += 20  # within the tolerance of compression: gray
    assert not is_colour(gray)
    red = gray.copy()
    red[:10, :10, 0] = 250  # 5% of the pixels clearly coloured
    assert is_colour(red)
