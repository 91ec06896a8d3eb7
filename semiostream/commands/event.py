"""Operator commands against a running scorer's control endpoint:

* ``semiostream event start BED`` / ``event stop BED`` (stop waits for and prints the event's summary)
  / ``event list`` (events open on the scorer);
* ``semiostream status``: beds, refusals and memory of the scorer.

They need an operator key (its ``NAME.key`` in the scorer's operators folder) wherever the scorer
uses CURVE. Exit status 0 on success, 2 with the scorer's reason (or the connection problem) otherwise.
Events recorded in the past are listed by ``semiostream events`` from the results database.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

from semiostream.core.errors import UserError

from .watch import add_control_args, client_security

ORDER = 53


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "event",
        help="start, stop or list seizure events on a running scorer",
        description=(
            "Opens and closes seizure events on a running scorer (an operator key is needed where the scorer "
            "uses CURVE). An event's p(TLE) is the mean of its windows'. `event stop` prints the event's summary "
            "once its last window is scored (read from --results, which needs a viewer key too). Exit status 0 "
            "on success, 2 with the scorer's reason otherwise."
        ),
    )
    esub = p.add_subparsers(dest="event_action", metavar="ACTION", required=True)
    start = esub.add_parser("start", help="open an event on BED")
    start.add_argument("bed", help="bed id, e.g. bed-07")
    add_control_args(start)
    start.set_defaults(handler=_start)
    stop = esub.add_parser("stop", help="close the open event on BED and print its summary")
    stop.add_argument("bed", help="bed id, e.g. bed-07")
    stop.add_argument("--results", default="tcp://127.0.0.1:5556",
                      help="scorer results endpoint, where the summary arrives ('' to not wait for it)")
    stop.add_argument("--summary-timeout", type=float, default=30.0,
                      help="seconds to wait for the summary (default 30)")
    add_control_args(stop)
    stop.set_defaults(handler=_stop)
    ls = esub.add_parser("list", help="events open on the scorer now")
    ls.add_argument("--json", action="store_true", help="print JSON")
    add_control_args(ls)
    ls.set_defaults(handler=_list)

    s = sub.add_parser(
        "status",
        help="beds, refusals and memory of a running scorer",
        description="Asks a running scorer for its status: per bed the frames, sequence gaps, age, windows "
                    "scored, crop and state (streaming, scored with no event, or its open event); the last "
                    "p(TLE) only inside an open event that has a scored window (the classifier learnt seizures "
                    "only: outside an event p(TLE) means nothing); refusals counted by reason; frame memory. "
                    "--json prints the scorer's status as it is (last_p_tle: the latest window, in an event or "
                    "not). Exit status 0, or 2 with the reason when the scorer cannot be asked.",
    )
    s.add_argument("--json", action="store_true", help="print the scorer's status as JSON")
    add_control_args(s)
    s.set_defaults(handler=_status)


def _client(args: argparse.Namespace):
    from semiostream.bus.security import SecurityError
    from semiostream.bus.watch import ControlClient

    try:
        return ControlClient(args.control, client_security(args), timeout_s=args.timeout)
    except SecurityError as e:
        raise UserError(str(e)) from None


def _ask(args: argparse.Namespace, request: str) -> dict:
    """The scorer's reply to ``request`` (``ok`` true), or :class:`UserError` with its reason."""
    client = _client(args)
    try:
        reply = client.request(request)
    finally:
        client.close()
    if not reply.get("ok"):
        raise UserError(reply.get("error") or f"the scorer refused {request!r}")
    return reply


