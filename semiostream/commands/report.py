"""``semiostream report RUN``: redraw a training run's plots and summary, and print the summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from semiostream.core.errors import UserError

ORDER = 42


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="print a training run's summary and (re)draw its plots",
        description=(
            "Reads report.json and predictions.csv of a run directory written by `semiostream train`, draws "
            "confusion matrices, ROC curves and training curves as PNG, writes summary.md and prints it."
        ),
    )
    p.add_argument("run", type=Path, help="the run directory (the --out of `semiostream train`)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from semiostream.trainer.report import ReportError, render

    try:
        paths = render(args.run)
    except ReportError as e:
        raise UserError(str(e)) from e
    print((args.run / "summary.md").read_text())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
