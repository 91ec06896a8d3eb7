"""``semiostream keys new NAME`` / ``keys show FILE``: CURVE key pairs for scorers, cameras, viewers and
operators, and the fingerprint a scorer logs when it refuses a key."""

from __future__ import annotations

import argparse
from pathlib import Path

from semiostream.core.errors import UserError

ORDER = 60


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "keys",
        help="create encryption keys for the video bus",
        description=(
            "Video of patients leaving this machine is encrypted and authenticated (ZeroMQ CURVE). "
            "The scorer and every client have a key pair: NAME.key (public, share it) and NAME.key_secret "
            "(private, stays on its machine). Copy each client's NAME.key into the scorer's folder for its "
            "role: cameras (security.cameras: publish frames; bind beds to it with `camera: NAME`), viewers "
            "(security.viewers: `watch`, results) or operators (security.operators: `event`, `status`). "
            "Give every client the scorer's public .key (--server-key)."
        ),
    )
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    n = ksub.add_parser("new", help="create NAME.key and NAME.key_secret")
    n.add_argument("name", help="e.g. scorer-1 or cam-bed-07 (letters, digits, _ . -)")
    n.add_argument("--dir", type=Path, default=Path("keys"), help="folder for the key files (default ./keys)")
    n.set_defaults(handler=_new)
    s = ksub.add_parser("show", help="print the fingerprint of a key file (as the scorer logs it)")
    s.add_argument("file", type=Path, help="NAME.key or NAME.key_secret")
    s.set_defaults(handler=_show)


def _new(args: argparse.Namespace) -> int:
    from semiostream.bus.security import SecurityError, new_keypair

    try:
        public, secret = new_keypair(args.dir, args.name)
    except SecurityError as e:
        raise UserError(str(e)) from e
    print(f"public key: {public}\nsecret key: {secret}  (keep private)")
    return 0


def _show(args: argparse.Namespace) -> int:
    import zmq.auth

    from semiostream.bus.roles import fingerprint

    try:
        public, secret = zmq.auth.load_certificate(args.file)
    except (OSError, ValueError) as e:
        raise UserError(f"{args.file} is not a ZeroMQ key file ({e}); "
                        "create one with `semiostream keys new NAME`") from None
    kind = "secret and public" if secret else "public"
    print(f"{args.file}: {kind} key, fingerprint {fingerprint(public)}")
    return 0
