"""``semiostream watch``: a live table of results per bed; the client options shared by every command
that talks to a running scorer (``publish``, ``watch``, ``event``, ``status``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from semiostream.core.errors import UserError

ORDER = 52


def add_client_security_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("security (needed for endpoints on other machines)")
    g.add_argument("--key", type=Path, help="this client's NAME.key_secret")
    g.add_argument("--server-key", type=Path, help="the scorer's public .key")
    g.add_argument("--insecure", action="store_true", help="allow plaintext to a non-local endpoint")


def client_security(args: argparse.Namespace):
    from semiostream.bus.security import ClientSecurity

    return ClientSecurity(args.key, args.server_key, args.insecure)


def add_control_args(p: argparse.ArgumentParser) -> None:
    """``--control`` and the key options of an operator command."""
    p.add_argument("--control", default="tcp://127.0.0.1:5557", help="scorer control endpoint (tcp://HOST:PORT)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the scorer's reply (default 5)")
    add_client_security_args(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "watch",
        help="show a live table of the beds of a running scorer (a class only during an event)",
        description="Subscribes to a scorer's results and shows, per bed, its state (streaming, scored, "
                    "event open), windows scored, latency, staleness and sequence gaps; during an open event "
                    "also the latest window's p(TLE) and label (outside events none: the model learnt seizures "
                    "only, so its p(TLE) of a quiet bed means nothing); event summaries are printed when events "
                    "close. "
                    "Exits with status 2 within --connect-timeout seconds when no scorer listens at --results "
                    "or the scorer refuses this key (a viewer key: its NAME.key in the scorer's viewers "
                    "folder); while the table is empty, its caption says why.",
    )
    p.add_argument("--results", default="tcp://127.0.0.1:5556", help="scorer results endpoint")
    p.add_argument("--control", default="tcp://127.0.0.1:5557",
                   help="scorer control endpoint, for staleness and drop counts ('' to skip)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    p.add_argument("--connect-timeout", type=float, default=5.0,
                   help="seconds to wait for the scorer to accept this viewer (default 5)")
    add_client_security_args(p)
    p.set_defaults(handler=_watch)


def _watch(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from semiostream.bus.security import SecurityError
    from semiostream.bus.watch import ControlClient, LiveTable, ResultsSubscriber

    try:
        sec = client_security(args)
        sub = ResultsSubscriber(args.results, sec)
        ctl = ControlClient(args.control, sec, timeout_s=1.0) if args.control else None
    except SecurityError as e:
        raise UserError(str(e)) from e
    problem = sub.wait_for_scorer(args.connect_timeout)
    if problem is not None:
        sub.close()
        if ctl is not None:
            ctl.close()
        raise UserError(problem)
    table, console = LiveTable(), Console()
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    last_status = 0.0
    status_problem = None
    shown_events = 0
    try:
        with Live(table.render(), console=console, refresh_per_second=4) as live:
            while deadline is None or time.monotonic() < deadline:
                table.update(sub.poll(200))
                if ctl is not None and time.monotonic() - last_status > 1.0:
                    reply = ctl.status()
                    table.status = reply.get("status", {}) if reply.get("ok") else {}
                    status_problem = None if reply.get("ok") else reply.get("error", "no reply")
                    last_status = time.monotonic()
                table.explain(sub.connection.problem(), status_problem, args.results, status_asked=ctl is not None)
                for ev in table.events[shown_events:]:
                    live.console.print(f"event {ev.event_id} on {ev.bed}: {ev.windows} windows, "
                                       f"p(TLE)={ev.p_tle if ev.p_tle is None else round(ev.p_tle, 3)} "
                                       f"-> {ev.label}")
                shown_events = len(table.events)
                live.update(table.render())
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
        if ctl is not None:
            ctl.close()
    return 0
