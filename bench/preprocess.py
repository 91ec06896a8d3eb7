"""Preprocessing benchmark: DALI CPU (and GPU when present) vs the torch reference vs a naive numpy loop.

All implementations compute the same function (:func:`semiostream.dali_pipes.reference.preprocess`) on
the same windows (``[60, H, W]`` uint16: synthetic IR with a person+bed ROI, or ``--source`` a real
recording), and each is checked against the reference (max abs difference). Variants, with their thread
budgets stated because a fair comparison needs them:

* ``naive_numpy_loop``: :func:`naive_preprocess`, a plain per-frame numpy loop (single-threaded: numpy's
  element-wise kernels do not use threads). It is a reasonable implementation, not a strawman: the shared
  intensity-window percentiles (:func:`~semiostream.dali_pipes.intensity.intensity_window`), then per
  frame vectorised numpy: crop, window, clip, and a separable bilinear resize written as a row gather +
  blend and a column gather + blend (no Python loop over pixels, only over frames).
* ``torch_reference``: the reference itself (``torch`` intra-op threads = ``--threads``).
* ``dali_cpu``: :class:`~semiostream.dali_pipes.pipeline.DaliPreprocessor` on the CPU, as the scorer runs
  it (host: percentiles + one vectorised crop/clamp pass; DALI graph: resize, affine, pad), with 1 and with
  ``--threads`` DALI worker threads.
* ``dali_cpu_in_graph``: the previous CPU graph (every step, including the per-pixel clamp, inside DALI;
  still the GPU graph), for the before/after comparison.
* on a GPU: ``dali_gpu`` and ``torch_reference_gpu`` (frames already on the GPU).

Timing interleaves the variants (one batch of each per round, ``--repeat`` rounds; median per variant),
so a neighbour's load on a shared machine hits all of them alike. Reported: windows/s, frames/s, ratio
to the naive loop. Run: ``semiostream bench preprocess`` (or ``python -m semiostream.bench.preprocess``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from semiostream.core.roi import as_roi
from semiostream.dali_pipes.geometry import fit_size, pad_offsets

from . import common

NAME = "preprocess"


def naive_preprocess(frames: np.ndarray, roi: Sequence[int] | None, spec) -> np.ndarray:
    """The preprocessing function as a plain per-frame numpy loop (baseline; bilinear written out).

    Args:
        frames: ``[T, H, W]`` uint16. roi: ``(x0, y0, x1, y1)`` or None. spec: ``PreprocessSpec``.

    Returns:
        ``[1, T, size, size]`` float32 in [-1, 1].
    """
    from semiostream.dali_pipes.intensity import intensity_window

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
    from semiostream.sources.synth import SynthConfig, render_clip

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


def source_windows(path: str | Path, n: int, spec, roi: Sequence[int] | None = None) -> tuple[list, list]:
    """The first ``n`` full windows of a recording (any format :func:`open_source` reads), and ``roi`` each."""
    from semiostream.sources.readers import open_source
    from semiostream.sources.windows import iter_windows

    windows = []
    with open_source(path) as src:
        for win in iter_windows(src, spec.window, spec.window, spec.window):
            windows.append(np.ascontiguousarray(win.frames, dtype=np.uint16))
            if len(windows) == n:
                break
    if not windows:
        raise ValueError(f"{path} holds no full window of {spec.window} frames")
    return windows, [tuple(roi) if roi else None for _ in windows]


def run(windows: list[np.ndarray], rois: list, repeat: int = 3, threads: int | None = None,
        batch: int = 8, in_graph: bool = True) -> dict:
    """Time every variant on the same windows (interleaved rounds); returns the JSON-able results."""
    import torch

    from semiostream.core.preprocess_spec import PreprocessSpec
    from semiostream.dali_pipes.pipeline import DaliPreprocessor, preprocess_windows, sample_params
    from semiostream.dali_pipes.reference import preprocess

    spec = PreprocessSpec()
    threads = threads or torch.get_num_threads()
    n = len(windows)
    frames = sum(int(w.shape[0]) for w in windows)
    ref = [preprocess(w, r, spec) for w, r in zip(windows, rois, strict=True)]
    variants: dict[str, tuple[Callable[[], list], str]] = {}

    variants["naive_numpy_loop"] = (
        lambda: [naive_preprocess(w, r, spec) for w, r in zip(windows, rois, strict=True)], "1 (numpy)")

    def torch_ref() -> list:
        old = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return [preprocess(w, r, spec) for w, r in zip(windows, rois, strict=True)]
        finally:
            torch.set_num_threads(old)

    variants["torch_reference"] = (torch_ref, f"{threads} (torch)")
    for t in sorted({1, threads}):
        pre = DaliPreprocessor(spec, device="cpu", max_batch=batch, num_threads=t)
        variants[f"dali_cpu_{t}t"] = (lambda pre=pre: pre(windows, rois), f"{t} (DALI) + caller")
    if in_graph:
        pipe = preprocess_windows(device="cpu", size=spec.size, pad_value=float(spec.pad_value), batch_size=batch,
                                  num_threads=threads, device_id=None, prefetch_queue_depth=1)
        pipe.build()

        def dali_in_graph() -> list:
            out = []
            for s in range(0, n, batch):
                ws, rs = windows[s:s + batch], rois[s:s + batch]
                feeds = [sample_params(w, r, spec).feeds() for w, r in zip(ws, rs, strict=True)]
                pipe.feed_input("frames", [w[..., None] for w in ws], layout="FHWC")
                for k in feeds[0]:
                    pipe.feed_input(k, [f[k] for f in feeds])
                (tl,) = pipe.run()
                out += [torch.from_dlpack(tl[i]).movedim(-1, 0) for i in range(len(ws))]
            return out

        variants[f"dali_cpu_in_graph_{threads}t"] = (dali_in_graph, f"{threads} (DALI) + caller")
    if torch.cuda.is_available():
        gpu = DaliPreprocessor(spec, device="gpu", max_batch=batch)
        cuda_windows = [torch.from_numpy(w).cuda() for w in windows]

        def dali_gpu() -> list:
            out = gpu(cuda_windows, rois)
            torch.cuda.synchronize()
            return out

        def torch_gpu() -> list:
            out = [preprocess(w, r, spec) for w, r in zip(cuda_windows, rois, strict=True)]
            torch.cuda.synchronize()
            return out

        variants["dali_gpu"] = (dali_gpu, "GPU (frames on the GPU)")
        variants["torch_reference_gpu"] = (torch_gpu, "GPU (frames on the GPU)")

    times: dict[str, list[float]] = {k: [] for k in variants}
    diffs: dict[str, float] = {}
    for name, (fn, _) in variants.items():  # warm-up (DALI build, allocators) and the accuracy check
        out = fn()
        diffs[name] = max(float((torch.as_tensor(o).cpu().float() - r).abs().max())
                          for o, r in zip(out, ref, strict=True))
    for _ in range(repeat):
        for name, (fn, _) in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)

    results = {}
    naive = statistics.median(times["naive_numpy_loop"])
    for name, (_, budget) in variants.items():
        med = statistics.median(times[name])
        results[name] = {
            "threads": budget, "windows_per_s": n / med, "frames_per_s": frames / med,
            "median_s_per_batch": med, "min_s_per_batch": min(times[name]),
            "speedup_vs_naive": naive / med, "max_abs_diff_vs_reference": diffs[name],
        }
    return {"results": results, "components": _components(windows, rois, spec, repeat)}


def _components(windows: list, rois: list, spec, repeat: int) -> dict:
    """Host-side pieces timed alone (ms per window): the intensity-window percentiles (shared by every CPU
    variant) and the DALI CPU path's vectorised crop+clamp pass (part of ``dali_cpu``'s time)."""
    from semiostream.dali_pipes.intensity import intensity_window
    from semiostream.dali_pipes.pipeline import prepare_window, sample_params

    pairs = [(w, as_roi(r, w.shape[2], w.shape[1])) for w, r in zip(windows, rois, strict=True)]
    params = [sample_params(w, r, spec) for w, r in pairs]
    parts = {
        "percentiles (intensity_window, every variant)": lambda: [intensity_window(w, r, spec) for w, r in pairs],
        "crop+clamp on the host (dali_cpu only)": lambda: [prepare_window(w, p)
                                                           for (w, _), p in zip(pairs, params, strict=True)],
    }
    out = {}
    for name, fn in parts.items():
        fn()
        ts = []
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        out[name] = 1e3 * statistics.median(ts) / len(windows)
    return out


def plot(result: dict, path: Path) -> Path:
    plt = common.pyplot()
    res = result["results"]
    names = list(res)
    vals = [res[k]["windows_per_s"] for k in names]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    bars = ax.barh(names, vals, color=["#888" if k == "naive_numpy_loop" else "#3a7" for k in names])
    for b, k in zip(bars, names, strict=True):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {res[k]['speedup_vs_naive']:.2f}x",
                va="center")
    ax.invert_yaxis()
    ax.set_xlabel("windows / s (60 frames each; higher is better)")
    ax.set_title(f"preprocessing, {result['height']}x{result['width']} frames, {result['machine']['cpu']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--windows", type=int, default=8, help="windows per timed batch (default 8)")
    ap.add_argument("--height", type=int, default=576, help="synthetic frame height (Azure Kinect IR: 576)")
    ap.add_argument("--width", type=int, default=640, help="synthetic frame width (Azure Kinect IR: 640)")
    ap.add_argument("--source", type=Path, help="take the windows from this recording instead of synthetic ones")
    ap.add_argument("--roi", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="crop for --source")
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3; median reported)")
    ap.add_argument("--threads", type=int, help="threads for DALI and torch (default: torch's, = cores)")
    ap.add_argument("--no-in-graph", action="store_true", help="skip the previous all-in-DALI CPU graph")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT, help="folder for JSON and PNG")
    ap.add_argument("--no-plot", action="store_true", help="write no PNG")


def run_from_args(args: argparse.Namespace, command: str | None = None) -> dict:
    from semiostream.core.preprocess_spec import PreprocessSpec

    if args.source:
        windows, rois = source_windows(args.source, args.windows, PreprocessSpec(), args.roi)
    else:
        windows, rois = make_windows(args.windows, args.height, args.width)
    load_before = common.machine_facts()
    res = run(windows, rois, args.repeat, args.threads, in_graph=not args.no_in_graph)
    res.update(benchmark=NAME, command=command or common.command_line(), machine=load_before,
               loadavg_after=list(os.getloadavg()), windows=len(windows),
               frames_per_window=int(windows[0].shape[0]), height=int(windows[0].shape[1]),
               width=int(windows[0].shape[2]), source=str(args.source) if args.source else "synthetic")
    rows = [(k, r["threads"], r["windows_per_s"], r["frames_per_s"], r["speedup_vs_naive"],
             r["max_abs_diff_vs_reference"]) for k, r in res["results"].items()]
    res["markdown"] = common.print_table(
        f"preprocessing: {len(windows)} windows of {res['frames_per_window']}x{res['height']}x{res['width']}",
        ["variant", "threads", "windows/s", "frames/s", "x naive", "max abs diff vs ref"], rows)
    for k, v in res["components"].items():
        print(f"  host component {k}: {v:.2f} ms/window")
    if not args.no_plot:
        res["plot"] = str(plot(res, common.plot_path(args.out, NAME, "bars")))
    res["json"] = str(common.write_result(NAME, res, args.out))
    print(f"wrote {res['json']}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.preprocess", description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    run_from_args(args, "python -m semiostream.bench.preprocess " + " ".join(argv or []))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
