"""semiostream runs without DALI, PyAV and TensorRT (as on a fixed GPU image that lacks them): in a process
where they are absent (bench/hide_modules), `semiostream score` scores an .npy recording, and a video file
and a folder of PNG frames become error rows that name the missing package, with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from random_bundle import make_random_bundle

from semiostream.core.preprocess_spec import PreprocessSpec

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = "nvidia.dali,av,tensorrt"

CHILD = """
import importlib.util, sys
for name in ("av", "nvidia.dali", "tensorrt"):
    try:
        __import__(name)
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit(f"{name} is importable")
from semiostream.engines.stack import choose_stack
stack = choose_stack()
assert stack.preprocessing == "reference" and stack.name == "cpu", stack
import semiostream.bus.runtime, semiostream.bench.latency, semiostream.engines.scorer  # noqa: E401
from semiostream.cli import main
code = main(sys.argv[1:])
assert not [m for m in ("av", "nvidia.dali") if sys.modules.get(m) is not None], "a hidden module was loaded"
raise SystemExit(code)
"""


def _ffv1_clip(path: Path, frames: np.ndarray) -> Path:
    """A lossless 16-bit FFV1 Matroska file, as the project's archive recorder writes (needs PyAV here)."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=30)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "gray16le"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray16le")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.mark.slow
def test_scores_npy_without_dali_pyav_tensorrt(tmp_path, kinetics_ckpt, make_ir_frames):
    from PIL import Image

    bundle = make_random_bundle(tmp_path / "bundle", kinetics_ckpt, 7, PreprocessSpec(intensity_mode="fixed",
                                                                                         intensity_lo=2000.0,
                                                                                         intensity_hi=6000.0))
    frames = make_ir_frames
    np.save(tmp_path / "bed.npy", frames)
    _ffv1_clip(tmp_path / "bed.mkv", frames)
    (tmp_path / "png").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "png" / f"{i:04d}.png")
    out = tmp_path / "scores.parquet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "bench" / "hide_modules"),
                                                         os.environ.get("PYTHONPATH", "")]),
           "SEMIOSTREAM_HIDE_MODULES": HIDDEN}
    r = subprocess.run([sys.executable, "-c", CHILD, "score", str(tmp_path / "bed.npy"), str(tmp_path / "bed.mkv"),
                        str(tmp_path / "png"), "--bundle", str(bundle), "--out", str(out), "--backend",
                        "torch-cpu-fp32", "--no-compile", "--quiet"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 2 + 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])  # two inputs failed
    videos = pq.read_table(out.with_name("scores.videos.parquet")).to_pylist()
    by_name = {Path(v["path"]).name: v for v in videos}
    assert by_name["bed.npy"]["error"] is None and 0.0 <= by_name["bed.npy"]["p_tle"] <= 1.0
    assert "needs av (PyAV), which is not installed here" in by_name["bed.mkv"]["error"]
    assert "needs nvidia-dali-cuda130 (DALI), which is not installed here" in by_name["png"]["error"]
    assert len(pq.read_table(out)) >= 1


@pytest.fixture
def make_ir_frames():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:64, 0:80].astype(np.float32)
    out = [2800 + 1500 * np.exp(-(((xx - 40 - 5 * np.sin(t)) / 12) ** 2 + ((yy - 32) / 18) ** 2))
           + rng.normal(0, 20, (64, 80)) for t in range(12)]
    return np.clip(np.stack(out), 0, 65535).astype(np.uint16)
