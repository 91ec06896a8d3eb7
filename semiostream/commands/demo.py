"""``semiostream demo``: the main job on an embedded default, on synthetic data."""

from __future__ import annotations

import argparse
from pathlib import Path

ORDER = 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole system on SYNTHETIC data in a few minutes (start here)",
        description=(
            "Gets the pretrained I3D weights (or says why not and falls back, loudly), synthesises a small "
            "cohort of SYNTHETIC FLE-like and TLE-like bed videos (not patient data), trains a small "
            "classifier bundle with patient-grouped cross-validation (reused next time), then starts a "
            "scorer and three synthetic bed cameras on this machine, opens and closes an event on two "
            "beds, shows the live table, and prints per-event results and latencies."
        ),
    )
    p.add_argument("--workdir", type=Path, default=None,
                   help="where demo data and the bundle go (default: <semiostream cache>/demo)")
    p.add_argument("--seconds", type=float, default=40.0, help="length of the live part (default 40)")
    p.add_argument("--backend", default=None, help="engine backend (default: fastest verified here)")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from semiostream.demo import DemoSettings, run_demo
    from semiostream.models.fetch import cache_dir

    workdir = args.workdir or cache_dir() / "demo"
    return run_demo(DemoSettings(workdir=workdir, live_seconds=args.seconds, backend=args.backend))
