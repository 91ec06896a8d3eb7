"""CPU latency of preprocessing + I3D + classifier per 60-frame window, step by step, side by side.

Run: ``python -m semiostream.bench.engines [--bundle DIR] [--out bench/results/engines_cpu.json]``

Without ``--bundle`` a bundle is made in a temporary directory from the Kinetics-400 I3D checkpoint
(``../shared/assets/i3d-kinetics-400.ckpt`` or ``--ckpt``) and a random classifier (speed does not depend on
the classifier's weights). Input: one synthetic 16-bit IR window of 60 frames, 424x512, with a person+bed
ROI. Every variant is warmed up once, then timed ``--repeats`` times; the table shows the median and the
minimum seconds per window, and the feature cosine against the fp32 eager reference. Machine facts and the
load average (other processes skew timings on a shared machine) are recorded in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _time(fn: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    out = fn()  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def _ir_window(frames: int = 60, h: int = 424, w: int = 512) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 2800 + 2.0 * xx + rng.normal(0, 15, (h, w))
    out = np.empty((frames, h, w), np.float32)
    for t in range(frames):
        cx, cy = w / 2 + 20 * np.sin(t / 4), h / 2 + 8 * np.cos(t / 3)
        out[t] = base + 1500 * np.exp(-(((xx - cx) / 70) ** 2 + ((yy - cy) / 120) ** 2))
    return np.clip(out + rng.normal(0, 20, out.shape), 0, 65535).astype(np.uint16)


def _bundle(path: str | None, ckpt: Path) -> object:
    from semiostream.models.bundle import load_bundle, save_bundle
    from semiostream.models.classifier import SeizureClassifier
    from semiostream.models.weights import load_i3d_checkpoint

    if path:
        return load_bundle(path)
    tmp = Path(tempfile.mkdtemp(prefix="semiostream-bench-"))
    torch.manual_seed(0)
    return load_bundle(save_bundle(tmp / "bundle", load_i3d_checkpoint(ckpt, in_channels=1),
                                   SeizureClassifier().eval()))


def run(bundle, repeats: int = 3, quick: bool = False) -> dict:
    from semiostream.dali_pipes.reference import preprocess
    from semiostream.engines.backend_onnxruntime import OrtEngine
    from semiostream.engines.backend_torch import TorchEngine, fold_batchnorm
    from semiostream.engines.scorer import Scorer
    from semiostream.trt_build.export import onnx_from_bundle

    window = _ir_window(bundle.spec.window)
    roi = (96, 40, 416, 400)
    rows: list[dict] = []

    def add(step: str, what: str, times: list[float], per: int = 1, cos: float | None = None) -> None:
        rows.append({"step": step, "variant": what, "median_s": statistics.median(times) / per,
                     "min_s": min(times) / per, "cosine_vs_fp32": cos, "repeats": len(times)})
        print(f"{step:<14} {what:<52} median {rows[-1]['median_s']:.3f} s  min {rows[-1]['min_s']:.3f} s"
              + (f"  cos {cos:.6f}" if cos is not None else ""), flush=True)

    # --- preprocessing
    times, x = _time(lambda: preprocess(window, roi, bundle.spec), repeats)
    add("preprocess", "torch reference (dali_pipes.reference)", times)
    try:
        from semiostream.dali_pipes.pipeline import DaliPreprocessor

        dali = DaliPreprocessor(bundle.spec, "cpu", max_batch=4, num_threads=2)
        times, _ = _time(lambda: dali([window], [roi]), repeats)
        add("preprocess", "DALI CPU pipeline", times)
    except ImportError:
        pass

    x = x[None]  # [1, 1, 60, 224, 224]
    with torch.inference_mode():
        ref = bundle.i3d.extract_features(x)

    def cos(y: torch.Tensor) -> float:
        return float(F.cosine_similarity(y.float().flatten(1), ref.flatten(1)).min())

    def eager(model, autocast: bool = False):
        def f():
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
                return model.extract_features(x)
        return f

    # --- I3D, one optimisation at a time
    times, y = _time(eager(bundle.i3d), repeats)
    add("i3d", "fp32 eager (bundle model, 1-channel folded stem)", times, cos=cos(y))
    folded = fold_batchnorm(bundle.i3d)
    times, y = _time(eager(folded), repeats)
    add("i3d", "fp32 + BN folded into conv", times, cos=cos(y))
    e = TorchEngine(bundle, "features", precision="fp32", compile=False)
    times, y = _time(lambda: e.infer(x), repeats)
    add("i3d", "fp32 + BN folded + channels_last_3d [torch-cpu-fp32]", times, cos=cos(y))
    if not quick:
        e = TorchEngine(bundle, "features", precision="fp32", compile=True)
        times, y = _time(lambda: e.infer(x), repeats)
        add("i3d", "fp32 + folded + channels_last + torch.compile", times, cos=cos(y))
    times, y = _time(eager(bundle.i3d, autocast=True), repeats)
    add("i3d", "bf16 autocast (bundle model)", times, cos=cos(y))
    times, y = _time(eager(folded, autocast=True), repeats)
    add("i3d", "bf16 autocast + BN folded", times, cos=cos(y))
    e = TorchEngine(bundle, "features", precision="bf16", compile=False)
    times, y = _time(lambda: e.infer(x), repeats)
    add("i3d", "bf16 weights + folded + channels_last_3d (eager)", times, cos=cos(y))
    e = TorchEngine(bundle, "features", precision="bf16", compile=True)
    t0 = time.perf_counter()
    e.infer(x)
    compile_s = time.perf_counter() - t0
    times, y = _time(lambda: e.infer(x), repeats)
    add("i3d", "bf16 + folded + channels_last + torch.compile [torch-cpu-bf16]", times, cos=cos(y))
    x2 = torch.cat([x, x])
    times, _ = _time(lambda: e.infer(x2), max(1, repeats - 1))
    add("i3d", "  same, batch of 2 windows (per window)", times, per=2)

    paths = onnx_from_bundle(bundle)
    for level in ("basic", "all"):
        o = OrtEngine(bundle, "features", graph_level=level, threads=os.cpu_count())
        times, y = _time(lambda o=o: o.infer(x), repeats)
        add("i3d", f"ONNX Runtime CPU, graph level {level.upper()}, {os.cpu_count()} threads"
            + (" [onnxruntime-cpu-fp32]" if level == "all" else ""), times, cos=cos(y))
    del paths

    # --- classifier
    c = TorchEngine(bundle, "classifier")
    f7 = torch.rand(1, 7, 1024)
    times, _ = _time(lambda: c.infer(f7), repeats)
    add("classifier", "torch fp32, batch 1", times)

    # --- end to end (what the service runs)
    with Scorer(bundle, "torch-cpu-bf16") as s:
        times, _ = _time(lambda: s.score_windows([window], [roi]), repeats)
        add("end-to-end", f"Scorer torch-cpu-bf16 + {s.preprocessing} preprocessing, 1 window", times)
        times, _ = _time(lambda: s.score_windows([window] * 2, [roi] * 2), max(1, repeats - 1))
        add("end-to-end", f"Scorer torch-cpu-bf16 + {s.preprocessing}, 2 windows per call (per window)", times, per=2)
    with Scorer(bundle, "torch-cpu-fp32") as s:
        times, _ = _time(lambda: s.score_windows([window], [roi]), max(1, repeats - 1))
        add("end-to-end", f"Scorer torch-cpu-fp32 + {s.preprocessing}, 1 window", times)

    return {"rows": rows, "bf16_compile_s": compile_s}


def machine() -> dict:
    from semiostream.engines.select import machine_info

    info = machine_info()
    info["platform"] = platform.platform()
    info["loadavg_1m"] = os.getloadavg()[0]
    return info


def write_markdown(result: dict, command: str) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"onnxruntime {m['onnxruntime']}; load average before/after {result['load_before']:.2f}/"
        f"{result['load_after']:.2f}. Date {result['date']}.",
        "", f"Command: `{command}`", "",
        "| step | variant | median s/window | min s/window | feature cosine vs fp32 eager |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        c = f"{r['cosine_vs_fp32']:.6f}" if r["cosine_vs_fp32"] is not None else ""
        lines.append(f"| {r['step']} | {r['variant']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {c} |")
    lines.append("")
    lines.append(f"torch.compile of the bf16 I3D took {result['bf16_compile_s']:.1f} s on first use "
                 "(cold cache: about 20-30 s; later processes reuse Inductor's on-disk cache).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.engines", description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", help="model bundle directory (default: a temporary one)")
    ap.add_argument("--ckpt", type=Path,
                    default=Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "i3d-kinetics-400.ckpt")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="skip the slow fp32 torch.compile variant")
    ap.add_argument("--out", type=Path, default=Path("bench/results/engines_cpu.json"))
    ap.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    args = ap.parse_args(argv)
    bundle = _bundle(args.bundle, args.ckpt)
    load_before = os.getloadavg()[0]
    result = run(bundle, args.repeats, args.quick)
    result.update(machine=machine(), load_before=load_before, load_after=os.getloadavg()[0],
                  date=time.strftime("%Y-%m-%d %H:%M"), bundle_id=bundle.bundle_id)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shown = argv if argv is not None else sys.argv[1:]
    md = write_markdown(result, " ".join(["python -m semiostream.bench.engines", *shown]))
    if args.markdown:
        args.markdown.write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
