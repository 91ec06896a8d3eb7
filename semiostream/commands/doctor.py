"""``semiostream doctor``: can this machine run semiostream, and how fast (a report, JSON + markdown)."""

from __future__ import annotations

import argparse
from pathlib import Path

from semiostream.core.errors import UserError

ORDER = 95


def register(sub: argparse._SubParsersAction) -> None:
    from semiostream.doctor import CHECKS

    d = sub.add_parser(
        "doctor", help="check this machine: environment, CPU and GPU checks, quick benchmarks (JSON + markdown)",
        description=(
            "Prints the environment (Python, torch and CUDA, GPUs and their memory, driver, DALI, TensorRT, ONNX "
            "Runtime), then runs every check this machine allows: DALI preprocessing (the GPU graph too, run on "
            "the CPU) against the torch reference, the ONNX export in ONNX Runtime, the Scorer end to end; on a "
            "GPU also DALI GPU preprocessing, TensorRT fp16/fp32 engines built and verified against fp32, the "
            "Scorer on the GPU, GPU decoding and quick benchmarks. Checks this machine cannot run are skipped "
            "with the reason. Writes OUT/doctor.json and OUT/doctor.md. Exit status 1 when a check fails."),
    )
    d.add_argument("--out", type=Path, default=Path("doctor-report"), help="report folder (default ./doctor-report)")
    d.add_argument("--bundle", type=Path, help="model bundle to check with (default: random weights)")
    d.add_argument("--quick", action="store_true", help="smaller inputs and fewer benchmark points (GPU: < 3 min)")
    d.add_argument("--check", action="append", dest="checks", metavar="NAME", choices=[n for n, _ in CHECKS],
                   help=f"run only this check (repeatable): {', '.join(n for n, _ in CHECKS)}")
    d.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from semiostream.doctor import run_doctor

    if args.bundle is not None and not (args.bundle / "bundle.json").is_file():
        raise UserError(f"{args.bundle} is not a model bundle (no bundle.json); pass a bundle directory or "
                        "leave out --bundle to check with random weights")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the report folder {args.out}: {e.strerror}") from None
    report = run_doctor(args.out, bundle=args.bundle, quick=args.quick, only=args.checks)
    return 0 if report.ok else 1
