"""``semiostream events``: list and export the events (and their windows) in a scorer's results database.

Reads the SQLite file written by the scorer (:mod:`semiostream.bus.store`) read-only, so it can run while
the scorer writes, and never creates a database.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from semiostream.core.errors import UserError
from semiostream.core.files import atomic_write

ORDER = 53

DESCRIPTION = """\
List the events (seizures) a scorer recorded in its results database: bed, start and stop times
(ISO-8601, UTC), duration, number of windows scored, mean p(TLE), label, model bundle id and state
(open: still running; stopping: stop requested, windows still being scored; closed: summary published).
For open and stopping events, windows counts the windows recorded so far and p(TLE) stays empty until
the summary is published.

The database is the scorer config's store.path (--config scorer.yaml) or any file given with --db. It is
opened read-only: listing never changes it and works while the scorer runs.

Examples:
  semiostream events --config scorer.yaml --since 2026-11-01 --bed bed-07
  semiostream events --db results.sqlite --format csv --out events.csv
  semiostream events --db results.sqlite --windows bed-07-1a2b3c4d --format json
"""

EVENT_FIELDS = ("event_id", "bed", "start", "stop", "duration_s", "windows", "p_tle", "label", "bundle_id",
                "state", "start_t_ns", "stop_t_ns")
WINDOW_FIELDS = ("event_id", "bed", "first_seq", "last_seq", "first_t", "last_t", "p_tle", "label", "bundle_id",
                 "latency_ms", "written", "first_t_ns", "last_t_ns", "written_ns")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return n


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("events", help="list / export events (and their windows) from a scorer's results database",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", type=Path, metavar="PATH", help="the results database file (SQLite)")
    src.add_argument("--config", type=Path, metavar="YAML", help="a scorer config; its store.path is read")
    p.add_argument("--bed", help="only this bed's events")
    p.add_argument("--since", metavar="WHEN",
                   help="only events that started at or after WHEN: an ISO date or time, e.g. 2026-11-29 or "
                        "2026-11-29T14:30 (UTC unless it carries an offset such as +01:00)")
    p.add_argument("--until", metavar="WHEN",
                   help="only events that started before WHEN (a date alone includes that whole day)")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="only the N most recent matching events")
    p.add_argument("--windows", metavar="EVENT_ID", help="export the windows of this event instead of the events")
    p.add_argument("--format", choices=("table", "csv", "json"),
                   help="output format (default: from the --out suffix .csv/.json, else table)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of the terminal")
    p.set_defaults(handler=_events)


# ---------------------------------------------------------------------------- arguments
def parse_when(text: str, *, end_of_day: bool = False) -> int:
    """ns since the epoch of an ISO-8601 date or time (naive = UTC). With ``end_of_day``, a date alone
    means the end of that day (the start of the next)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"{text!r} is not an ISO date or time; write e.g. 2026-11-29 or 2026-11-29T14:30 "
                        "(UTC unless it carries an offset such as +01:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end_of_day and _DATE_ONLY.fullmatch(text.strip()):
        when += timedelta(days=1)
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def database_path(args: argparse.Namespace) -> Path:
    """The database file from ``--db`` or the ``store.path`` of ``--config``."""
    if args.db is not None:
        return args.db
    from semiostream.bus.config import load_service_config

    cfg = load_service_config(args.config)
    store = getattr(cfg, "store", None)
    if store is None:
        raise UserError(f"{args.config}: this semiostream's scorer config has no store section; give the "
                        "database with --db PATH")
    if store.path is None:
        raise UserError(f"{args.config} turns the results database off (store.path: null); nothing is "
                        "recorded, so there are no events to list")
    path = Path(store.path).expanduser()
    return path if path.is_absolute() else args.config.parent / path


