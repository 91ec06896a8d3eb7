"""The DALI graphs the GPU runs, run on the CPU (same @pipeline_def, device="cpu") against the references,
and on a GPU (marker ``gpu``) on the device itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.dali_pipes.reference import preprocess

SPEC = PreprocessSpec()
CASES = [  # (T, H, W, roi): sizes, odd and edge ROIs, portrait and landscape, upscaling
    (9, 576, 640, None),
    (12, 576, 640, (13, 7, 333, 571)),
    (9, 424, 512, (0, 423, 512, 424)),
    (16, 480, 640, (17, 23, 618, 301)),
    (10, 97, 131, (1, 1, 130, 96)),
]


def _windows():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 65536, (t, h, w), dtype=np.uint16) for t, h, w, _ in CASES], [c[3] for c in CASES]


def test_the_gpu_preprocessing_graph_on_the_cpu_equals_the_reference():
    from semiostream.dali_pipes.pipeline import DaliPreprocessor

    pre = DaliPreprocessor(SPEC, device="cpu", host_prepare=False, max_batch=3)  # preprocess_windows, all in graph
    windows, rois = _windows()
    outs = pre(windows, rois)  # 5 windows, batches of 3: two runs of the same graph
    worst = max(float((o - preprocess(w, r, SPEC)).abs().max()) for o, w, r in zip(outs, windows, rois, strict=True))
    assert all(o.shape == (1, w.shape[0], 224, 224) and o.dtype == torch.float32 for o, w in zip(outs, windows, strict=True))
    assert worst < 1e-3, worst


def _vp9(path: Path, frames: int = 40, gop: int = 10) -> Path:
    """An 8-bit VP9 Matroska clip with a keyframe every ``gop`` frames (DALI's CPU decoder reads VP9)."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx-vp9", rate=30)
        s.width, s.height, s.pix_fmt, s.gop_size = 64, 48, "yuv420p", gop
        for i in range(frames):
            f = np.full((48, 64, 3), (i * 5) % 255, np.uint8)
            f[10:20, i : i + 10] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_the_gpu_video_graph_decodes_only_the_needed_group_of_pictures(tmp_path):
    from semiostream.sources.read_av import AvSource
    from semiostream.sources.read_video_gpu import GpuVideoSource

    path = _vp9(tmp_path / "clip.mkv")
    with AvSource(path) as cpu, GpuVideoSource(path, device="cpu") as dec:
        assert dec.num_frames == cpu.num_frames == 40 and list(dec._keyframes[:2]) != []
        for start, stop in [(0, 9), (13, 22), (30, 40), (9, 31), (39, 40)]:
            ref, got = cpu.read(start, stop), dec.read(start, stop)
            assert got.shape == ref.shape and got.dtype == np.uint16
            assert int(np.abs(got.astype(int) - ref.astype(int)).max()) <= 3, (start, stop)
        whole = path.stat().st_size
        seg, offset = dec.segment(33, 36)  # keyframes every 10 frames: starts at frame 30
        assert offset == 3 and seg.nbytes < whole
        _, offset0 = dec.segment(30, 31)
        assert offset0 == 0


def test_a_short_decode_is_a_source_error_naming_the_frames(tmp_path):
    from semiostream.sources.read_video_gpu import GpuVideoSource
    from semiostream.sources.source import SourceError

    path = _vp9(tmp_path / "clip.mkv", frames=20)
    with GpuVideoSource(path, device="cpu") as dec:
        dec.num_frames = 25  # the index promises more frames than the stream holds (a truncated file)
        dec._pts = np.concatenate([dec._pts, dec._pts[-1] + np.arange(1, 6) * (dec._pts[1] - dec._pts[0])])
        with pytest.raises(SourceError, match=r"returned \d+ frames .* for frames \[18, 25\)"):
            dec.read(18, 25)


@pytest.mark.gpu
def test_gpu_decoders_on_the_gpu_equal_the_cpu(tmp_path):
    from semiostream.sources.read_images import ImageFolderSource
    from semiostream.sources.writers import write_image_folder

    frames = np.random.default_rng(3).integers(0, 65536, (9, 40, 56), dtype=np.uint16)  # a frame folder: >= 9
    folder = write_image_folder(tmp_path / "png", frames)
    src = ImageFolderSource(folder, device=f"cuda:{torch.cuda.current_device()}")
    assert np.array_equal(src.read(0, 9), frames)
    t = src.read_torch(1, 5)
    assert t.is_cuda and np.array_equal(t.cpu().numpy(), frames[1:5])


@pytest.mark.gpu
def test_the_gpu_preprocessing_graph_on_the_gpu_equals_the_reference():
    from semiostream.dali_pipes.pipeline import DaliPreprocessor

    pre = DaliPreprocessor(SPEC, device="cuda", max_batch=3)
    windows, rois = _windows()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        outs = pre(windows, rois, stream=stream)
        outs_dev = pre([torch.from_numpy(w).cuda() for w in windows], rois, stream=stream)
    stream.synchronize()
    for o, w, r in zip(outs + outs_dev, windows + windows, rois + rois, strict=True):
        assert o.is_cuda and float((o.cpu() - preprocess(w, r, SPEC)).abs().max()) < 1e-3
