"""``semiostream doctor``: can this machine run semiostream, and how fast?

:func:`run_doctor` prints the environment (Python, torch and its CUDA, GPUs with memory and compute
capability, the driver, DALI, TensorRT, ONNX Runtime and its providers), then runs every check the
machine allows and writes ``doctor.json`` and ``doctor.md`` into the output folder:

* everywhere: the DALI graph the GPU runs, executed on the CPU, equals the plain-torch reference; DALI's
  CPU path equals it too; the ONNX export runs in ONNX Runtime and matches PyTorch; the Scorer scores
  uint16 windows end to end like the oracle (reference preprocessing -> I3D -> padded classifier);
* on a GPU: DALI GPU preprocessing = reference; ``torch-cuda-fp32`` is true fp32 (TF32 off); TensorRT
  fp16 and fp32 engines built and verified against the fp32 reference with
  identical decisions; the Scorer end to end on the GPU; GPU decoding (8-bit NVDEC video, 16-bit PNG
  frames via nvImageCodec) equals CPU decoding; quick benchmarks (engine windows/s at batch 1..64, the
  Scorer end to end, latency beyond window fill with many beds through the bus).

The environment names the stack the machine runs and why (:func:`semiostream.engines.stack.choose_stack`:
DALI or torch preprocessing, TensorRT or torch-cuda engines); the GPU Scorer check and benchmarks run that
stack, and the DALI checks are skipped where DALI is not installed.

A check that cannot run here is *skipped* with the reason (no GPU, no TensorRT ...); a check that runs
and is wrong *fails*, and the command then exits 1. ``quick`` keeps the checks and shrinks their inputs.
The model is the bundle given, else a bundle of randomly initialised weights (equivalence checks need
no trained model; the benchmarks' speed does not depend on weights).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semiostream.core.decision import positive

#: status words of a check
PASS, FAIL, SKIP = "pass", "fail", "skip"


class Skip(Exception):  # noqa: N818 - reads as "raise Skip(reason)"
    """Raised by a check that cannot run on this machine; the message is the reason."""


class CheckFailed(AssertionError):
    """Raised by a check whose result is wrong; the message says what differed."""


@dataclass
class CheckResult:
    """One check: its name, what it proves, status, seconds, measured values and the reason/message."""

    name: str
    what: str
    status: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass
class DoctorReport:
    environment: dict[str, Any]
    checks: list[CheckResult]
    quick: bool
    started_at: str
    seconds: float = 0.0

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["counts"] = {s: sum(c.status == s for c in self.checks) for s in (PASS, FAIL, SKIP)}
        return d

    def markdown(self) -> str:
        env = self.environment
        lines = ["# semiostream doctor", "",
                 f"{self.started_at}, {self.seconds:.0f} s{' (quick)' if self.quick else ''}: "
                 f"**{'OK' if self.ok else 'FAILED'}** -- " + ", ".join(
                     f"{n} {s}" for s, n in self.to_dict()["counts"].items()), "",
                 "## Environment", "", "| what | value |", "|---|---|"]
        for k, v in env.items():
            lines.append(f"| {k} | {_fmt(v)} |")
        lines += ["", "## Checks", "", "| check | status | seconds | result |", "|---|---|---|---|"]
        for c in self.checks:
            lines.append(f"| {c.name} | {c.status.upper()} | {c.seconds:.1f} | {c.message.replace('|', '/')} |")
        lines += ["", "Each check's measured values are in doctor.json."]
        return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return "; ".join(_fmt(x) for x in v) or "none"
    if isinstance(v, dict):
        return ", ".join(f"{k} {x}" for k, x in v.items())
    return "none" if v is None else str(v)


# ------------------------------------------------------------------------------------------------
# environment
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _driver() -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """What decides whether and how fast semiostream runs here (every value a plain JSON type)."""
    import torch

    from semiostream.engines.registry import available_backends
    from semiostream.engines.select import cpu_model, explain_cpu_choice

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, sm{p.major}{p.minor}")
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    trt = next((v for v in (_version(d) for d in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12")) if v), None)
    from semiostream.engines.stack import choose_stack

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": f"{cpu_model()} ({os.cpu_count()} logical cores)",
        "torch": torch.__version__,
        "torch CUDA": torch.version.cuda,
        "cuDNN": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "GPUs": gpus,
        "NVIDIA driver": _driver(),
        "DALI": _version("nvidia-dali-cuda130") or _version("nvidia-dali-cuda120"),
        "TensorRT": trt,
        "ONNX Runtime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "ONNX Runtime providers": providers,
        "onnx": _version("onnx"),
        "backends": {n: ("available" if not why else f"no: {why}") for n, why in available_backends().items()},
        "CPU backend": explain_cpu_choice(),
        "stack": choose_stack().describe(),
    }


# ------------------------------------------------------------------------------------------------
# context shared by the checks
class Context:
    """The bundle, synthetic windows and sizes every check uses (built once)."""

    def __init__(self, bundle_path: str | os.PathLike | None, quick: bool, workdir: Path) -> None:
        from semiostream.core.preprocess_spec import PreprocessSpec
        from semiostream.dali_pipes.reference import preprocess
        from semiostream.models.bundle import load_bundle

        self.quick = quick
        self.workdir = workdir
        rng = np.random.default_rng(0)
        # uint16 IR-like windows of two sizes and lengths (a leftover window among them)
        frames = (9, 16) if quick else (16, 60)
        self.windows = [_ir(frames[0], 120, 160, rng), _ir(frames[1], 424, 512, rng)]
        self.rois = [None, (40, 20, 470, 400)]
        self.frames_bench = 60
        if bundle_path is None:
            calib = [preprocess(w, r, PreprocessSpec())[None] for w, r in zip(self.windows, self.rois, strict=True)]
            bundle_path = _random_bundle(workdir / "random-bundle", calib)
            self.bundle_note = "random weights, classifier calibrated to spread p(TLE) (no --bundle given)"
        else:
            self.bundle_note = str(bundle_path)
        self.bundle = load_bundle(bundle_path)

    def oracle(self, windows, rois, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """Reference features ``[N, 7, 1024]`` and p(TLE) ``[N]``: torch reference preprocessing and the
        bundle's own modules in float32."""
        import torch

        from semiostream.dali_pipes.reference import preprocess
        from semiostream.models.classifier import pad_features

        feats = []
        with torch.inference_mode():
            for w, r in zip(windows, rois, strict=True):
                x = preprocess(w, r, self.bundle.spec)[None]  # [1, 1, T, 224, 224]
                feats.append(pad_features(self.bundle.i3d.extract_features(x))[0])
            f = torch.stack(feats)
            return f.numpy(), self.bundle.classifier(f).numpy()