# ---------------------------------------------------------------------------- formatting
def iso(ns: int | None, *, ms: bool = True) -> str | None:
    """ISO-8601 UTC with a Z, to the millisecond (or the second) of ``ns`` since the epoch."""
    if ns is None:
        return None
    t = datetime.fromtimestamp(ns // 10**9, UTC) + timedelta(microseconds=(ns % 10**9) // 1000)
    return t.isoformat(timespec="milliseconds" if ms else "seconds").replace("+00:00", "Z")


def event_record(row: dict[str, Any]) -> dict[str, Any]:
    """An events row of the store as exported (``EVENT_FIELDS``)."""
    start, stop = row["start_t_ns"], row["stop_t_ns"]
    return {
        "event_id": row["event_id"], "bed": row["bed"], "start": iso(start), "stop": iso(stop),
        "duration_s": None if stop is None else round((stop - start) / 1e9, 3), "windows": row["windows"],
        "p_tle": row["p_tle"], "label": row["label"], "bundle_id": row["bundle_id"], "state": row["state"],
        "start_t_ns": start, "stop_t_ns": stop,
    }


def window_record(row: dict[str, Any]) -> dict[str, Any]:
    """A windows row of the store as exported (``WINDOW_FIELDS``)."""
    return {
        "event_id": row["event_id"], "bed": row["bed"], "first_seq": row["first_seq"], "last_seq": row["last_seq"],
        "first_t": iso(row["first_t_ns"]), "last_t": iso(row["last_t_ns"]), "p_tle": row["p_tle"],
        "label": row["label"], "bundle_id": row["bundle_id"], "latency_ms": row["latency_ms"],
        "written": iso(row["written_ns"]), "first_t_ns": row["first_t_ns"], "last_t_ns": row["last_t_ns"],
        "written_ns": row["written_ns"],
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def _cell(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], right: set[str]) -> str:
    """Plain fixed-width table (stable in pipes and files, whatever the terminal width)."""
    cells = [[_cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if c in right else v.ljust(w)
                         for c, v, w in zip(columns, vals, widths, strict=True)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def events_table(records: Sequence[dict[str, Any]]) -> str:
    columns = ("bed", "event", "start (UTC)", "stop (UTC)", "duration", "windows", "p(TLE)", "label", "bundle",
               "state")
    rows = [(r["bed"], r["event_id"], iso(r["start_t_ns"], ms=False), iso(r["stop_t_ns"], ms=False),
             _duration(r["duration_s"]), r["windows"], r["p_tle"], r["label"], r["bundle_id"], r["state"])
            for r in records]
    n = len(records)
    return text_table(columns, rows, {"duration", "windows", "p(TLE)"}) + f"\n{n} event{'s' * (n != 1)}\n"


def windows_table(records: Sequence[dict[str, Any]], event_id: str) -> str:
    columns = ("first_seq", "last_seq", "first frame (UTC)", "last frame (UTC)", "p(TLE)", "label", "latency ms")
    rows = [(r["first_seq"], r["last_seq"], r["first_t"], r["last_t"], r["p_tle"], r["label"],
             f"{r['latency_ms']:.1f}") for r in records]
    n = len(records)
    return (text_table(columns, rows, {"first_seq", "last_seq", "p(TLE)", "latency ms"})
            + f"\n{n} window{'s' * (n != 1)} of event {event_id}\n")


def to_csv(fields: Sequence[str], records: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    return buf.getvalue()


def to_json(records: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(records), indent=1) + "\n"


# ---------------------------------------------------------------------------- command
def _write_out(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file in the same folder, then renamed)."""
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: folder {folder} does not exist; create it or choose another --out")
    if path.is_dir():
        raise UserError(f"--out {path} is a folder; give a file name such as {path / 'events.csv'}")
    try:
        atomic_write(path, text)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}; choose another --out") from None


def _events(args: argparse.Namespace) -> int:
    from semiostream.bus.store import ResultStore, StoreError

    fmt = args.format or {".csv": "csv", ".json": "json"}.get(args.out.suffix.lower() if args.out else "", "table")
    since = None if args.since is None else parse_when(args.since)
    until = None if args.until is None else parse_when(args.until, end_of_day=True)
    if since is not None and until is not None and since >= until:
        raise UserError(f"--since {args.since} is not before --until {args.until}; nothing can match")
    if args.windows is not None and (args.bed or args.since or args.until or args.limit):
        raise UserError("--windows EVENT_ID exports one event's windows; drop --bed/--since/--until/--limit")
    path = database_path(args)
    try:
        with ResultStore(path, retention_days=None, readonly=True) as store:
            if args.windows is not None:
                if not store.has_event(args.windows):
                    raise UserError(f"no event {args.windows!r} in {path}; list the events with "
                                    f"`semiostream events --db {path}`")
                records = [window_record(r) for r in store.windows(args.windows)]
            else:
                records = [event_record(r) for r in store.events(args.bed, since, until, args.limit)]
    except StoreError as e:
        raise UserError(str(e)) from None
    if fmt == "csv":
        text = to_csv(WINDOW_FIELDS if args.windows else EVENT_FIELDS, records)
    elif fmt == "json":
        text = to_json(records)
    else:
        text = windows_table(records, args.windows) if args.windows else events_table(records)
    if args.out is None:
        print(text, end="")
    else:
        _write_out(args.out, text)
    return 0
