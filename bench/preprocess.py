"""Preprocessing benchmark: DALI CPU (and GPU when present) vs the torch reference vs a naive loop.

All three compute the same function (see :mod:`semiostream.dali_pipes.reference`) on the same windows
(synthetic 16-bit IR, ``[60, H, W]`` uint16, person+bed crops); we report windows per second and the
max abs difference of each against the reference.

Run: ``python -m semiostream.bench.preprocess [--windows 16] [--height 576 --width 640] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from semiostream.dali_pipes.geometry import fit_size, pad_offsets
from semiostream.dali_pipes.intensity import intensity_window
from semiostream.dali_pipes.roi import as_roi


def naive_preprocess(frames: np.ndarray, roi: Sequence[int] | None, spec) -> np.ndarray:
    """The preprocessing function as a plain per-frame numpy loop (baseline; bilinear written out).

    Args:
        frames: ``[T, H, W]`` uint16. roi: ``(x0, y0, x1, y1)`` or None. spec: ``PreprocessSpec``.

    Returns:
        ``[1, T, size, size]`` float32 in [-1, 1].
    """
    n, h, w = frames.shape
    r = as_roi(roi, w, h)
    lo, hi = intensity_window(frames, r, spec)
    oh, ow = fit_size(r.height, r.width, spec.size)
    top, left = pad_offsets(oh, ow, spec.size)

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # align_corners=False source coordinates, clamped at the borders (as torch and DALI)
        src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        src = np.maximum(src, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (src - i0).astype(np.float32)

    y0, y1, fy = axis(r.height, oh)
    x0, x1, fx = axis(r.width, ow)
    out = np.full((1, n, spec.size, spec.size), spec.pad_value, np.float32)
    scale = np.float32(1.0 / (hi - lo))
    for t in range(n):
        c = frames[t, r.y0 : r.y1, r.x0 : r.x1].astype(np.float32)
        c = np.clip((c - np.float32(lo)) * scale, 0.0, 1.0)
        rows = c[y0] * (1 - fy)[:, None] + c[y1] * fy[:, None]
        img = rows[:, x0] * (1 - fx) + rows[:, x1] * fx
        out[0, t, top : top + oh, left : left + ow] = img * 2 - 1
    return out


def make_windows(n: int, height: int, width: int, frames: int = 60, seed: int = 0) -> tuple[list, list]:
    """``n`` synthetic IR windows ``[frames, height, width]`` uint16 and one person+bed ROI each."""
    from semiostream.dali_pipes.synth import SynthConfig, render_clip

    windows, rois = [], []
    for i in range(n):
        clip = render_clip(
            SynthConfig(height=height, width=width, fps=30),
            patient_seed=seed + i,
            seizure_seed=i,
            label="FLE" if i % 2 else "TLE",
            num_frames=frames,
        )
        windows.append(clip.frames)
        rois.append(clip.roi)
    return windows, rois


def _time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (DALI build, allocator)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def run(windows_n: int = 8, height: int = 576, width: int = 640, repeat: int = 2, batch: int = 8) -> dict:
    """Time each implementation on the same windows; returns a JSON-able dict with windows/s."""
    from semiostream.dali_pipes.reference import preprocess
    from semiostream.models.bundle import PreprocessSpec

    spec = PreprocessSpec()
    windows, rois = make_windows(windows_n, height, width)
    ref = [preprocess(w, r, spec) for w, r in zip(windows, rois, strict=True)]
    results: dict[str, dict] = {}

    def record(name: str, call: Callable[[], list]) -> None:
        sec = _time(call, repeat)
        out = call()
        diff = max(float((torch.as_tensor(o).cpu().float() - r).abs().max()) for o, r in zip(out, ref, strict=True))
        results[name] = {
            "windows_per_s": windows_n / sec,
            "sec_per_batch": sec,
            "max_abs_diff_vs_reference": diff,
        }

    record("torch_reference_cpu", lambda: [preprocess(w, r, spec) for w, r in zip(windows, rois, strict=True)])
    record("naive_numpy_loop", lambda: [naive_preprocess(w, r, spec) for w, r in zip(windows, rois, strict=True)])
    from semiostream.dali_pipes.pipeline import DaliPreprocessor

    dali_cpu = DaliPreprocessor(spec, device="cpu", max_batch=batch, num_threads=max(1, torch.get_num_threads()))
    record("dali_cpu", lambda: dali_cpu(windows, rois))
    if torch.cuda.is_available():
        dali_gpu = DaliPreprocessor(spec, device="gpu", max_batch=batch)

        def gpu_call() -> list:
            out = dali_gpu(windows, rois)
            torch.cuda.synchronize()
            return out

        record("dali_gpu", gpu_call)
        cuda_windows = [torch.from_numpy(w).cuda() for w in windows]

        def torch_gpu() -> list:
            out = [preprocess(w, r, spec) for w, r in zip(cuda_windows, rois, strict=True)]
            torch.cuda.synchronize()
            return out

        record("torch_reference_gpu", torch_gpu)
    return {
        "benchmark": "preprocess",
        "windows": windows_n,
        "frames_per_window": 60,
        "height": height,
        "width": width,
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=8, help="windows per timed batch (default 8)")
    ap.add_argument("--height", type=int, default=576, help="frame height (Azure Kinect IR: 576)")
    ap.add_argument("--width", type=int, default=640, help="frame width (Azure Kinect IR: 640)")
    ap.add_argument("--repeat", type=int, default=2, help="timed repetitions (default 2)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    res = run(args.windows, args.height, args.width, args.repeat)
    for name, r in res["results"].items():
        diff = r["max_abs_diff_vs_reference"]
        print(f"{name:22s} {r['windows_per_s']:8.2f} windows/s   max|diff| vs reference {diff:.2e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
