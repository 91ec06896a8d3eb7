"""``semiostream export|build|verify``: ONNX export, TensorRT engine build, cross-backend verification."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from semiostream.core.batching import ENGINE_MAX_BATCH
from semiostream.core.errors import UserError

ORDER = 40


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "export", help="export a model bundle's I3D and classifier to ONNX (with metadata)",
        description=(
            "Writes BUNDLE/onnx/i3d.onnx (input frames [batch, 1, frames, 224, 224], batch 1..64, frames "
            "9..64) and BUNDLE/onnx/classifier.onnx (input features [batch, 7, 1024]). Each file records the "
            "bundle id, preprocessing spec, labels and input ranges in its metadata. Up-to-date files are "
            "kept unless --force."),
    )
    e.add_argument("bundle", type=Path, help="model bundle directory")
    e.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17; default 18)")
    e.add_argument("--force", action="store_true", help="export again even if the files are up to date")
    e.set_defaults(handler=_export)

    b = sub.add_parser(
        "build", help="build TensorRT engines for this GPU (needs TensorRT and an NVIDIA GPU)",
        description=(
            "Builds BUNDLE/engines/<model>_b<maxbatch>_<sm>_<precision>_trt<version>.engine with a JSON "
            "sidecar, from the bundle's ONNX export (exported first when missing). A fresh engine is reused; "
            "a stale or foreign one (other bundle, GPU or TensorRT) is rebuilt. The classifier is always fp32."),
    )
    b.add_argument("bundle", type=Path, help="model bundle directory")
    b.add_argument("--precision", choices=("fp16", "bf16", "fp32"), default="fp16",
                   help="I3D engine precision (default fp16)")
    b.add_argument("--max-batch", type=int, default=ENGINE_MAX_BATCH,
                   help=f"largest batch of the profile (default {ENGINE_MAX_BATCH})")
    b.add_argument("--frames", type=_frames, default=(9, 60, 60),
                   help="I3D frames profile min,opt,max (default 9,60,60)")
    b.add_argument("--workspace-gib", type=float, help="TensorRT workspace limit in GiB")
    b.add_argument("--force", action="store_true", help="rebuild even if the engines are fresh")
    b.set_defaults(handler=_build)

    v = sub.add_parser(
        "verify", help="check every available backend against the PyTorch fp32 reference",
        description=(
            "Runs each backend available here on the same random inputs (and on real video windows with "
            "--video) and compares with the bundle's PyTorch fp32 model: fp32 backends within 1e-4 relative "
            "error, bf16/fp16 feature cosine >= 0.999, identical decisions everywhere. Results are stored "
            "next to the bundle (verified_backends.json): the scorer then picks the fastest backend that "
            "passed. Exit status 1 when a backend fails."),
    )
    v.add_argument("bundle", type=Path, help="model bundle directory")
    v.add_argument("--backend", action="append", dest="backends", metavar="NAME",
                   help="check only this backend (repeatable; default: all)")
    v.add_argument("--frames", type=int, nargs="+", help="frame counts of the random inputs (default: window)")
    v.add_argument("--batch", type=int, default=2, help="windows per batch (default 2)")
    v.add_argument("--video", type=Path, help="a video / IR recording whose first windows are added as real inputs")
    v.add_argument("--video-windows", type=int, default=2, help="how many windows of --video (default 2)")
    v.add_argument("--no-compile", action="store_true", help="torch backends without torch.compile")
    v.add_argument("--no-record", action="store_true", help="do not store the verdicts next to the bundle")
    v.add_argument("--json", type=Path, help="also write the full report as JSON here")
    v.set_defaults(handler=_verify)


def _frames(text: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give min,opt,max frames such as 9,60,60") from None
    return lo, opt, hi


def _load(path: Path):
    from semiostream.models.bundle import BundleError, load_bundle

    try:
        return load_bundle(path)
    except BundleError as e:
        raise UserError(str(e)) from e


def _export(args: argparse.Namespace) -> int:
    from semiostream.core.progress import status
    from semiostream.trt_build.export import ExportError, onnx_from_bundle

    bundle = _load(args.bundle)
    try:
        with status("Exporting I3D and classifier to ONNX ..."):
            paths = onnx_from_bundle(bundle, force=args.force, opset=args.opset)
    except ExportError as e:
        raise UserError(str(e)) from e
    for p in paths.values():
        print(p)
    return 0


def _build(args: argparse.Namespace) -> int:
    from semiostream.core.progress import status
    from semiostream.engines.trt_files import TensorRTError, gpu_facts, import_tensorrt
    from semiostream.trt_build.build import build_bundle_engines

    bundle = _load(args.bundle)
    try:
        import_tensorrt()  # the one-line reason comes before the "Building" line, not after it
        gpu_facts()
        with status(f"Building TensorRT engines ({args.precision}, max batch {args.max_batch}) ..."):
            paths = build_bundle_engines(bundle, args.precision, args.max_batch, args.frames, force=args.force,
                                         workspace_gib=args.workspace_gib)
    except TensorRTError as e:
        raise UserError(str(e)) from e
    for p in paths.values():
        print(p)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from semiostream.core.progress import status
    from semiostream.engines.base import EngineError
    from semiostream.trt_build.verify import verify_bundle

    bundle = _load(args.bundle)
    windows = None
    if args.video:
        windows = _video_windows(args.video, bundle.spec, args.video_windows)
    opts = {}
    if args.no_compile:
        opts = {n: {"compile": False} for n in ("torch-cpu-fp32", "torch-cpu-bf16", "torch-cuda-fp32",
                                                   "torch-cuda-fp16")}
    try:
        with status("Verifying backends against the PyTorch fp32 reference ..."):
            report = verify_bundle(bundle, args.backends, frames=args.frames, batch=args.batch, windows=windows,
                                   record=not args.no_record, engine_options=opts)
    except EngineError as e:
        raise UserError(str(e)) from e
    print(report.table())
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0 if report.passed else 1


def _video_windows(path: Path, spec, n: int) -> list:
    """The first ``n`` windows (``spec.window`` frames each) of a recording, as uint16 ``[T, H, W]``."""
    import numpy as np

    from semiostream.sources.readers import open_source

    try:
        src = open_source(path)
    except Exception as e:
        raise UserError(f"cannot read {path}: {e}") from e
    try:
        out = []
        for k in range(n):
            start, stop = k * spec.window, min((k + 1) * spec.window, src.num_frames)
            if stop - start < spec.min_frames:
                break
            frames = np.asarray(src.read(start, stop))
            out.append(frames.astype(np.uint16) if frames.dtype != np.uint16 else frames)
    finally:
        close = getattr(src, "close", None)
        if close:
            close()
    if not out:
        raise UserError(f"{path} has fewer than {spec.min_frames} frames; nothing to verify with")
    return out
