"""``semiostream keys new NAME``: CURVE key pairs for scorers and camera publishers."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError

ORDER = 60


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keys",
        help="create encryption keys for the video bus",
        description=(
            "Video of patients leaving this machine is encrypted and authenticated (ZeroMQ CURVE). "
            "Each scorer and each camera publisher has a key pair: NAME.key (public, share it) and "
            "NAME.key_secret (private). Copy each publisher's NAME.key into the scorer's allow-list "
            "folder (security.allowed_clients), and give publishers the scorer's .key."
        ),
    )
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    n = ksub.add_parser("new", help="create NAME.key and NAME.key_secret")
    n.add_argument("name", help="e.g. scorer-1 or cam-bed-07 (letters, digits, _ . -)")
    n.add_argument("--dir", type=Path, default=Path("keys"), help="folder for the key files (default ./keys)")
    n.set_defaults(handler=_new)


def _new(args: argparse.Namespace) -> int:
    from semiostream.bus.security import SecurityError, new_keypair

    try:
        public, secret = new_keypair(args.dir, args.name)
    except SecurityError as e:
        raise UserError(str(e)) from e
    print(f"public key: {public}\nsecret key: {secret}  (keep private)")
    return 0
