"""The HTJ2K decode -> preprocess DALI graph: on the CPU (DALI's CPU decoder reads HTJ2K codestreams) the
exact graph the GPU runs equals the plain-torch reference on the decoded frames; on a GPU (marker ``gpu``)
the ``"mixed"`` nvJPEG2000 decoder gives the same, on the device, and the throughput is measured."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from independent_decode import assert_pydicom_reads

from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.dali_pipes.reference import preprocess
from semiostream.sources.readers import open_source
from semiostream.sources.write_dicom import write_htj2k_dicom

SPEC = PreprocessSpec()
FIXED = PreprocessSpec(intensity_mode="fixed", intensity_lo=200.0, intensity_hi=9000.0)


def _archive(tmp_path, t=14, h=57, w=83, seed=3):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 12000, (t, h, w), dtype=np.uint16)
    frames[0, 0, 0], frames[1, 5, 5] = 0, 65535
    path = write_htj2k_dicom(tmp_path / "w.dcm", frames, 30.0)
    assert_pydicom_reads(path, frames)
    return frames, path


@pytest.mark.parametrize("spec", [SPEC, FIXED], ids=["percentile", "fixed"])
@pytest.mark.parametrize("roi", [None, (3, 4, 61, 33)])
def test_htj2k_graph_on_the_cpu_equals_the_reference(tmp_path, spec, roi):
    from semiostream.dali_pipes.pipeline_htj2k import Htj2kWindowPreprocessor

    frames, path = _archive(tmp_path)
    with open_source(path) as src:
        out = Htj2kWindowPreprocessor(spec, device="cpu", max_frames=8)(src, 1, 14, roi)  # two graph runs
    ref = preprocess(frames[1:14], roi, spec)
    assert out.shape == (1, 13, 224, 224) and out.dtype == torch.float32
    assert float((out - ref).abs().max()) < 1e-3


def test_htj2k_graph_with_a_held_intensity_window_equals_the_reference(tmp_path):
    """A segment's held (lo, hi) (intensity_scope "video") reaches the graph as the reference applies it."""
    from semiostream.dali_pipes.pipeline_htj2k import Htj2kWindowPreprocessor

    frames, path = _archive(tmp_path)
    held = (500.0, 7000.0)
    with open_source(path) as src:
        out = Htj2kWindowPreprocessor(SPEC, device="cpu", max_frames=8)(src, 1, 14, None, held)
    assert float((out - preprocess(frames[1:14], None, SPEC, window=held)).abs().max()) < 1e-3
    assert float((out - preprocess(frames[1:14], None, SPEC)).abs().max()) > 0.05


def test_htj2k_graph_refuses_other_sources_and_names_bad_frames(tmp_path):
    from semiostream.dali_pipes.pipeline_htj2k import Htj2kWindowPreprocessor
    from semiostream.sources.source import SourceError

    frames, path = _archive(tmp_path, t=4)
    np.save(tmp_path / "a.npy", frames)
    pre = Htj2kWindowPreprocessor(FIXED, device="cpu", max_frames=4)
    with open_source(tmp_path / "a.npy") as src, pytest.raises(TypeError, match="HTJ2K"):
        pre(src, 0, 2, None)
    data = bytearray(path.read_bytes())
    data[-600:-8] = b"\x00" * 592  # the last frame's codestream is zeroed (the file is still whole)
    path.write_bytes(bytes(data))
    with open_source(path) as src, pytest.raises(SourceError, match="frame 3 is damaged"):
        pre(src, 0, 4, None)  # its checksum says so before anything is decoded
    import pydicom

    from semiostream.sources import frame_checksum

    ds = pydicom.dcmread(path)  # as another writer would make it: no checksums, so the decoder must notice
    del ds[frame_checksum.checksum_tag(ds)], ds[frame_checksum.CREATOR_TAGS[0]]
    ds.save_as(path, enforce_file_format=True)
    with open_source(path) as src:
        assert pre(src, 0, 3, None).shape == (1, 3, 224, 224)
        with pytest.raises(SourceError, match=r"frame 3 is not a valid JPEG 2000 codestream"):
            pre(src, 0, 4, None)
        assert pre(src, 1, 3, None).shape == (1, 2, 224, 224)  # the graph was rebuilt


@pytest.mark.gpu
def test_htj2k_graph_decodes_on_the_gpu_equals_the_reference_and_is_fast(tmp_path):
    from semiostream.dali_pipes.pipeline_htj2k import Htj2kWindowPreprocessor
    from semiostream.sources.synth import SynthConfig, render_clip

    frames, path = _archive(tmp_path)
    pre = Htj2kWindowPreprocessor(SPEC, device="cuda:0", max_frames=8)
    with open_source(path) as src:
        out = pre(src, 1, 14, (3, 4, 61, 33))
    assert out.is_cuda
    assert float((out.cpu() - preprocess(frames[1:14], (3, 4, 61, 33), SPEC)).abs().max()) < 1e-3
    clip = np.asarray(render_clip(SynthConfig(width=512, height=424, fps=30.0, seconds=2.0), 0, 0, "TLE").frames)
    big = write_htj2k_dicom(tmp_path / "big.dcm", clip, 30.0)
    assert_pydicom_reads(big, clip)
    pre = Htj2kWindowPreprocessor(FIXED, device="cuda:0", max_frames=60)
    with open_source(big) as src:
        pre(src, 0, 60, None)
        torch.cuda.synchronize()
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 3.0:
            pre(src, 0, 60, None)
            n += 60
        torch.cuda.synchronize()
    fps = n / (time.perf_counter() - t0)
    print(f"HTJ2K decode + preprocessing on the GPU: {fps:.0f} frames/s of 512x424")
    assert fps > 0
