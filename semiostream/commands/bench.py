"""``semiostream bench preprocess|engines|latency|bus|archive|soak``: benchmarks that print a table, write JSON
(with the machine's facts) and draw PNG plots. The code lives in :mod:`semiostream.bench`."""

from __future__ import annotations

import argparse
import importlib
import shlex

ORDER = 90

BENCHES = {
    "preprocess": ("preprocess", "DALI CPU (and GPU) vs the torch reference vs a naive numpy loop: windows/s"),
    "engines": ("engines", "every backend and precision, batch 1..N: windows/s, ms/window, GFLOP/s vs matmul peak"),
    "latency": ("latency", "real publishers + a real scorer on loopback: latency p50/p95/p99, drops, CPU, RSS "
                           "over N beds"),
    "bus": ("bus", "transport alone (no scoring): beds x 30 fps of 512x424 uint16; largest N with < 1%% loss"),
    "archive": ("archive", "windows/s of `semiostream score` on a synthetic archive, next to the engines alone"),
    "soak": ("soak", "a real scorer for minutes to hours with cameras, events, viewers, restarts and retention: "
                     "RSS, fds, threads, database size, latency over time; slopes and a verdict"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="latency / throughput benchmarks (tables, JSON, PNG plots)",
        description=(
            "Benchmarks for this machine. Each prints a table, writes <out>/<name>_<machine>.json with the machine's "
            "facts (CPU, cores, GPU, library versions, load average) and, where meaningful, PNG plots. Machines are "
            "often shared: compare numbers taken side by side in one run (each benchmark does), as ratios."),
    )
    bsub = p.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, (module, help_text) in BENCHES.items():
        mod = importlib.import_module(f"semiostream.bench.{module}")
        b = bsub.add_parser(name, help=help_text, description=mod.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(b)
        b.set_defaults(handler=_run, bench_module=module, bench_parser=b)


def command_of(args: argparse.Namespace) -> str:
    """The command line that reproduces ``args`` (options that differ from their defaults), for the JSON."""
    words = ["semiostream", "bench", args.bench]
    for action in args.bench_parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        if value == action.default:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            words.append(action.option_strings[0])
        else:
            values = value if isinstance(value, list | tuple) else [value]
            words += [action.option_strings[0], *(shlex.quote(str(v)) for v in values)]
    return " ".join(words)


def _run(args: argparse.Namespace) -> int:
    mod = importlib.import_module(f"semiostream.bench.{args.bench_module}")
    mod.run_from_args(args, command_of(args))
    return 0
