"""Readers: every format round-trips exactly; bad files raise SourceError naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shared_assets import asset

from semiostream.sources.read_av import AvSource
from semiostream.sources.read_images import ImageFolderSource
from semiostream.sources.read_k4a import K4aSource
from semiostream.sources.read_npy import NpySource
from semiostream.sources.readers import SourceError, open_source
from semiostream.sources.writers import convert_source, write_ffv1, write_image_folder, write_npy


def test_k4a_ir_frame0_is_bit_exact():
    src = open_source(asset("pyk4a_recording.mkv"))
    ref = np.load(asset("pyk4a_ir_frame0_uint16.npy"), allow_pickle=False)
    assert isinstance(src, K4aSource)
    assert (src.num_frames, src.height, src.width, src.bit_depth) == (1, 576, 640, 16)
    assert src.fps == pytest.approx(5.0)
    frame = src.read(0, 1)
    assert frame.dtype == np.uint16 and frame.shape == (1, 576, 640)
    np.testing.assert_array_equal(frame[0], ref)


def test_k4a_depth_stream_differs_from_ir():
    path = asset("pyk4a_recording.mkv")
    depth = open_source(path, stream="depth").read(0, 1)[0]
    ir = open_source(path).read(0, 1)[0]
    assert depth.shape == ir.shape == (576, 640)
    assert not np.array_equal(depth, ir)
    assert 0 < np.median(depth[depth > 0]) < 10000  # millimetres: a desk within metres


def test_ffv1_roundtrip_is_lossless_and_seekable(tmp_path: Path, frames16: np.ndarray):
    path = write_ffv1(tmp_path / "a.mkv", frames16, fps=29.97)
    src = open_source(path)
    assert isinstance(src, AvSource)
    assert (src.num_frames, src.height, src.width, src.bit_depth) == (20, 48, 64, 16)
    assert src.fps == pytest.approx(29.97, abs=1e-3)
    np.testing.assert_array_equal(src.read(0, 20), frames16)
    np.testing.assert_array_equal(src.read(13, 17), frames16[13:17])  # seek forward
    np.testing.assert_array_equal(src.read(2, 5), frames16[2:5])  # seek back
    np.testing.assert_array_equal(src.read(5, 9), frames16[5:9])  # sequential continuation
    times = src.frame_times(0, 20)
    assert times[0] == 0 and np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(19 / 29.97, abs=2e-3)


def test_npy_is_memory_mapped_and_exact(tmp_path: Path, frames16: np.ndarray):
    path = write_npy(tmp_path / "a.npy", frames16)
    src = open_source(path, fps=25)
    assert isinstance(src, NpySource) and src.fps == 25
    assert isinstance(src._arr, np.memmap)
    np.testing.assert_array_equal(src.read(4, 20), frames16[4:])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_image_folder_decoded_by_dali_is_exact(tmp_path: Path, frames16: np.ndarray, suffix: str):
    folder = write_image_folder(tmp_path / "frames", frames16, suffix=suffix)
    src = open_source(folder)
    assert isinstance(src, ImageFolderSource) and src.bit_depth == 16
    np.testing.assert_array_equal(src.read(0, 20), frames16)
    np.testing.assert_array_equal(src.read(11, 12), frames16[11:12])


def test_image_folder_natural_order(tmp_path: Path, frames16: np.ndarray):
    from PIL import Image

    folder = tmp_path / "nat"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(frames16[i]).save(folder / f"f{i}.png")  # f10 must come after f9
    np.testing.assert_array_equal(open_source(folder).read(0, 12), frames16[:12])


def test_8bit_video_pyav(tmp_path: Path):
    src = open_source(asset("mmaction2_demo.mp4"))
    assert (src.num_frames, src.height, src.width, src.bit_depth) == (280, 256, 340, 8)
    a = src.read(100, 160)
    assert a.dtype == np.uint16 and a.shape == (60, 256, 340)
    assert a.max() <= 255 and a.max() > 200
    np.testing.assert_array_equal(src.read(130, 131)[0], a[30])  # seeking lands on the same frame


def test_convert_keeps_frames_and_bit_depth(tmp_path: Path):
    k4a = open_source(asset("pyk4a_recording.mkv"))
    out = convert_source(k4a, tmp_path / "k.mkv")
    back = open_source(out)
    assert back.bit_depth == 16
    np.testing.assert_array_equal(back.read(0, 1), k4a.read(0, 1))
    video = open_source(asset("mmaction2_demo.mp4"))
    seen = []
    out8 = convert_source(video, tmp_path / "v.mkv", progress=seen.append)
    back8 = open_source(out8)
    assert back8.bit_depth == 8 and back8.num_frames == 280 and seen[-1] == 280
    np.testing.assert_array_equal(back8.read(200, 230), video.read(200, 230))


def _bad_files(tmp_path: Path, frames16: np.ndarray) -> dict[str, Path]:
    good = write_ffv1(tmp_path / "good.mkv", frames16)
    data = good.read_bytes()
    files = {}
    files["truncated"] = tmp_path / "truncated.mkv"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"] = tmp_path / "empty.mkv"
    files["empty"].write_bytes(b"")
    files["garbage"] = tmp_path / "garbage.mp4"
    files["garbage"].write_bytes(b"this is not a video" * 100)
    files["unsupported"] = tmp_path / "notes.txt"
    files["unsupported"].write_text("hello")
    files["pickle"] = tmp_path / "obj.npy"
    np.save(files["pickle"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    files["float_npy"] = tmp_path / "float.npy"
    np.save(files["float_npy"], np.zeros((2, 3, 4), np.float32))
    files["truncated_npy"] = tmp_path / "t.npy"
    np.save(files["truncated_npy"], frames16)
    files["truncated_npy"].write_bytes(files["truncated_npy"].read_bytes()[:500])
    files["missing"] = tmp_path / "missing.npy"
    files["empty_folder"] = tmp_path / "empty_folder"
    files["empty_folder"].mkdir()
    files["single_png"] = tmp_path / "one.png"
    files["single_png"].write_bytes(b"\x89PNG")
    return files


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "empty",
        "garbage",
        "unsupported",
        "pickle",
        "float_npy",
        "truncated_npy",
        "missing",
        "empty_folder",
        "single_png",
    ],
)
def test_bad_files_raise_source_error_naming_the_file(tmp_path: Path, frames16: np.ndarray, kind: str):
    path = _bad_files(tmp_path, frames16)[kind]
    with pytest.raises(SourceError) as info:
        src = open_source(path)
        src.read(0, src.num_frames)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    # nothing else is affected: a good file still reads afterwards
    np.testing.assert_array_equal(open_source(tmp_path / "good.mkv").read(0, 3), frames16[:3])


def test_corrupt_png_frame_is_named_and_folder_recovers(tmp_path: Path, frames16: np.ndarray):
    folder = write_image_folder(tmp_path / "frames", frames16)
    bad = folder / "frame_000005.png"
    bad.write_bytes(bad.read_bytes()[:100])
    src = open_source(folder)
    with pytest.raises(SourceError, match="frame_000005.png"):
        src.read(0, 20)
    np.testing.assert_array_equal(src.read(6, 20), frames16[6:])  # the reader rebuilt its pipeline


def test_depth_stream_only_for_kinect(tmp_path: Path, frames16: np.ndarray):
    path = write_npy(tmp_path / "a.npy", frames16)
    with pytest.raises(SourceError, match="depth"):
        open_source(path, stream="depth")
    with pytest.raises(IndexError):
        open_source(path).read(15, 25)


@pytest.mark.gpu
def test_image_folder_gpu_decoder_matches_cpu(tmp_path: Path, frames16: np.ndarray):
    folder = write_image_folder(tmp_path / "frames", frames16, suffix=".tif")
    gpu = open_source(folder, device="gpu")
    np.testing.assert_array_equal(gpu.read(0, 20), frames16)
    t = gpu.read_torch(0, 20)
    assert t.is_cuda and tuple(t.shape) == (20, 48, 64)
    np.testing.assert_array_equal(t.cpu().numpy(), frames16)


@pytest.mark.gpu
def test_8bit_video_gpu_decoder_close_to_pyav():
    path = asset("mmaction2_demo.mp4")
    cpu = open_source(path).read(30, 90).astype(np.int32)
    gpu_src = open_source(path, device="gpu")
    gpu = gpu_src.read(30, 90).astype(np.int32)
    assert gpu.shape == cpu.shape
    assert np.abs(gpu - cpu).mean() < 3.0  # luma from different decoders and RGB->gray rounding
    t = gpu_src.read_torch(30, 90)
    assert t.is_cuda
