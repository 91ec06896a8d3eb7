"""Size and query times of a results database that holds a month of a whole unit.

Generates a SYNTHETIC results database (the real schema, made by :class:`~semiostream.bus.store.ResultStore`)
of ``--beds`` beds x ``--days`` days with one window every ``--hop-s`` seconds per bed (the default 64 beds x
30 days x 2 s = 82.9 M windows) and ``--events-per-day`` closed events per bed of ``--event-minutes`` each
(their windows carry the event id), with bed ids, bundle ids and labels of real lengths. Windows are
generated inside SQLite (a recursive CTE, one transaction per day) and the indexes are built once at the
end, so the generator is I/O bound. It then reports:

* bytes per window and per bed-day (file size / rows, indexes included);
* the time of each query the tools run on such a file, through the real code paths (a read-only
  :class:`ResultStore`, as ``semiostream events`` opens it): every event, one bed's last week, the 20
  most recent events, one event's windows, the unfinished events a restarting scorer restores, and the
  retention pass of one hour (the scorer's hourly prune, on the oldest hour: one 5,000-window slice and
  the whole hour) with its reclaim;
* ``semiostream events`` end to end (a subprocess, Python start-up included).

    python -m semiostream.bench.results_db --db /tmp/month.sqlite            # generate, then time
    python -m semiostream.bench.results_db --db /tmp/month.sqlite --reuse    # time an existing file

Prints one JSON object (and writes it with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from semiostream.bus.store import NS_PER_DAY, ResultStore

T0_NS = 1_780_000_000 * 10**9  # 2026-05-28: any fixed start; the month ends well before "now"
BUNDLE_ID = "i3d-k400-3f9c2a1b7e5d"  # 20 characters, as a real bundle id
_WINDOW_INDEXES = ("windows_event", "windows_written")


def _bed(i: int) -> str:
    return f"ward-b-bed-{i:02d}"


def generate(path: Path, beds: int = 64, days: int = 30, hop_s: float = 2.0, events_per_day: int = 3,
             event_minutes: float = 2.0, progress=print) -> dict:
    """Write the synthetic database at ``path`` (replaced); returns its counts and the time taken."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    t = time.perf_counter()
    with ResultStore(path, retention_days=None) as store:  # the real schema, pragmas and auto-vacuum
        c = store.conn
        saved = {name: sql for name, sql in c.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'windows'")}
        for name in _WINDOW_INDEXES:
            c.execute(f"DROP INDEX {name}")
        hop_ns = int(hop_s * 1e9)
        per_day = int(86_400 / hop_s)
        window_ns = 2 * 10**9
        c.execute("CREATE TEMP TABLE beds (bed TEXT, k INTEGER)")
        c.executemany("INSERT INTO beds VALUES (?, ?)", [(_bed(i), i) for i in range(beds)])
        for day in range(days):
            c.execute("BEGIN")
            c.execute(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :last) "
                "INSERT INTO windows (bed, first_seq, last_seq, first_t_ns, last_t_ns, p_tle, label, bundle_id, "
                "latency_ms, event_id, written_ns) "
                "SELECT bed, (:day * :per_day + i) * 60, (:day * :per_day + i) * 60 + 59, "
                ":t0 + (:day * :per_day + i) * :hop, :t0 + (:day * :per_day + i) * :hop + :win, "
                "(abs(random()) % 1000000) / 1e6, CASE WHEN abs(random()) % 2 THEN 'TLE' ELSE 'FLE' END, :bundle, "
                "150 + (abs(random()) % 300000) / 1000.0, NULL, :t0 + (:day * :per_day + i) * :hop + :win + 200000000 "
                "FROM n, beds",
                {"last": per_day - 1, "day": day, "per_day": per_day, "t0": T0_NS, "hop": hop_ns, "win": window_ns,
                 "bundle": BUNDLE_ID})
            events, ev_windows = [], []
            for b in range(beds):
                for e in range(events_per_day):
                    start = T0_NS + day * NS_PER_DAY + (e * 8 + 1 + b % 7) * 3600 * 10**9
                    stop = start + int(event_minutes * 60e9)
                    eid = f"{_bed(b)}-{day:03d}{e:02d}{b:04x}"
                    n = max(1, int(event_minutes * 60 / hop_s))
                    events.append((eid, _bed(b), start, stop, "closed", n, 0.71, "TLE", BUNDLE_ID, start, stop + 10**9))
                    ev_windows += [(_bed(b), k * 60, k * 60 + 59, start + k * hop_ns, start + k * hop_ns + window_ns,
                                    0.7, "TLE", BUNDLE_ID, 210.0, eid, start + k * hop_ns + window_ns + 2 * 10**8)
                                   for k in range(n)]
            c.executemany("INSERT INTO events (event_id, bed, start_t_ns, stop_t_ns, state, windows, p_tle, label, "
                          "bundle_id, opened_ns, closed_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
            c.executemany("INSERT INTO windows (bed, first_seq, last_seq, first_t_ns, last_t_ns, p_tle, label, "
                          "bundle_id, latency_ms, event_id, written_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          ev_windows)
            c.execute("COMMIT")
            if day % 5 == 4 or day == days - 1:
                progress(f"  day {day + 1}/{days}: {time.perf_counter() - t:.0f} s")
        for name in _WINDOW_INDEXES:
            c.execute(saved[name])
        # one event still open at the end of the month, as a running scorer leaves it
        store.open_event(_bed(0), "ward-b-bed-00-open", T0_NS + days * NS_PER_DAY - 60 * 10**9)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"generate_s": time.perf_counter() - t}


def _timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3, out


def measure(path: Path, days: int, beds: int) -> dict:
    """Sizes and query times of the database at ``path`` (see the module docstring)."""
    size = path.stat().st_size
    with ResultStore(path, retention_days=None, readonly=True) as store:
        (windows,) = store.conn.execute("SELECT count(*) FROM windows").fetchone()
        (events,) = store.conn.execute("SELECT count(*) FROM events").fetchone()
        end = T0_NS + days * NS_PER_DAY
        q = {}
        q["all_events_ms"], rows = _timed(lambda: store.events())
        q["one_bed_last_week_ms"], _ = _timed(lambda: store.events(_bed(5), end - 7 * NS_PER_DAY, None))
        q["last_20_events_ms"], _ = _timed(lambda: store.events(limit=20))
        eid = rows[len(rows) // 2]["event_id"]
        q["one_event_windows_ms"], wins = _timed(lambda: store.windows(eid))
        q["unfinished_events_ms"], _ = _timed(store.unfinished_events)
        q["has_event_ms"], _ = _timed(lambda: store.has_event(eid))
    cli = [sys.executable, "-c", "from semiostream.cli import main; raise SystemExit(main())", "events", "--db",
           str(path)]
    q["cli_events_all_s"], _ = _timed(lambda: subprocess.run(cli, capture_output=True, check=True), repeat=1)
    q["cli_events_all_s"] /= 1e3
    q["cli_event_windows_s"], _ = _timed(
        lambda: subprocess.run([*cli, "--windows", eid], capture_output=True, check=True), repeat=1)
    q["cli_event_windows_s"] /= 1e3
    with ResultStore(path, retention_days=days - 1 / 24) as store:  # the oldest hour expires: one hourly pass
        (oldest,) = store.conn.execute("SELECT min(written_ns) FROM windows").fetchone()
        end = oldest + days * NS_PER_DAY  # cutoff = the oldest window + 1 h
        t = time.perf_counter()
        pruned = store.prune(now_ns=end, limit=5000)  # one slice, as the scorer runs it between turns
        q["prune_one_slice_ms"] = (time.perf_counter() - t) * 1e3
        while True:
            n = store.prune(now_ns=end, limit=5000)
            pruned += n
            if n < 5000:
                break
        q["prune_one_hour_ms"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        reclaimed = store.reclaim(8192)  # the scorer's bound per pass
        q["reclaim_ms"] = (time.perf_counter() - t) * 1e3
    return {"file_bytes": size, "windows": windows, "events": events, "bytes_per_window": size / windows,
            "bytes_per_bed_day": size / (beds * days), "gib": size / 2**30, "event_rows_listed": len(rows),
            "windows_of_one_event": len(wins), "pruned_rows_one_hour": pruned, "reclaim": reclaimed,
            "queries": q}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.results_db", description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True, help="database file to generate (replaced) and time")
    ap.add_argument("--reuse", action="store_true", help="time an existing file; do not generate")
    ap.add_argument("--beds", type=int, default=64)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--hop-s", type=float, default=2.0, help="seconds between windows of one bed (default 2)")
    ap.add_argument("--events-per-day", type=int, default=3, help="closed events per bed and day (default 3)")
    ap.add_argument("--event-minutes", type=float, default=2.0)
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args(argv)
    out = {"command": "python -m semiostream.bench.results_db " + " ".join(argv or sys.argv[1:]),
           "beds": args.beds, "days": args.days, "hop_s": args.hop_s, "loadavg_before": list(os.getloadavg())}
    if not args.reuse:
        out.update(generate(args.db, args.beds, args.days, args.hop_s, args.events_per_day, args.event_minutes,
                            progress=lambda m: print(m, file=sys.stderr, flush=True)))
    out.update(measure(args.db, args.days, args.beds))
    out["loadavg_after"] = list(os.getloadavg())
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
