"""Keys (what makes a result reusable) and plans (segment, windows, times, crop, failures)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from semiostream.archive.identity import ContentHashes, RunSettings, input_key
from semiostream.archive.plan import PlanError, plan_job
from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.core.segment import Segment
from semiostream.sources.source import SourceError

SPEC = PreprocessSpec(window=16, fps=15, min_frames=9)
SETTINGS = RunSettings("bundle-a", "torch-cpu-fp32", None, "full")


def _npy(path, n, value=1000):
    np.save(path, np.full((n, 48, 64), value, np.uint16))
    return path


def test_key_changes_with_content_job_and_run_settings(tmp_path):
    a = _npy(tmp_path / "a.npy", 40)
    hashes = ContentHashes(tmp_path / "work")
    sha = hashes.sha256(a)
    k = input_key(Segment(a), sha, SETTINGS)
    assert k == input_key(Segment(a), hashes.sha256(a), SETTINGS)
    assert k != input_key(Segment(a, onset=1.0), sha, SETTINGS)
    assert k != input_key(Segment(a, roi=(0, 0, 8, 8)), sha, SETTINGS)
    for changed in (RunSettings("bundle-b", "torch-cpu-fp32", None, "full"),
                    RunSettings("bundle-a", "onnxruntime-cpu-fp32", None, "full"),
                    RunSettings("bundle-a", "torch-cpu-fp32", 8, "full"),
                    RunSettings("bundle-a", "torch-cpu-fp32", None, "yolox:1234"),
                    RunSettings("bundle-a", "torch-cpu-fp32", None, "full", 0.6),
                    RunSettings("bundle-a", "torch-cpu-fp32", None, "full", preprocessing="dali")):
        assert input_key(Segment(a), sha, changed) != k
    _npy(a, 40, value=1001)  # same size, new content and mtime
    assert hashes.sha256(a) != sha


def test_content_hash_is_remembered_by_size_and_mtime(tmp_path):
    a = _npy(tmp_path / "a.npy", 40)
    hashes = ContentHashes(tmp_path / "work")
    sha = hashes.sha256(a)
    hashes.save()
    st = a.stat()
    _npy(a, 40, value=1001)  # rewrite the bytes but restore size and mtime: the memo is trusted
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ContentHashes(tmp_path / "work").sha256(a) == sha
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: hashed again
    assert ContentHashes(tmp_path / "work").sha256(a) != sha


def test_plan_of_a_segment(tmp_path):
    a = _npy(tmp_path / "a.npy", 60)
    plan = plan_job(Segment(a, onset=0.5, offset=1.8, fps=15.0), "k", "sha", SPEC)
    # frames [8, 27): one full window [8, 24) and a leftover of 3 (< 9) dropped
    assert (plan.seg_start, plan.seg_stop, plan.num_frames, plan.fps) == (8, 27, 60, 15.0)
    assert plan.ranges() == [(8, 24)]
    assert plan.t_first.tolist() == [8 / 15] and plan.t_last.tolist() == [23 / 15]
    whole = plan_job(Segment(a), "k", "sha", SPEC)
    assert whole.ranges() == [(0, 16), (16, 32), (32, 48), (48, 60)]  # leftover of 12 >= 9 kept
    hop = plan_job(Segment(a), "k", "sha", SPEC, hop=8)
    assert hop.ranges()[:3] == [(0, 16), (8, 24), (16, 32)]
    roi = plan_job(Segment(a, roi=(2, 3, 42, 43)), "k", "sha", SPEC)
    assert roi.roi == (2, 3, 42, 43)


@pytest.mark.parametrize("job_kw, error, message", [
    ({"name": "short.npy", "n": 8}, PlanError, "too short: the segment has 8 frames"),
    ({"onset": 5.0}, PlanError, "lies outside the video"),
    ({"roi": (0, 0, 99, 99)}, PlanError, "manifest roi"),
    ({"name": "bad.npy", "garbage": True}, SourceError, "not a plain numeric .npy array"),
])
def test_plan_failures_say_why(tmp_path, job_kw, error, message):
    path = tmp_path / job_kw.get("name", "a.npy")
    if job_kw.get("garbage"):
        path.write_bytes(b"\x93NUMPY garbage")
    else:
        _npy(path, job_kw.get("n", 40))
    kw = {k: v for k, v in job_kw.items() if k in ("onset", "roi")}
    with pytest.raises(error, match=message):
        plan_job(Segment(path, **kw), "k", "sha", SPEC)


def _mkv_with_times(path, pts, fps=30):
    """An MPEG-4 Matroska clip (64x48) whose frames carry presentation timestamps ``pts`` in 1/fps units."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, fps)
        for i, t in enumerate(pts):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = int(t), Fraction(1, fps)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_plan_notes_frames_lost_from_a_recording(tmp_path):
    spec = PreprocessSpec(window=16, fps=30, min_frames=9)
    even = _mkv_with_times(tmp_path / "even.mkv", range(60))
    lost = _mkv_with_times(tmp_path / "lost.mkv", [*range(30), *range(51, 81)])  # frames 30..50 never came
    assert plan_job(Segment(even), "k", "sha", spec).notes == []
    plan = plan_job(Segment(lost), "k", "sha", spec)
    assert plan.resampled and plan.num_frames == 60
    assert plan.notes == ["1 gap in its frame times (frames dropped or lost; longest 0.73 s after 0.97 s): "
                          "the frame before a gap is held across it"]
