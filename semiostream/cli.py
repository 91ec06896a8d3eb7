"""The ``semiostream`` console command.

Each subcommand lives in one module of :mod:`semiostream.commands` (found automatically) that exposes
``register(subparsers)`` and an integer ``ORDER`` (position in ``--help``); the module adds its
parser(s) and sets ``handler`` to a function taking the parsed ``argparse.Namespace`` and returning an
exit status. Handlers import heavy libraries lazily so that ``semiostream --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from semiostream.core.errors import UserError
from semiostream.core.log import setup_logging

from . import __version__


def command_modules() -> list:
    """Every module of :mod:`semiostream.commands`, sorted by its ``ORDER``."""
    from . import commands

    mods = [importlib.import_module(f"{commands.__name__}.{m.name}")
            for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semiostream",
        description=(
            "Classify epileptic seizures as frontal-lobe (FLE) or temporal-lobe (TLE) from 16-bit "
            "infrared bed video, live for many beds or offline for archives. A second opinion for "
            "clinicians, not a diagnosis."
        ),
    )
    parser.add_argument("--version", action="version", version=f"semiostream {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in command_modules():
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except UserError as e:
        print(f"semiostream {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
