"""Engine benchmarks: every backend and precision over batch sizes, and a step-by-step CPU latency table.

``semiostream bench engines`` (sweep): every backend usable on this machine (``torch-cpu-fp32``,
``torch-cpu-bf16``, ``onnxruntime-cpu-fp32``; on a GPU also the CUDA, ONNX Runtime CUDA and TensorRT
ones), batch 1..N of 60-frame windows through the I3D feature engine + classifier: windows/s, ms/window,
the I3D's FLOP count (Conv3d multiply-accumulates counted from the real layer shapes for the given T,
2 FLOPs per MAC) and the achieved GFLOP/s next to this machine's measured matmul peak (the faster of
``torch.mm`` and the same product as a oneDNN 1x1 convolution, on large square matrices, fp32 and bf16,
fp16 on a GPU; measured again right after each row, which uses the
larger of the two, so that a neighbour's load during the first measurement cannot make a backend look
faster than the peak). End-to-end rows (preprocessing + engines) use the
:class:`~semiostream.engines.scorer.Scorer` as the service runs it.

``semiostream bench engines --steps``: preprocessing + I3D + classifier per 60-frame window, one
optimisation at a time, side by side (the table in bench/RESULTS.md).

Run: ``python -m semiostream.bench.engines [--steps] [--bundle DIR]``

Without ``--bundle`` a bundle is made in a temporary directory from the Kinetics-400 I3D checkpoint
(``../shared/assets/i3d-kinetics-400.ckpt`` or ``--ckpt``) and a random classifier (speed does not depend on
the classifier's weights). Input: one synthetic 16-bit IR window of 60 frames, 424x512, with a person+bed
ROI. Every variant is warmed up once, then timed ``--repeats`` times; the table shows the median and the
minimum seconds per window, and the feature cosine against the fp32 eager reference. Machine facts and the
load average (other processes skew timings on a shared machine) are recorded in the JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import common

if TYPE_CHECKING:
    import torch


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


def _bundle(path: str | None, ckpt: Path | None) -> object:
    return common.bench_bundle(path, ckpt)


def run(bundle, repeats: int = 3, quick: bool = False) -> dict:
    import torch
    import torch.nn.functional as F

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
    from semiostream.engines.registry import get_backend

    for name in ("openvino-cpu-fp32", "openvino-cpu-bf16"):
        if get_backend(name).available()[0]:
            o = get_backend(name).create(bundle, "features")
            times, y = _time(lambda o=o: o.infer(x), repeats)
            add("i3d", f"OpenVINO CPU, static window, {os.cpu_count()} threads [{name}]", times, cos=cos(y))

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


# ---------------------------------------------------------------------------------------------- peers
def reference_rgb_bundle(bundle, ckpt: Path | None, workdir: Path):
    """The published I3D as peers run it: 3-channel RGB input (the piergiaj / DeepMind model, no folded stem),
    the same Kinetics-400 weights, in a bundle so that the project's ONNX export writes its file."""
    import torch

    from semiostream.models.bundle import BundleError, load_bundle, save_bundle
    from semiostream.models.classifier import SeizureClassifier
    from semiostream.models.weights import load_i3d_checkpoint

    try:
        return load_bundle(workdir / "rgb_bundle")
    except BundleError:
        torch.manual_seed(0)
        ckpt = Path(ckpt) if ckpt else common.default_checkpoint()
        return load_bundle(save_bundle(workdir / "rgb_bundle", load_i3d_checkpoint(ckpt, in_channels=3),
                                       SeizureClassifier().eval()))


