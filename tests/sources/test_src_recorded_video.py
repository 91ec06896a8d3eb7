"""Videos as real recorders write them: B-frames in AVI and MP4 (presentation order != decode order).

Every frame read (whole file, windows, seeks back and forth, convert) is compared with an independent
decode: PyAV decoding the whole file sequentially (:func:`recorder_clips.reference_frames`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from recorder_clips import KINDS, demo_frames, encode_clip, reference_frames

from semiostream.cli import main
from semiostream.sources.read_av import AvSource, decode_order_only
from semiostream.sources.readers import open_source
from semiostream.sources.writers import convert_source

N = 75  # three 24-frame groups of pictures and a part


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("recorded")
    frames = demo_frames(N)
    return {kind: encode_clip(folder / kind, kind, frames) for kind in KINDS}


@pytest.mark.parametrize("kind", list(KINDS))
def test_b_frame_video_reads_every_frame_in_presentation_order(clips, kind):
    path = clips[kind]
    ref = reference_frames(path)
    assert len(ref) == N
    with open_source(path) as src:
        assert isinstance(src, AvSource) and src.num_frames == N and src.fps == pytest.approx(30)
        assert src.fps_from == "file"
        np.testing.assert_array_equal(src.read(0, N), ref)
    with open_source(path) as src:  # windows in an order that seeks forward, back and continues
        for a, b in [(40, 60), (60, 70), (5, 9), (0, 1), (70, 75), (23, 50)]:
            np.testing.assert_array_equal(src.read(a, b), ref[a:b], err_msg=f"{kind} frames [{a}, {b})")
        times = src.frame_times(0, N)
        np.testing.assert_allclose(times, np.arange(N) / 30, atol=1e-6)


def test_h264_avi_is_numbered_in_decoding_order_and_mp4_by_timestamp(clips):
    """AVI stores a decode-order counter for H.264 (no presentation times); MP4 and MPEG-4 Part 2 AVI
    (whose parser recovers them) carry presentation times."""
    with AvSource(clips["h264-avi"]) as a, AvSource(clips["h264-mp4"]) as m, AvSource(clips["mpeg4-avi"]) as v:
        assert (a.decode_order, m.decode_order, v.decode_order) == (True, False, False)
    assert decode_order_only([0, 1, 2, 3], may_reorder=True)
    assert not decode_order_only([0, 1, 2, 3], may_reorder=False)  # no B-frames: timestamps are fine
    assert not decode_order_only([0, 3, 1, 2], may_reorder=True)
    assert decode_order_only([0, None, 2], may_reorder=False)


def test_misleading_timestamps_fall_back_to_decoding_order(clips):
    """A file whose decoded timestamps do not match its packets' is read in the decoder's order."""
    path = clips["h264-avi"]
    ref = reference_frames(path)
    with AvSource(path) as src:
        src.decode_order = False  # what the reader used to do with this file: "frame 1 is missing"
        np.testing.assert_array_equal(src.read(10, 40), ref[10:40])
        assert src.decode_order


@pytest.mark.parametrize("kind", ["h264-avi", "mpeg4-avi"])
def test_convert_keeps_every_b_frame(clips, tmp_path, kind):
    path = clips[kind]
    with open_source(path) as src:
        out = convert_source(src, tmp_path / "c.mkv")
    with open_source(out) as back:
        assert back.num_frames == N and back.fps == pytest.approx(30)
        np.testing.assert_array_equal(back.read(0, N), reference_frames(path))


@pytest.mark.parametrize("kind", ["h264-avi", "mpeg4-avi"])
def test_convert_command_archives_a_gray_b_frame_avi(tmp_path, kind):
    """`semiostream convert` of an IR camera's H.264 / MPEG-4 AVI (gray pictures, B-frames) to both
    archive formats: every frame as PyAV's sequential decode gives it (it used to stop at frame 1)."""
    path = encode_clip(tmp_path / "ir", kind, demo_frames(40, size=(128, 96), gray=True))
    ref = reference_frames(path)
    for suffix in (".dcm", ".mkv"):
        out = tmp_path / f"ir{suffix}"
        assert main(["convert", str(path), str(out)]) == 0
        with open_source(out) as back:
            assert back.num_frames == 40
            np.testing.assert_array_equal(back.read(0, 40), ref, err_msg=suffix)


@pytest.mark.parametrize("kind", ["h264-avi", "mpeg4-avi"])
def test_a_recording_cut_inside_its_last_frame_is_read_without_it(clips, tmp_path, kind):
    """A recorder that stops mid-frame leaves a file that ends inside its last packet: every other frame is
    read as an independent decode of all packets but that one gives them (a plain decode raises there)."""
    import av

    with av.open(str(clips[kind])) as c:
        last = [p for p in c.demux(video=0) if p.size][-1]
        end = last.pos + last.size // 2
    cut = tmp_path / clips[kind].name
    cut.write_bytes(clips[kind].read_bytes()[:end])
    with av.open(str(cut)) as c:
        s = c.streams.video[0]
        packets = [p for p in c.demux(s) if p.size]
        assert packets[-1].is_corrupt
        ref = [f for p in packets[:-1] for f in p.decode()] + list(s.decode(None))
        ref = np.stack([f.to_ndarray(format="gray") for f in ref]).astype(np.uint16)
    with open_source(cut) as src:
        assert src.num_frames == len(ref) == N - 1
        np.testing.assert_array_equal(src.read(0, N - 1), ref)
        np.testing.assert_array_equal(src.read(40, N - 1), ref[40:])  # read again from the middle