def _start(args: argparse.Namespace) -> int:
    reply = _ask(args, f"event start {args.bed}")
    print(f"event {reply['event_id']} started on {args.bed}")
    if reply.get("warning"):
        print(f"warning: {reply['warning']}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from semiostream.bus.protocol import EventResult
    from semiostream.bus.security import SecurityError
    from semiostream.bus.watch import ResultsSubscriber

    sub = None
    if args.results:  # subscribe before stopping, so the summary cannot pass by unseen
        try:
            sub = ResultsSubscriber(args.results, client_security(args))
        except SecurityError as e:
            raise UserError(str(e)) from None
        problem = sub.wait_for_scorer(min(args.timeout, 5.0))
        if problem is not None:
            sub.close()
            sub = None
            print(f"warning: the summary cannot be received ({problem}); "
                  "`semiostream events --windows EVENT_ID` shows it later")
        else:
            time.sleep(0.2)  # the subscription travels to the scorer after the handshake
    try:
        reply = _ask(args, f"event stop {args.bed}")
        event_id = reply["event_id"]
        print(f"event {event_id} stopped on {args.bed}: {reply.get('windows_so_far', 0)} windows scored, "
              f"{reply.get('pending', 0)} still being scored")
        if reply.get("warning"):
            print(f"warning: {reply['warning']}")
        if sub is None:
            return 0
        deadline = time.monotonic() + args.summary_timeout
        while time.monotonic() < deadline:
            for r in sub.poll(200):
                if isinstance(r, EventResult) and r.event_id == event_id:
                    print(_summary(r))
                    return 0
        print(f"warning: no summary of {event_id} within {args.summary_timeout:g} s; "
              f"`semiostream events --windows {event_id}` shows it once it is recorded")
        return 0
    finally:
        if sub is not None:
            sub.close()


def _summary(r) -> str:
    p = "-" if r.p_tle is None else f"{r.p_tle:.3f}"
    seconds = (r.stop_t_ns - r.start_t_ns) / 1e9 if r.stop_t_ns else 0.0
    return (f"event {r.event_id} on {r.bed}: {r.windows} windows over {seconds:.1f} s, p(TLE)={p} -> "
            f"{r.label or 'no window scored'} (bundle {r.bundle_id})")


def _list(args: argparse.Namespace) -> int:
    status = _ask(args, "status")["status"]
    events = status.get("events", {})
    open_events = [{"bed": bed, "event_id": events.get(bed, {}).get("event_id"),
                    "start_t_ns": events.get(bed, {}).get("start_t_ns"),
                    "windows_scored": events.get(bed, {}).get("windows_so_far")}
                   for bed in status.get("open_events", [])]
    if args.json:
        print(json.dumps(open_events, indent=2))
        return 0
    if not open_events:
        print("no event is open")
        return 0
    print(f"{'bed':<20} {'event':<28} windows  started (UTC)")
    for ev in open_events:
        started = "-" if ev["start_t_ns"] is None else time.strftime(
            "%Y-%m-%d %H:%M:%S", time.gmtime(ev["start_t_ns"] / 1e9))
        print(f"{ev['bed']:<20} {ev['event_id'] or '-':<28} {ev['windows_scored'] or 0:>7}  {started}")
    return 0


def _fps(bed: dict) -> str:
    """``camera -> windows`` rate of one bed's status (``?`` while measuring, ``refused``)."""
    cam, used = bed.get("camera_fps"), bed.get("fps_used")
    if str(bed.get("rate", "")).startswith("refused"):
        return "refused"
    if cam is None:
        return "?"
    return f"{cam:.3g}" if used is None or abs(cam - used) <= 0.01 * used else f"{cam:.3g}->{used:g}"


def bed_state(name: str, bed: dict, events: dict) -> tuple[str, float | None]:
    """(state, p(TLE) to show) of one bed of the scorer's status (``events``: its ``events`` per bed).

    A p(TLE) (the bed's ``last_p_tle``, in [0, 1]) is shown only while the bed's event is open and at least one
    of that event's windows is scored, so that the latest window is one of the event's; the classifier learnt
    seizures only, so outside an event a bed shows that it streams or is scored, never a probability."""
    event = bed.get("event")
    if event is None:
        return ("scored, no event" if bed.get("windows_scored") else "streaming"), None
    ev = events.get(name) or {}
    p = bed.get("last_p_tle")
    if ev.get("event_id") != event or not ev.get("windows_so_far") or p is None:
        return f"event {event} (no window scored yet)", None
    return f"event {event}", float(p)


def _status(args: argparse.Namespace) -> int:
    status = _ask(args, "status")["status"]
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    t = Table(title=f"scorer at {args.control} (bundle {status.get('bundle_id')}) {stamp}")
    for col in ("bed", "frames", "gaps", "age s", "fps", "windows", "p(TLE)", "latency ms", "crop", "owner", "state"):
        t.add_column(col, justify="left" if col in ("bed", "crop", "owner", "state") else "right",
                     no_wrap=col in ("bed", "state"))
    events = status.get("events") or {}
    for bed, b in sorted(status.get("beds", {}).items()):
        state, p = bed_state(bed, b, events)
        lat = b.get("last_latency_ms")
        t.add_row(bed, str(b.get("frames", "-")), str(b.get("gaps", "-")),
                  f"{b.get('age_s', 0):.1f}" + (" (stale)" if b.get("stale") else ""), _fps(b),
                  str(b.get("windows_scored", "-")), "-" if p is None else f"{p:.3f}",
                  "-" if lat is None else f"{lat:.0f}", str(b.get("roi_source") or "-"),
                  str(b.get("owner") or "-"), state)
    console.print(t)
    if not status.get("beds"):
        console.print("no bed is streaming to this scorer")
    for bed, b in sorted(status.get("beds", {}).items()):  # cameras not at the bundle's rate, and why
        rate = b.get("rate") or ""
        if "resampled" in rate or rate.startswith("refused"):
            console.print(f"bed {bed}: {rate}")
    dropped = status.get("dropped") or {}
    console.print("refused: " + (", ".join(f"{k}={v}" for k, v in sorted(dropped.items())) or "nothing"))
    mem = status.get("memory") or {}
    if mem:
        console.print(f"frame memory: {mem.get('frame_bytes_held', 0) / 2**20:.1f} of "
                      f"{mem.get('frame_bytes_limit', 0) / 2**20:.0f} MiB; windows queued: "
                      f"{mem.get('queued_windows', 0)} of {mem.get('queued_windows_limit', 0)}")
    return 0