def peers(bundle, rgb_bundle, repeats: int = 3, backends: list[str] | None = None,
          progress=print) -> dict:
    """One interleaved run: semiostream end to end (uint16 window -> p(TLE), per stage) with each CPU
    backend, against the peers a CPU user would run, features only on an already preprocessed input:

    * the reference I3D (3-channel RGB, :func:`reference_rgb_bundle`) exported to ONNX and compiled by
      OpenVINO with this backend's options (2 threads, latency hint; bf16 where the CPU has it, else fp32);
    * the same I3D under torch bf16 autocast + channels-last (only where the CPU has native bf16: emulated
      bf16 takes minutes per window) and in fp32 + channels-last.

    Every round runs every variant once (rotating the order), ``repeats`` rounds, medians.
    """
    import torch

    from semiostream.engines.backend_openvino import _core, bf16_supported, compile_config
    from semiostream.engines.registry import get_backend
    from semiostream.engines.scorer import Scorer
    from semiostream.trt_build.export import onnx_from_bundle

    spec = bundle.spec
    window, roi = _ir_window(spec.window), (96, 40, 416, 400)
    backends = backends or [n for n in ("openvino-cpu-bf16", "openvino-cpu-fp32", "torch-cpu-bf16",
                                        "torch-cpu-fp32") if get_backend(n).available()[0]]
    onnx_from_bundle(bundle)
    variants: dict[str, Callable[[], dict]] = {}
    closers = []
    for name in backends:
        progress(f"{name}: creating the Scorer (compilation on first use) ...")
        sc = Scorer(bundle, name, max_batch=1)
        sc.warmup()
        closers.append(sc)

        def e2e(sc=sc) -> dict:
            t0 = time.perf_counter()
            sc.score_windows([window], [roi])
            total = time.perf_counter() - t0
            t = sc.timings
            i3d = sc.feature_engine.stats.last_s
            cls = sc.classifier_engine.stats.last_s
            return {"total_s": total, "preprocess_s": t["preprocess_s"], "i3d_s": i3d,
                    "copies_batching_s": t["features_s"] - i3d, "classifier_s": cls,
                    "classifier_call_s": t["classifier_s"],
                    "other_s": total - t["preprocess_s"] - t["features_s"] - t["classifier_s"]}
        variants[f"semiostream end to end, {name} ({sc.preprocessing} preprocessing)"] = e2e
    prec = "bf16" if bf16_supported() else "fp32"
    rgb = onnx_from_bundle(rgb_bundle)["features"]
    model = _core().read_model(str(rgb))
    model.reshape({"frames": [1, 3, spec.window, spec.size, spec.size]})
    req = _core().compile_model(model, "CPU", compile_config(prec, None, None)).create_infer_request()
    x3 = np.random.default_rng(1).uniform(-1, 1, (1, 3, spec.window, spec.size, spec.size)).astype(np.float32)

    def ov_peer() -> dict:
        t0 = time.perf_counter()
        req.infer({0: x3}, share_inputs=True)
        return {"total_s": time.perf_counter() - t0}
    variants[f"peer: reference RGB I3D, ONNX -> OpenVINO {prec}, features only"] = ov_peer
    ref = rgb_bundle.i3d.eval().to(memory_format=torch.channels_last_3d)
    xt = torch.from_numpy(x3).contiguous(memory_format=torch.channels_last_3d)

    def torch_peer(bf16: bool):
        def f() -> dict:
            t0 = time.perf_counter()
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                ref.extract_features(xt)
            return {"total_s": time.perf_counter() - t0}
        return f
    skipped = {}
    if get_backend("torch-cpu-bf16").available()[0]:
        variants["peer: reference RGB I3D, torch bf16 autocast + channels-last, features only"] = torch_peer(True)
    else:
        skipped["torch bf16 autocast peer"] = ("this CPU has no native bf16 (no AVX512-BF16/AMX): emulated bf16 "
                                               "takes minutes per window; compared in fp32 instead")
    variants["peer: reference RGB I3D, torch fp32 + channels-last, features only"] = torch_peer(False)
    for name, f in variants.items():
        progress(f"warm-up: {name}")
        f()
    samples: dict[str, list[dict]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            samples[name].append(variants[name]())
        progress(f"round {r + 1}/{repeats}: " + "; ".join(f"{n} {samples[n][-1]['total_s']:.2f} s" for n in names))
    for sc in closers:
        sc.close()
    rows = []
    for name, ss in samples.items():
        row = {"variant": name, "rounds": len(ss)}
        for k in ss[0]:
            row[k] = statistics.median(s[k] for s in ss)
        rows.append(row)
    return {"rows": rows, "skipped": skipped, "peer_precision": prec, "repeats": repeats,
            "window": [spec.window, 424, 512]}


def peer_ratios(result: dict) -> list[tuple[str, str, float]]:
    """``(semiostream variant, peer, peer median / semiostream median)``: > 1 means semiostream is faster."""
    rows = result["rows"]
    ours = [r for r in rows if r["variant"].startswith("semiostream")]
    others = [r for r in rows if r["variant"].startswith("peer")]
    return [(o["variant"], p["variant"], p["total_s"] / o["total_s"]) for o in ours for p in others]


# ---------------------------------------------------------------------------------------------- sweep
NAME = "engines"


def conv_flops(i3d: torch.nn.Module, frames: int, size: int = 224, in_channels: int = 1) -> dict:
    """FLOPs of one ``[1, in_channels, frames, size, size]`` window through ``i3d.extract_features``.

    Counted from the real layer shapes with forward hooks on every ``Conv3d``: MACs = output elements x
    (input channels / groups) x kernel volume, FLOPs = 2 x MACs (bias, BN, ReLU and pooling, well under 1%,
    are left out). One eager fp32 forward pass.
    """
    import torch
    macs: list[int] = []

    def hook(mod: torch.nn.Conv3d, _inp, out: torch.Tensor) -> None:
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.kernel_size[2]
        macs.append(out.numel() * (mod.in_channels // mod.groups) * k)

    handles = [m.register_forward_hook(hook) for m in i3d.modules() if isinstance(m, torch.nn.Conv3d)]
    try:
        with torch.inference_mode():
            i3d.extract_features(torch.zeros(1, in_channels, frames, size, size))
    finally:
        for h in handles:
            h.remove()
    return {"frames": frames, "conv3d_layers": len(macs), "macs": int(sum(macs)), "flops": 2 * int(sum(macs))}


def matmul_peak(device: str = "cpu", n: int | None = None, repeats: int = 3,
                dtypes: tuple[str, ...] | None = None, detail: dict | None = None) -> dict[str, float]:
    """Measured dense matrix-multiply throughput on ``n x n x n`` products (GFLOP/s = 2 n^3 / s, best of
    ``repeats``), per dtype (fp32, bf16 where the CPU has native bf16, fp16 on a GPU; or ``dtypes``).

    Two kernels, the faster one counts: ``torch.mm`` (BLAS; on AMD CPUs MKL may take its AVX2 path) and, on
    the CPU, the same product as a channels-last 1x1 convolution (oneDNN, which the I3D's convolutions use and
    which picks AVX-512 on any vendor). ``detail`` (a dict) receives both numbers.
    """
    import torch
    import torch.nn.functional as F

    from semiostream.engines.registry import get_backend

    dev = torch.device(device)
    n = n or (8192 if dev.type == "cuda" else 2048)
    all_dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if dev.type == "cuda":
        all_dtypes["fp16"] = torch.float16
    elif not get_backend("torch-cpu-bf16").available()[0]:
        all_dtypes.pop("bf16")  # emulated bf16 matmuls say nothing about a peak

    def best_of(fn) -> float:
        fn()
        best = float("inf")
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return 2 * n**3 / best / 1e9

    out = {}
    for name, dt in all_dtypes.items():
        if dtypes is not None and name not in dtypes:
            continue
        a = torch.randn(n, n, device=dev).to(dt)
        b = torch.randn(n, n, device=dev).to(dt)
        kernels = {"torch.mm": best_of(lambda a=a, b=b: torch.mm(a, b))}
        if dev.type == "cpu":
            side = 32 if n % 32 == 0 else 1
            x = a.t().reshape(1, n, n // side, side).contiguous(memory_format=torch.channels_last)
            w = b.reshape(n, n, 1, 1).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                kernels["conv1x1 (oneDNN)"] = best_of(lambda x=x, w=w: F.conv2d(x, w))
        out[name] = max(kernels.values())
        if detail is not None:
            detail.setdefault(device, {})[name] = kernels
    return out


def sweep(bundle, backends: list[str] | None = None, batches: tuple[int, ...] = (1, 2, 4), repeats: int = 3,
          end_to_end: bool = True, progress=None, compile: bool | None = None) -> dict:
    """Every (requested) usable backend x batch size: I3D features + classifier on ``[B, 1, T, S, S]``;
    then (``end_to_end``) the Scorer with preprocessing on real-size uint16 windows at batch 1.
    ``compile``: torch backends with/without ``torch.compile`` (None = the backend's default).

    Returns ``{"flops": ..., "peak_gflops": {device: {dtype: GFLOP/s}}, "rows": [...], "skipped": {...}}``.
    """
    import torch

    from semiostream.engines.registry import BACKENDS, available_backends, create_engine, get_backend
    from semiostream.engines.scorer import Scorer
    from semiostream.engines.select import verified_backends
    from semiostream.models.classifier import pad_features

    spec = bundle.spec
    reasons = available_backends()
    names = backends or [n for n, why in reasons.items() if not why]
    skipped = {n: why for n, why in reasons.items() if why and (backends is None or n in backends)}
    flops = conv_flops(bundle.i3d, spec.window, spec.size, bundle.in_channels)
    devices = sorted({get_backend(n).device for n in names})
    peak_detail: dict = {}
    peaks = {d: matmul_peak(d, detail=peak_detail) for d in devices}
    verified = {name: ms for name, ms in verified_backends(bundle)}
    rows: list[dict] = []
    window, roi = _ir_window(spec.window), (96, 40, 416, 400)
    for name in names:
        info = BACKENDS[name]
        if progress:
            progress(f"{name}: building engines")
        t0 = time.perf_counter()
        try:
            if name.startswith(("onnxruntime", "openvino", "tensorrt")):
                from semiostream.trt_build.export import onnx_from_bundle

                onnx_from_bundle(bundle)  # reused when up to date
            if name.startswith("tensorrt"):
                from semiostream.core.batching import ENGINE_MAX_BATCH
                from semiostream.trt_build.build import build_bundle_engines

                build_bundle_engines(bundle, info.precision, max_batch=max(ENGINE_MAX_BATCH, *batches),
                                     frames=(bundle.spec.min_frames, spec.window, spec.window))
            opts = {"compile": compile} if compile is not None and name.startswith("torch-") else {}
            feat = create_engine(name, bundle, "features", **opts)
            cls = create_engine(name, bundle, "classifier")
        except Exception as e:  # a backend that cannot build here is reported, not fatal
            skipped[name] = f"{type(e).__name__}: {e}"
            continue
        build_s = time.perf_counter() - t0
        peak_key = info.precision if info.precision in peaks[info.device] else "fp32"
        peak = peaks[info.device].get(peak_key)
        try:
            for b in batches:
                b = min(b, feat.io.dims["batch"][1])
                x = torch.zeros(b, bundle.in_channels, spec.window, spec.size, spec.size)

                def step(x=x, feat=feat, cls=cls, cuda=info.device == "cuda") -> None:
                    cls.infer(pad_features(feat.infer(x).float()).cpu())
                    if cuda:
                        torch.cuda.synchronize()

                t1 = time.perf_counter()
                step()  # warm-up: compilation, kernel selection
                first_s = time.perf_counter() - t1
                step()
                times, _ = _time(step, repeats)
                med = statistics.median(times) / b
                gflops = flops["flops"] / med / 1e9
                # the peak again, right after (a neighbour's load hits both alike); the row uses the larger
                peak = max(peak or 0.0, matmul_peak(info.device, dtypes=(peak_key,)).get(peak_key, 0.0)) or None
                rows.append({"backend": name, "device": info.device, "precision": info.precision, "batch": b,
                             "what": "i3d+classifier", "ms_per_window": 1e3 * med,
                             "min_ms_per_window": 1e3 * min(times) / b, "windows_per_s": 1 / med,
                             "achieved_gflops": gflops, "peak_gflops": peak,
                             "fraction_of_peak": gflops / peak if peak else None,
                             "first_call_s": first_s, "build_s": build_s, "verified_ms": verified.get(name)})
                if progress:
                    progress(f"{name} batch {b}: {1e3 * med:.0f} ms/window")
        finally:
            feat.close()
            cls.close()
        if end_to_end:
            with Scorer(bundle, name, max_batch=1, engine_options=opts) as s:
                s.warmup()
                times, _ = _time(lambda s=s: s.score_windows([window], [roi]), repeats)
                med = statistics.median(times)
                peak = max(peak or 0.0, matmul_peak(info.device, dtypes=(peak_key,)).get(peak_key, 0.0)) or None
                rows.append({"backend": name, "device": info.device, "precision": info.precision, "batch": 1,
                             "what": f"end to end (Scorer, {s.preprocessing} preprocessing)",
                             "ms_per_window": 1e3 * med, "min_ms_per_window": 1e3 * min(times),
                             "windows_per_s": 1 / med, "achieved_gflops": flops["flops"] / med / 1e9,
                             "peak_gflops": peak, "fraction_of_peak": flops["flops"] / med / 1e9 / peak if peak
                             else None, "verified_ms": verified.get(name)})
    return {"flops": flops, "peak_gflops": peaks, "peak_kernels_gflops": peak_detail, "rows": rows,
            "skipped": skipped}


def plot_sweep(result: dict, path: Path) -> Path:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    by: dict[str, list[dict]] = {}
    for r in result["rows"]:
        if r["what"] == "i3d+classifier":
            by.setdefault(r["backend"], []).append(r)
    for name, rs in by.items():
        ax.plot([r["batch"] for r in rs], [r["windows_per_s"] for r in rs], "o-", label=name)
    ax.set_xlabel("batch (windows per engine call)")
    ax.set_ylabel("windows / s (60 frames, I3D + classifier)")
    ax.set_title(f"engines on {result['machine']['cpu']}"
                 + (f" + {result['machine']['gpus'][0]}" if result["machine"]["gpus"] else ""), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bundle", help="model bundle directory (default: the Kinetics-400 I3D + a random classifier "
                                     "in a temporary folder)")
    ap.add_argument("--ckpt", type=Path, help="I3D weights for the temporary bundle (default: ../shared/assets "
                                              "or the `semiostream weights fetch` file)")
    ap.add_argument("--backend", action="append", dest="backends", metavar="NAME",
                    help="only this backend (repeatable; default: every backend usable here)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4], help="batch sizes (default 1 2 4)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per point (default 3; median)")
    ap.add_argument("--no-end-to-end", action="store_true", help="skip the Scorer rows with preprocessing")
    ap.add_argument("--no-compile", action="store_true", help="torch backends without torch.compile")
    ap.add_argument("--steps", action="store_true",
                    help="instead: the step-by-step CPU table (one optimisation at a time; about 3 minutes)")
    ap.add_argument("--peers", action="store_true",
                    help="instead: semiostream end to end per stage vs OpenVINO and torch running the reference "
                         "RGB I3D, interleaved rounds (--repeats of them)")
    ap.add_argument("--quick", action="store_true", help="--steps: skip the slow fp32 torch.compile variant")
    ap.add_argument("--markdown", type=Path, help="--steps: also write the table as markdown here")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT, help="folder for JSON and PNG")
    ap.add_argument("--no-plot", action="store_true", help="write no PNG")


def run_from_args(args: argparse.Namespace, command: str | None = None) -> dict:
    command = command or common.command_line()
    bundle = _bundle(args.bundle, args.ckpt)
    facts = common.machine_facts()
    if args.peers:
        import tempfile

        work = Path(args.bundle).parent if args.bundle else Path(tempfile.mkdtemp(prefix="semiostream-peers-"))
        result = peers(bundle, reference_rgb_bundle(bundle, args.ckpt, work), args.repeats, args.backends,
                       progress=lambda m: print(m, flush=True))
        result.update(benchmark="engines_peers", command=command, machine=facts, loadavg_after=list(os.getloadavg()),
                      bundle_id=bundle.bundle_id)
        stages = ("total_s", "preprocess_s", "copies_batching_s", "i3d_s", "classifier_s", "other_s")
        result["markdown"] = common.print_table(
            "60x424x512 uint16 window -> p(TLE) (semiostream) vs peers (features only), medians, s",
            ["variant", "total", "preprocess", "copies+batching", "I3D", "classifier", "other"],
            [(r["variant"], *(r.get(k) for k in stages)) for r in result["rows"]])
        result["ratios"] = peer_ratios(result)
        for ours, peer, ratio in result["ratios"]:
            print(f"{ratio:5.2f}x  {ours}  vs  {peer}")
        for what, why in result["skipped"].items():
            print(f"  not run: {what}: {why}")
        result["json"] = str(common.write_result("engines_peers", result, args.out))
        print(f"wrote {result['json']}")
        return result
    if args.steps:
        result = run(bundle, args.repeats, args.quick)
        result.update(benchmark="engines_steps", command=command, machine=machine(), machine_facts=facts,
                      load_before=facts["loadavg"][0], load_after=os.getloadavg()[0],
                      date=time.strftime("%Y-%m-%d %H:%M"), bundle_id=bundle.bundle_id)
        md = write_markdown(result, command)
        if args.markdown:
            args.markdown.write_text(md + "\n")
        result["json"] = str(common.write_result("engines_steps", result, args.out))
        print(md)
        return result
    result = sweep(bundle, args.backends, tuple(args.batches), args.repeats, not args.no_end_to_end,
                   progress=lambda m: print(m, flush=True), compile=False if args.no_compile else None)
    result.update(benchmark=NAME, command=command, machine=facts, loadavg_after=list(os.getloadavg()),
                  bundle_id=bundle.bundle_id)
    f = result["flops"]
    print(f"I3D ({f['frames']} frames, 1 channel, 224x224): {f['conv3d_layers']} Conv3d layers, "
          f"{f['macs'] / 1e9:.1f} GMAC = {f['flops'] / 1e9:.1f} GFLOP per window")
    for dev, peaks in result["peak_kernels_gflops"].items():
        print(f"measured matmul peak on {dev}: " + "; ".join(
            f"{k}: " + ", ".join(f"{kern} {v:.0f}" for kern, v in ks.items()) + " GFLOP/s" for k, ks in peaks.items()))
    rows = [(r["backend"], r["what"], r["batch"], r["ms_per_window"], r["windows_per_s"], r["achieved_gflops"],
             r["peak_gflops"], r["fraction_of_peak"]) for r in result["rows"]]
    result["markdown"] = common.print_table(
        "engines: 60-frame windows", ["backend", "what", "batch", "ms/window", "windows/s", "GFLOP/s",
                                      "matmul peak GFLOP/s", "of peak"], rows)
    for name, why in result["skipped"].items():
        print(f"  not here: {name}: {why}")
    if not args.no_plot and result["rows"]:
        result["plot"] = str(plot_sweep(result, common.plot_path(args.out, NAME, "batches")))
    result["json"] = str(common.write_result(NAME, result, args.out))
    print(f"wrote {result['json']}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.engines", description=__doc__.split("\n")[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    shown = argv if argv is not None else sys.argv[1:]
    run_from_args(args, " ".join(["python -m semiostream.bench.engines", *shown]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