def _ir(t: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 2800 + 3.0 * xx
    out = np.empty((t, h, w), np.uint16)
    for i in range(t):
        cx, cy = w * (0.5 + 0.1 * np.sin(i / 3)), h * 0.5
        body = 1500 * np.exp(-(((xx - cx) / (w * 0.18)) ** 2 + ((yy - cy) / (h * 0.3)) ** 2))
        out[i] = np.clip(base + body + rng.normal(0, 20, (h, w)), 0, 65535).astype(np.uint16)
    return out


def _random_bundle(path: Path, calibration: list[Any]) -> Path:
    """A bundle of random weights whose p(TLE) spreads over (0, 1) on ``calibration`` inputs.

    Convolutions get He-normal weights (PyTorch's default initialisation makes I3D's features vanish to
    ~1e-6 through 57 layers); the classifier's last layer is shifted and scaled so that its logits on the
    calibration windows have mean 0 and standard deviation 3, so "identical decisions" compares
    probabilities far from 0.5 rather than rounding noise.

    Args:
        calibration: ``[1, 1, T, 224, 224]`` float32 inputs in [-1, 1].
    """
    import torch
    from torch import nn

    from semiostream.models.bundle import save_bundle
    from semiostream.models.classifier import SeizureClassifier, pad_features
    from semiostream.models.i3d import InceptionI3d

    torch.manual_seed(0)
    i3d = InceptionI3d(in_channels=1).eval()
    for m in i3d.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    clf = SeizureClassifier().eval()
    seen: list[torch.Tensor] = []
    hook = clf.fc3.register_forward_hook(lambda mod, inp, out: seen.append(out.detach()))
    with torch.inference_mode():
        feats = torch.cat([pad_features(i3d.extract_features(x)) for x in calibration])
        clf(torch.cat([feats, feats.flip(-1)]))  # a few more points than windows: a usable spread
    hook.remove()
    z = torch.cat(seen).flatten()
    k = 3.0 / max(float(z.std()), 1e-6)
    with torch.no_grad():
        clf.fc3.weight.mul_(k)
        clf.fc3.bias.sub_(float(z.mean())).mul_(k)
    return save_bundle(path, i3d, clf, None, provenance={"doctor": "random weights, calibrated classifier"})


def _gpu_or_skip() -> None:
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA GPU: torch.cuda.is_available() is False")


def _dali_or_skip() -> None:
    from semiostream.engines.stack import dali_importable

    if not dali_importable():
        raise Skip("DALI is not installed (nvidia-dali-cuda130); the torch-cuda stack preprocesses without it")


def _trt_or_skip() -> None:
    import importlib.util

    _gpu_or_skip()
    if importlib.util.find_spec("tensorrt") is None:
        raise Skip("TensorRT is not installed (pip install 'semiostream[trt]')")


def _max_abs(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def _close(name: str, err: float, tol: float) -> str:
    if not err <= tol:
        raise CheckFailed(f"{name}: max abs difference {err:.2e} > {tol:g}")
    return f"max abs difference {err:.1e} <= {tol:g}"


# ------------------------------------------------------------------------------------------------
# checks (each returns (message, details) or raises Skip / CheckFailed)
def check_dali_gpu_graph_on_cpu(ctx: Context):
    """The exact DALI graph the GPU runs, executed on the CPU, equals the torch reference."""
    _dali_or_skip()
    from semiostream.dali_pipes.pipeline import DaliPreprocessor
    from semiostream.dali_pipes.reference import preprocess

    pre = DaliPreprocessor(ctx.bundle.spec, device="cpu", host_prepare=False, max_batch=2, num_threads=2)
    outs = pre(ctx.windows, ctx.rois)
    err = max(_max_abs(o, preprocess(w, r, ctx.bundle.spec)) for o, w, r in zip(outs, ctx.windows, ctx.rois,
                                                                                  strict=True))
    return _close("GPU graph on CPU vs reference", err, 1e-3), {"max_abs": err}


def check_dali_cpu(ctx: Context):
    """DALI's CPU path (host crop + DALI resize) equals the torch reference."""
    _dali_or_skip()
    from semiostream.dali_pipes.pipeline import DaliPreprocessor
    from semiostream.dali_pipes.reference import preprocess

    outs = DaliPreprocessor(ctx.bundle.spec, device="cpu", max_batch=2)(ctx.windows, ctx.rois)
    err = max(_max_abs(o, preprocess(w, r, ctx.bundle.spec)) for o, w, r in zip(outs, ctx.windows, ctx.rois,
                                                                                  strict=True))
    return _close("DALI CPU vs reference", err, 1e-3), {"max_abs": err}


def check_onnxruntime_cpu(ctx: Context):
    """The ONNX export runs in ONNX Runtime (CPU) and matches PyTorch fp32 (classifier; I3D unless quick)."""
    import torch

    from semiostream.engines.registry import create_engine
    from semiostream.trt_build.export import ensure_onnx

    roles = ("classifier",) if ctx.quick else ("classifier", "features")
    details = {}
    for role in roles:
        ensure_onnx(ctx.bundle, role)
        with create_engine("onnxruntime-cpu-fp32", ctx.bundle, role) as e:
            if role == "classifier":
                x = torch.rand(8, 7, 1024, generator=torch.Generator().manual_seed(1))
                x[:4, :3] = -1
                ref = ctx.bundle.classifier(x)
            else:
                x = torch.rand(1, 1, 9, 224, 224, generator=torch.Generator().manual_seed(1)) * 2 - 1
                ref = ctx.bundle.i3d.extract_features(x)
            with torch.inference_mode():
                y = e.infer(x)
                ref = ref.detach()
        rel = _max_abs(y, ref) / max(float(ref.abs().max()), 1e-12)
        details[f"{role}_max_rel"] = rel
        if rel > 1e-4:
            raise CheckFailed(f"ONNX Runtime {role} differs from PyTorch: relative error {rel:.2e} > 1e-4")
    return f"{', '.join(roles)}: relative error <= 1e-4", details


def _scorer_check(ctx: Context, backend: str, tol_p: float, preprocessing: str = "dali"):
    from semiostream.engines.scorer import Scorer

    _, p_ref = ctx.oracle(ctx.windows, ctx.rois)
    with Scorer(ctx.bundle, backend, preprocessing=preprocessing, max_batch=4,
                engine_options={"compile": False} if backend.startswith("torch") else None) as s:
        p = s.score_windows(ctx.windows, ctx.rois)
        dev = str(s.device)
    err = _max_abs(p, p_ref)
    same = bool(np.array_equal(positive(p), positive(p_ref)))
    details = {"backend": backend, "preprocessing": preprocessing, "device": dev, "p": p.tolist(),
               "p_reference": p_ref.tolist(), "max_abs": err}
    if not same:
        raise CheckFailed(f"{backend}: decisions differ from the oracle (p {p.round(4)} vs {p_ref.round(4)})")
    return f"{backend} on {dev}: identical decisions, " + _close("p(TLE)", err, tol_p), details


def check_scorer_cpu(ctx: Context):
    """The Scorer on the CPU: uint16 windows -> DALI (torch without it) -> torch-cpu-fp32 -> p(TLE), as the oracle."""
    from semiostream.engines.stack import dali_importable

    return _scorer_check(ctx, "torch-cpu-fp32", 1e-3, "dali" if dali_importable() else "torch")


def check_dali_gpu(ctx: Context):
    """DALI GPU preprocessing (host and device input) equals the torch reference, output stays on the GPU."""
    _gpu_or_skip()
    _dali_or_skip()
    import torch

    from semiostream.dali_pipes.pipeline import DaliPreprocessor
    from semiostream.dali_pipes.reference import preprocess

    pre = DaliPreprocessor(ctx.bundle.spec, device="cuda", max_batch=2)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        host = pre(ctx.windows, ctx.rois, stream=stream)
        dev = pre([torch.from_numpy(w).cuda() for w in ctx.windows], ctx.rois, stream=stream)
    stream.synchronize()
    if not all(o.is_cuda for o in host + dev):
        raise CheckFailed("DALI GPU output is not on the GPU")
    err = max(_max_abs(o.cpu(), preprocess(w, r, ctx.bundle.spec))
              for outs in (host, dev) for o, w, r in zip(outs, ctx.windows, ctx.rois, strict=True))
    return _close("DALI GPU vs reference", err, 1e-3), {"max_abs": err}


def check_engines_gpu(ctx: Context):
    """torch-cuda-fp32 is true fp32; TensorRT engines are built and verified against the fp32 reference."""
    _gpu_or_skip()
    import torch

    from semiostream.engines.registry import get_backend
    from semiostream.trt_build.verify import verify_bundle

    names = ["torch-cuda-fp32", "torch-cuda-fp16"] + (
        ["torch-cuda-bf16"] if get_backend("torch-cuda-bf16").available()[0] else [])
    built = {}
    try:
        _trt_or_skip()
        from semiostream.trt_build.build import build_bundle_engines

        # fp16 (the default engine) and fp32; bf16 is built and checked by the `trt` tests (tests/trt_build)
        for precision in ("fp16", "fp32"):
            if get_backend(f"tensorrt-{precision}").available()[0]:
                t0 = time.perf_counter()
                # the fp16 engine is the one benchmarked (batch up to 64); fp32 is only verified
                mb = 64 if precision == "fp16" and not ctx.quick else 8
                build_bundle_engines(ctx.bundle, precision, max_batch=mb)
                built[precision] = round(time.perf_counter() - t0, 1)
                names.append(f"tensorrt-{precision}")
    except Skip as e:
        built["skipped"] = str(e)
    frames = (16,) if ctx.quick else (ctx.frames_bench, 16)
    report = verify_bundle(ctx.bundle, names, frames=frames, batch=2, windows=ctx.windows, rois=ctx.rois,
                           n_random_features=64, engine_options={"torch-cuda-fp32": {"compile": False},
                                                                 "torch-cuda-fp16": {"compile": False}})
    details = {"build_seconds": built, "table": report.table(), "results": report.to_dict()["results"],
               "tf32_default_cudnn": torch.backends.cudnn.allow_tf32}
    bad = [r for r in report.results if r.available and not r.passed]
    if bad:
        raise CheckFailed("; ".join(f"{r.backend}: {'; '.join(r.failures)}" for r in bad))
    ran = [r.backend for r in report.results if r.available]
    return f"verified against fp32 with identical decisions: {', '.join(ran)}", details


def check_scorer_gpu(ctx: Context):
    """The Scorer end to end on the GPU (uint16 windows -> the chosen stack's preprocessing and engine -> p(TLE))."""
    _gpu_or_skip()
    from semiostream.engines.stack import choose_stack

    stack = choose_stack()
    return _scorer_check(ctx, stack.backend, 5e-2, stack.preprocessing)


def check_gpu_decoding(ctx: Context):
    """GPU decoders equal the CPU ones: 16-bit PNG frames (bit exact) and 8-bit video via NVDEC."""
    _gpu_or_skip()
    _dali_or_skip()
    from semiostream.sources.read_images import ImageFolderSource
    from semiostream.sources.writers import write_image_folder

    folder = write_image_folder(ctx.workdir / "png16", ctx.windows[0][:9])
    cpu = ImageFolderSource(folder, device="cpu").read(0, 9)
    gpu_src = ImageFolderSource(folder, device="cuda")
    gpu = gpu_src.read(0, 9)
    on_dev = gpu_src.read_torch(0, 9)
    if not np.array_equal(cpu, gpu) or not on_dev.is_cuda:
        raise CheckFailed("16-bit PNG: GPU decoding differs from CPU decoding")
    details: dict[str, Any] = {"png16_bit_exact": True}
    video = _write_8bit_video(ctx.workdir / "clip.mp4", ctx.windows[0])
    from semiostream.sources.read_av import AvSource
    from semiostream.sources.read_video_gpu import GpuVideoSource

    with AvSource(video) as a, GpuVideoSource(video) as g:
        n = a.num_frames
        ref, got = a.read(0, n), g.read(0, n)
        part = g.read(2, min(n, 7))
    err = _max_abs(got, ref)
    details.update({"video_frames": n, "video_max_abs_grey_levels": err})
    if err > 6 or not np.array_equal(part, got[2:min(n, 7)]):
        raise CheckFailed(f"8-bit video: NVDEC frames differ from PyAV's by {err} grey levels (> 6)")
    return f"PNG16 bit exact; NVDEC 8-bit within {err:.0f} grey levels of PyAV", details


def _write_8bit_video(path: Path, frames16: np.ndarray) -> Path:
    import av

    u8 = (frames16.astype(np.float32) / max(float(frames16.max()), 1.0) * 255).astype(np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264" if "libx264" in av.codecs_available else "h264", rate=30)
        s.width, s.height, s.pix_fmt = u8.shape[2], u8.shape[1], "yuv420p"
        for f in u8:
            for p in s.encode(av.VideoFrame.from_ndarray(np.repeat(f[..., None], 3, -1), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def check_benchmarks_gpu(ctx: Context):
    """Engine windows/s at batch 1..64, the Scorer end to end, latency beyond window fill with many beds."""
    _gpu_or_skip()
    import torch

    from semiostream.engines.registry import create_engine
    from semiostream.engines.scorer import Scorer
    from semiostream.engines.stack import choose_stack

    stack = choose_stack()
    backend = stack.backend
    t = ctx.frames_bench
    batches = (1, 8) if ctx.quick else (1, 8, 16, 32, 64)
    engine_rate = {}
    with create_engine(backend, ctx.bundle, "features") as e:
        for b in batches:
            b = min(b, e.io.dims["batch"][1])
            x = torch.rand(b, 1, t, 224, 224, device="cuda") * 2 - 1
            for _ in range(2):
                e.infer(x)
            torch.cuda.synchronize()
            reps = 3 if ctx.quick else 10
            t0 = time.perf_counter()
            for _ in range(reps):
                e.infer(x)
            torch.cuda.synchronize()
            engine_rate[b] = round(b * reps / (time.perf_counter() - t0), 1)
    details: dict[str, Any] = {"backend": backend, "frames": t, "engine_windows_per_s": engine_rate}
    n = 16 if ctx.quick else 128
    mb = 16 if ctx.quick else 64
    rng = np.random.default_rng(1)
    windows = [_ir(t, 424, 512, rng)] * n
    with Scorer(ctx.bundle, backend, preprocessing=stack.preprocessing, max_batch=mb) as s:
        s.score_windows(windows[:mb])
        t0 = time.perf_counter()
        s.score_windows(windows)
        details["scorer_windows_per_s"] = round(n / (time.perf_counter() - t0), 1)
        if not ctx.quick:
            from semiostream.bench.latency import run_point

            point = run_point(64, scorer=s, seconds=10.0, max_batch=mb, drain_s=5.0, p99_limit_ms=100.0)
            details["latency_64_beds_ms"] = point["latency_ms"]
            details["latency_64_beds_realtime"] = point["realtime"]
    best = max(engine_rate.values())
    msg = (f"{backend}: engine {best:.0f} windows/s (T={t}), Scorer {details['scorer_windows_per_s']:.0f} "
           "windows/s end to end")
    if "latency_64_beds_ms" in details:
        msg += f", 64 beds p99 {details['latency_64_beds_ms'].get('p99')} ms"
    return msg, details


#: (name, function, needs a GPU) in the order they run
CHECKS: list[tuple[str, Callable[[Context], tuple[str, dict]]]] = [
    ("dali-gpu-graph-on-cpu", check_dali_gpu_graph_on_cpu),
    ("dali-cpu", check_dali_cpu),
    ("onnxruntime-cpu", check_onnxruntime_cpu),
    ("scorer-cpu", check_scorer_cpu),
    ("dali-gpu", check_dali_gpu),
    ("engines-gpu", check_engines_gpu),
    ("scorer-gpu", check_scorer_gpu),
    ("gpu-decoding", check_gpu_decoding),
    ("benchmarks-gpu", check_benchmarks_gpu),
]


def run_doctor(out_dir: str | os.PathLike, bundle: str | os.PathLike | None = None, quick: bool = False,
               only: list[str] | None = None, progress: Callable[[str], None] = print) -> DoctorReport:
    """Print the environment, run the checks, write ``doctor.json`` / ``doctor.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    env = environment()
    progress("environment")
    for k, v in env.items():
        progress(f"  {k:<24} {_fmt(v)}")
    checks: list[CheckResult] = []
    with tempfile.TemporaryDirectory(prefix="semiostream-doctor-") as tmp:
        ctx = None
        for name, fn in CHECKS:
            if only and name not in only:
                continue
            what = (fn.__doc__ or "").strip().splitlines()[0]
            t0 = time.perf_counter()
            try:
                if ctx is None:
                    ctx = Context(bundle, quick, Path(tmp))
                    env["model"] = ctx.bundle_note
                    from semiostream.engines.select import explain_cpu_choice

                    env["CPU backend"] = explain_cpu_choice(ctx.bundle)  # for this bundle: verdicts decide
                    progress(f"  {'CPU backend':<24} {env['CPU backend']}")
                msg, details = fn(ctx)
                res = CheckResult(name, what, PASS, 0.0, details, msg)
            except Skip as e:
                res = CheckResult(name, what, SKIP, 0.0, {}, f"skipped: {e}")
            except CheckFailed as e:
                res = CheckResult(name, what, FAIL, 0.0, {}, str(e))
            except Exception as e:  # a crash in a check is a failed check, with its traceback in the JSON
                res = CheckResult(name, what, FAIL, 0.0, {"traceback": traceback.format_exc()},
                                  f"{type(e).__name__}: {e}")
            res.seconds = round(time.perf_counter() - t0, 2)
            checks.append(res)
            progress(f"{res.status.upper():<5} {name:<24} {res.seconds:6.1f} s  {res.message}")
    report = DoctorReport(env, checks, quick, started, round(time.perf_counter() - t_start, 1))
    (out / "doctor.json").write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    (out / "doctor.md").write_text(report.markdown())
    skipped = [c.name for c in checks if c.status == SKIP]
    if skipped:
        progress(f"skipped (this machine cannot run them): {', '.join(skipped)}")
    progress(f"{'OK' if report.ok else 'FAILED: ' + ', '.join(c.name for c in report.failed)}; "
             f"report: {out / 'doctor.md'}, {out / 'doctor.json'}")
    return report
