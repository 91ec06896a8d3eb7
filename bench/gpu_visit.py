"""The measurements of one visit to a GPU host (``bench/gpu_session.sh``), one step per call, into one JSON.

Steps (each a separate process with its own time limit, so one that hangs costs only its own limit):

* ``engines``: the I3D feature engine of every torch-CUDA precision (fp32 / fp16 / bf16, as available),
  CUDA graphs off and on, batch 1..64 of standard-length windows: windows/s, and the share of the GPU's
  dense fp16/bf16 peak (datasheet figure where the GPU is known, else the measured matmul peak) that the
  I3D's convolution FLOPs reach;
* ``scorer``: the Scorer end to end as the service runs it on the chosen stack
  (:func:`semiostream.engines.stack.choose_stack`): uint16 frames in host memory -> p(TLE), windows/s;
* ``live``: the live scorer with many synthetic beds on loopback ZeroMQ (:func:`semiostream.bench.latency.run_point`):
  latency beyond window fill p50/p99, drops, CPU %;
* ``archive``: decoding + preprocessing of archive formats whose decoders are installed (HTJ2K DICOM through
  imagecodecs; FFV1 through PyAV), windows/s;
* ``summary``: SUMMARY.md from the step table and the JSON (and the same figures as a bench/RESULTS.md
  section with ``--results-section``).

``--tiny`` runs every step with the smallest sizes on whatever device is there (the CPU rehearsal of a visit):
a bundle with 16-frame windows, batch 1-2, 2 beds for 3 s; numbers from it measure nothing, they prove the
steps, files and limits work. The model is a bundle of random weights made once in ``--work`` (speed does
not depend on weights; nothing is fetched).

Run: ``python -m semiostream.bench.gpu_visit STEP --json OUT/measure.json [--tiny] [--work DIR]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

STEPS = ("engines", "scorer", "live", "archive")
#: dense (no sparsity) fp16 / bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets, by name fragment
DENSE_PEAK_TFLOPS = {"H200": 989.4, "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0,
                     "H100 NVL": 835.5, "A100": 312.0, "L40S": 362.1, "L4": 121.0}


def _dense_peak(gpu_name: str) -> float | None:
    for key, tflops in DENSE_PEAK_TFLOPS.items():
        if key.lower() in gpu_name.lower():
            return tflops
    return None


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def visit_bundle(work: Path, tiny: bool):
    """A bundle of random weights (He-initialised I3D, default classifier) with 60-frame windows (9, the
    shortest, with ``tiny``), made once in ``work`` and reused."""
    from semiostream.core.preprocess_spec import PreprocessSpec
    from semiostream.models.bundle import load_bundle, save_bundle

    path = work / ("bundle-tiny" if tiny else "bundle")
    if not (path / "bundle.json").is_file():
        import torch
        from torch import nn

        from semiostream.models.classifier import SeizureClassifier
        from semiostream.models.i3d import InceptionI3d

        torch.manual_seed(0)
        i3d = InceptionI3d(in_channels=1).eval()
        for m in i3d.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        spec = PreprocessSpec(window=9 if tiny else 60)
        save_bundle(path, i3d, SeizureClassifier().eval(), spec, provenance={"bench": "random weights"})
    return load_bundle(path)


def ir_window(frames: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``[T, H, W]`` uint16 IR-like frames (warm moving body, cooler background, sensor noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((frames, h, w), np.uint16)
    for t in range(frames):
        cx = w * (0.5 + 0.1 * np.sin(t / 3))
        body = 1500 * np.exp(-(((xx - cx) / (w * 0.18)) ** 2 + ((yy - h / 2) / (h * 0.3)) ** 2))
        out[t] = np.clip(2800 + 2.0 * xx + body + rng.normal(0, 20, (h, w)), 0, 65535)
    return out


def _rate(fn, items: int, device: str, min_s: float, max_reps: int, warm: int = 2) -> dict[str, float]:
    """Warm ``fn`` up (``warm`` calls), then time calls until ``min_s`` seconds or ``max_reps`` calls: items/s."""
    for _ in range(warm):
        fn()
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        _sync(device)
        dt = time.perf_counter() - t0
        if dt >= min_s or reps >= max_reps:
            return {"per_s": items * reps / dt, "calls": reps, "seconds": dt}


# ------------------------------------------------------------------------------------------------------
def step_engines(bundle, tiny: bool) -> dict[str, Any]:
    import torch

    from semiostream.bench.engines import conv_flops, matmul_peak
    from semiostream.engines.backend_torch import TorchEngine
    from semiostream.engines.registry import get_backend

    device = _device()
    spec = bundle.spec
    flops = conv_flops(bundle.i3d, spec.window, spec.size, bundle.in_channels)["flops"]
    if device == "cuda":
        names = [n for n in ("torch-cuda-fp32", "torch-cuda-fp16", "torch-cuda-bf16") if get_backend(n).available()[0]]
        batches = (1, 8, 16, 32, 64)
        gpu = torch.cuda.get_device_name(0)
        datasheet = _dense_peak(gpu)
        measured = matmul_peak("cuda", dtypes=("fp16", "bf16"))
    else:
        names, batches, gpu, datasheet = ["torch-cpu-fp32"], (1,), None, None
        measured = matmul_peak("cpu", n=512 if tiny else None, dtypes=("fp32",))
    peak_gflops = datasheet * 1e3 if datasheet else max(measured.values())
    rows, skipped = [], {}
    for name in names:
        precision = get_backend(name).precision
        for graphs in (False, True):
            try:
                engine = TorchEngine(bundle, "features", device, precision, compile=False, graphs=graphs)
            except Exception as e:  # noqa: BLE001 - reported, the other variants still run
                skipped[f"{name} graphs={graphs}"] = f"{type(e).__name__}: {e}"
                continue
            try:
                for b in batches:
                    x = torch.rand(b, bundle.in_channels, spec.window, spec.size, spec.size, device=device) * 2 - 1
                    t0 = time.perf_counter()
                    r = _rate(lambda x=x, e=engine: e.infer(x), b, device, 0.0 if tiny else 1.0, 1 if tiny else 50,
                              warm=1 if tiny else 2)
                    rows.append({"backend": name, "precision": precision, "graphs": graphs, "graphs_captured":
                                 bool(engine._graphs and any(g.captured for g in engine._graphs.graphs.values())),
                                 "batch": b, "windows_per_s": round(r["per_s"], 2),
                                 "pct_of_dense_peak": round(100 * r["per_s"] * flops / 1e9 / peak_gflops, 2),
                                 "seconds": round(time.perf_counter() - t0, 2)})
                    print(f"engines {name} graphs={graphs} batch {b}: {r['per_s']:.1f} windows/s", flush=True)
            finally:
                engine.close()
                if device == "cuda":
                    torch.cuda.empty_cache()
    return {"device": device, "gpu": gpu, "frames": spec.window, "gflop_per_window": round(flops / 1e9, 1),
            "dense_peak_tflops_datasheet": datasheet, "matmul_peak_gflops_measured": measured,
            "peak_used_gflops": peak_gflops, "rows": rows, "skipped": skipped}


def step_scorer(bundle, tiny: bool) -> dict[str, Any]:
    from semiostream.engines.scorer import Scorer
    from semiostream.engines.stack import choose_stack

    stack = choose_stack()
    device = _device()
    n, mb, (h, w) = (2, 2, (120, 160)) if tiny else (256, 32, (424, 512))
    window = ir_window(bundle.spec.window, h, w)
    windows, rois = [window] * n, [(w // 8, h // 10, w - w // 8, h - h // 20)] * n
    # on the CPU (the rehearsal) the GPU's code path: torch preprocessing, the torch engine
    backend, pre = (stack.backend, stack.preprocessing) if device == "cuda" else ("torch-cpu-fp32", "torch")
    opts = {"compile": False} if backend.startswith("torch-cpu") else None
    with Scorer(bundle, backend, preprocessing=pre, max_batch=mb, engine_options=opts) as s:
        if not tiny:
            s.warmup((mb,))
        r = _rate(lambda: s.score_windows(windows, rois), n, device, 0.0, 1 if tiny else 3, warm=1)
        timings = dict(s.timings)
    print(f"scorer {backend} + {pre}: {r['per_s']:.2f} windows/s end to end", flush=True)
    return {"stack": stack.describe(), "backend": backend, "preprocessing": pre, "windows": n,
            "max_batch": mb, "frame": [h, w], "frames": bundle.spec.window, "windows_per_s": round(r["per_s"], 2),
            "last_call": timings}


def step_live(bundle, tiny: bool) -> dict[str, Any]:
    from semiostream.bench.latency import run_point
    from semiostream.engines.scorer import Scorer
    from semiostream.engines.stack import choose_stack

    stack = choose_stack()
    device = _device()
    backend, pre = (stack.backend, stack.preprocessing) if device == "cuda" else ("torch-cpu-fp32", "torch")
    beds_list, seconds, mb, (h, w) = ((2,), 2.5, 2, (64, 80)) if tiny else ((64, 128, 256), 10.0, 64, (424, 512))
    opts = {"compile": False} if backend.startswith("torch-cpu") else None
    points = []
    with Scorer(bundle, backend, preprocessing=pre, max_batch=mb, engine_options=opts) as s:
        if not tiny:
            s.warmup((1, mb))
        for beds in beds_list:
            p = run_point(beds, scorer=s, seconds=seconds, hop=bundle.spec.window, width=w, height=h, max_batch=mb,
                          max_wait_ms=20.0, drain_s=5.0, p99_limit_ms=100.0)
            p.pop("latency_ms_all", None)
            p.pop("samples", None)
            points.append(p)
            lp = p["latency_ms"]
            print(f"live {beds} beds: p50 {lp['p50']} ms, p99 {lp['p99']} ms beyond window fill, "
                  f"{p['windows_scored']}/{p['windows_expected']} windows, backlog drops "
                  f"{p['backlog_dropped_windows']}", flush=True)
    return {"backend": backend, "preprocessing": pre, "frame": [h, w], "points": points}


def step_archive(bundle, tiny: bool, work: Path) -> dict[str, Any]:
    from semiostream.engines.preprocess_torch import TorchPreprocessor
    from semiostream.sources.readers import installed

    device = _device()
    t, (h, w) = (bundle.spec.window, (120, 160)) if tiny else (bundle.spec.window, (424, 512))
    frames = ir_window(t, h, w, seed=1)
    pre = TorchPreprocessor(bundle.spec, device)
    formats, skipped = {}, {}
    folder = work / "archive"
    folder.mkdir(parents=True, exist_ok=True)

    def measure(name: str, source) -> None:
        def one() -> None:
            pre.one(source.read(0, t), None)

        r = _rate(one, 1, device, 0.0 if tiny else 2.0, 1 if tiny else 50, warm=1)
        formats[name] = {"windows_per_s": round(r["per_s"], 2), "frames_per_s": round(r["per_s"] * t, 1)}
        print(f"archive {name}: {r['per_s']:.2f} windows/s decoded + preprocessed", flush=True)

    if installed("imagecodecs") and installed("pydicom"):
        from semiostream.sources.read_dicom import DicomSource
        from semiostream.sources.write_dicom import write_htj2k_dicom

        path = write_htj2k_dicom(folder / "window.dcm", frames, fps=30.0)
        src = DicomSource(path)
        measure("htj2k-dicom", src)
    else:
        skipped["htj2k-dicom"] = "imagecodecs / pydicom not installed"
    if installed("av"):
        from semiostream.sources.read_av import AvSource
        from semiostream.sources.writers import write_ffv1

        with AvSource(write_ffv1(folder / "window.mkv", frames, fps=30.0)) as src:
            measure("ffv1-mkv", src)
    else:
        skipped["ffv1-mkv"] = "PyAV is not installed (video formats need it)"
    np.save(folder / "window.npy", frames)
    from semiostream.sources.read_npy import NpySource

    measure("npy", NpySource(folder / "window.npy"))
    return {"frames": t, "frame": [h, w], "device": device, "formats": formats, "skipped": skipped}


# ------------------------------------------------------------------------------------------------------
def _merge(path: Path, key: str, value: Any) -> None:
    from semiostream.core.files import atomic_write

    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _wps(v: float) -> str:
    """Windows/s with the digits that matter (CPU rehearsals are below 1)."""
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def figures(data: dict[str, Any]) -> list[str]:
    """Markdown lines with the headline figures of ``measure.json`` (used by SUMMARY.md and RESULTS.md)."""
    lines = []
    eng = data.get("engines")
    if isinstance(eng, dict) and eng.get("rows"):
        peak = ("the datasheet dense fp16/bf16 peak" if eng.get("dense_peak_tflops_datasheet")
                else "the measured matmul peak")
        lines += [f"Engines ({eng.get('gpu') or eng.get('device')}, {eng['frames']}-frame windows, "
                  f"{eng['gflop_per_window']} GFLOP each; % of {peak}):",
                  "", "| backend | CUDA graphs | batch | windows/s | % of peak |", "|---|---|---|---|---|"]
        lines += [f"| {r['backend']} | {'on' if r['graphs'] else 'off'} | {r['batch']} | {_wps(r['windows_per_s'])} | "
                  f"{r['pct_of_dense_peak']:.1f} |" for r in eng["rows"]]
        lines.append("")
    sc = data.get("scorer")
    if isinstance(sc, dict) and "windows_per_s" in sc:
        lines.append(f"Scorer end to end ({sc['backend']} + {sc['preprocessing']} preprocessing, {sc['windows']} "
                     f"windows of {sc['frames']}x{sc['frame'][0]}x{sc['frame'][1]} uint16 from host memory, batch "
                     f"{sc['max_batch']}): **{_wps(sc['windows_per_s'])} windows/s**")
        lines.append("")
    live = data.get("live")
    if isinstance(live, dict) and live.get("points"):
        lines += [f"Live scorer ({live['backend']}, loopback ZeroMQ, {live['frame'][1]}x{live['frame'][0]} uint16 at "
                  "30 fps per bed):", "", "| beds | p50 ms | p99 ms | windows | backlog drops | gaps | CPU % |",
                  "|---|---|---|---|---|---|---|"]
        for p in live["points"]:
            lp = p["latency_ms"]
            lines.append(f"| {p['beds']} | {lp['p50']} | {lp['p99']} | {p['windows_scored']}/{p['windows_expected']} | "
                         f"{p['backlog_dropped_windows']} | {p['sequence_gaps']} | "
                         f"{_num(p['scorer_cpu_percent']['mean'])} |")
        lines.append("")
    arc = data.get("archive")
    if isinstance(arc, dict) and "formats" in arc:
        done = ", ".join(f"{k} {_wps(v['windows_per_s'])}" for k, v in arc["formats"].items())
        lines.append(f"Archive decode + preprocess (windows/s, one window at a time): {done}"
                     + ("; not measured: " + "; ".join(f"{k} ({v})" for k, v in arc["skipped"].items())
                        if arc.get("skipped") else ""))
        lines.append("")
    for key in STEPS:
        v = data.get(key)
        if isinstance(v, dict) and v.get("error"):
            lines.append(f"{key}: failed: {v['error']}")
    return lines


def write_summary(out_dir: Path, steps_tsv: Path, budget_s: float, mode: str) -> Path:
    """SUMMARY.md: the step table (name, limit, exit, seconds), which stacks were measured and which were not
    and why, the headline figures, and the overall verdict."""
    rows = [ln.split("\t") for ln in steps_tsv.read_text().splitlines() if ln.strip()] if steps_tsv.is_file() else []
    data = json.loads((out_dir / "measure.json").read_text()) if (out_dir / "measure.json").is_file() else {}
    import platform

    import torch

    from semiostream.bench.common import gpus
    from semiostream.engines.select import package_version
    from semiostream.engines.stack import choose_stack

    lines = ["# semiostream GPU session", "",
             f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, mode {mode}, budget {budget_s:.0f} s; "
             f"GPUs: {'; '.join(gpus()) or 'none'}; torch {torch.__version__}, Python {platform.python_version()}",
             "", "| step | limit s | exit | seconds | note |", "|---|---|---|---|---|"]
    total = 0.0
    for r in rows:
        r = (r + [""] * 5)[:5]
        lines.append("| " + " | ".join(r) + " |")
        try:
            total += float(r[3])
        except ValueError:
            pass
    lines += ["", f"steps took {total:.0f} s in all", ""]
    from semiostream.engines.stack import dali_importable

    dali = package_version("nvidia-dali-cuda130") if dali_importable() else None
    trt = next((v for d in ("tensorrt", "tensorrt-cu13") if (v := package_version(d))), None)
    lines += ["## Stacks", "", f"- chosen: {choose_stack().describe()}"]
    if dali:
        lines.append(f"- DALI {dali}: checked by the doctor's DALI checks and tests")
    else:
        lines.append("- DALI: not measured (not installed here; ~0.5 GB: about 9 transfers of 60 MiB, ~4.5 min of "
                     "the visit, with bench/gpu_parts.sh and --parts)")
    if trt:
        lines.append(f"- TensorRT {trt}: built and verified by the doctor")
    else:
        lines.append("- TensorRT: not measured (not installed here; > 1 GB: 18+ transfers, more than a visit's time)")
    lines += ["", "## Figures", ""] + (figures(data) or ["no measurements"])
    failed = [r[0] for r in rows if len(r) > 2 and r[2] not in ("0", "skipped", "budget")]
    lines += ["", f"overall: {'OK' if not failed else 'FAILED: ' + ', '.join(failed)}"]
    path = out_dir / "SUMMARY.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.gpu_visit", description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=(*STEPS, "summary"))
    ap.add_argument("--json", type=Path, help="measure.json to add this step's results to")
    ap.add_argument("--tiny", action="store_true", help="smallest sizes (the CPU rehearsal)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/semiostream-visit"), help="bundle and scratch folder")
    ap.add_argument("--out-dir", type=Path, help="summary: the report folder")
    ap.add_argument("--steps", type=Path, help="summary: the step table (tab-separated)")
    ap.add_argument("--budget-s", type=float, default=0.0, help="summary: the session's budget")
    ap.add_argument("--mode", default="gpu", help="summary: what kind of run this was")
    args = ap.parse_args(argv)
    if args.step == "summary":
        if args.out_dir is None:
            ap.error("summary needs --out-dir")
        print(write_summary(args.out_dir, args.steps or Path("/nonexistent"), args.budget_s, args.mode).read_text())
        return 0
    if args.json is None:
        ap.error(f"{args.step} needs --json")
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        bundle = visit_bundle(args.work, args.tiny)
        fn = {"engines": step_engines, "scorer": step_scorer, "live": step_live}.get(args.step)
        result = fn(bundle, args.tiny) if fn else step_archive(bundle, args.tiny, args.work)
        code = 0
    except Exception as e:  # noqa: BLE001 - the session goes on; the JSON and the exit status say it failed
        import traceback

        traceback.print_exc()
        result, code = {"error": f"{type(e).__name__}: {e}"}, 1
    result["step_seconds"] = round(time.perf_counter() - t0, 1)
    _merge(args.json, args.step, result)
    return code


if __name__ == "__main__":
    sys.exit(main())
