"""``semiostream dashboard``: a live web page of all beds of a running scorer (:mod:`semiostream.bus.dashboard`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from semiostream.core.errors import UserError

ORDER = 53

DESCRIPTION = """\
Serve one web page of every bed of a running scorer, for a nurse-station screen: windows scored, last update
and staleness, sequence gaps and drops, the open event with its elapsed time, and the closed events with their
class and links to their review reports (from --reports, served read-only). A class (label, p(TLE) and a
sparkline of the event's windows) is shown only while an event is open: the model learnt seizures only, so its
p(TLE) of a bed without an event means nothing, and such a bed shows "scored, no event".
The page updates by itself (server-sent events) and needs no external resource.

Access: by default it listens on 127.0.0.1 only. Any other --bind needs TLS (--tls-cert and --tls-key, PEM)
and a token, read from --token-file or the SEMIOSTREAM_DASHBOARD_TOKEN environment variable (never from the
command line); browsers sign in once at /login (HttpOnly cookie), scripts send "Authorization: Bearer TOKEN".

With CURVE the dashboard needs a viewer key (--key, for results) and an operator key (--operator-key, for the
scorer's status; defaults to --key, which must then be in both allow-lists) plus the scorer's --server-key.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="live web page of all beds (staleness, events with their class, reports)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="tcp://127.0.0.1:5556", help="scorer results endpoint")
    p.add_argument("--control", default="tcp://127.0.0.1:5557",
                   help="scorer control endpoint, polled for status ('' to skip)")
    p.add_argument("--reports", type=Path, metavar="DIR", help="the scorer's reports folder (served read-only)")
    p.add_argument("--bind", default="127.0.0.1:8765", metavar="HOST:PORT",
                   help="where the page is served (default 127.0.0.1:8765; port 0 = any free port)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="TLS certificate (needed off-loopback)")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="TLS private key (needed off-loopback)")
    p.add_argument("--token-file", type=Path, metavar="PATH",
                   help="file holding the access token (else SEMIOSTREAM_DASHBOARD_TOKEN; needed off-loopback)")
    p.add_argument("--status-every", type=float, default=1.0, metavar="S", help="status poll period (default 1 s)")
    p.add_argument("--seconds", type=float, help="stop after this many seconds (default: Ctrl-C)")
    g = p.add_argument_group("scorer security (CURVE)")
    g.add_argument("--key", type=Path, help="viewer key: this dashboard's NAME.key_secret (results)")
    g.add_argument("--operator-key", type=Path, help="operator NAME.key_secret for status (default: --key)")
    g.add_argument("--server-key", type=Path, help="the scorer's public .key")
    g.add_argument("--insecure", action="store_true", help="allow plaintext to a scorer on another machine")
    p.set_defaults(handler=_run)


def parse_bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UserError(f"--bind {text!r}: give HOST:PORT, e.g. 127.0.0.1:8765 or [::1]:8765")
    return host.strip("[]"), int(port)


def _run(args: argparse.Namespace) -> int:
    from semiostream.bus.dashboard import (
        BoardState,
        DashboardError,
        DashboardServer,
        ScorerFeed,
        check_access,
        read_token,
    )
    from semiostream.bus.security import ClientSecurity, SecurityError

    host, port = parse_bind(args.bind)
    if args.reports is not None and not args.reports.is_dir():
        raise UserError(f"--reports {args.reports} is not a folder; give the scorer's reports folder")
    try:
        token = read_token(args.token_file)
        ssl_context = check_access(host, args.tls_cert, args.tls_key, token)
    except DashboardError as e:
        raise UserError(str(e)) from None
    state = BoardState(args.reports)
    try:
        viewer = ClientSecurity(args.key, args.server_key, args.insecure)
        operator = ClientSecurity(args.operator_key or args.key, args.server_key, args.insecure)
        feed = ScorerFeed(state, args.results, args.control or None, viewer, operator, args.status_every)
    except SecurityError as e:
        raise UserError(str(e)) from None
    try:
        server = DashboardServer(state, host, port, ssl_context, token).start()
    except DashboardError as e:
        feed.close()
        raise UserError(str(e)) from None
    feed.start()
    print(f"dashboard: {server.url} (scorer results {args.results}); Ctrl-C to stop", flush=True)
    try:
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.close()
        feed.close()
    return 0
