"""Write rate of the results database (:class:`semiostream.bus.store.ResultStore`).

Times ``--rows`` calls of ``add_window`` (each one its own committed transaction, as the scorer does),
with ``synchronous=NORMAL`` (the default: survives a process crash) and ``FULL`` (fsync per commit: also
survives a power loss), plus one ``prune`` of every row, on a fresh file in ``--dir`` (default: a
temporary folder; put it on the disk the scorer will use). Prints one JSON object::

    python -m semiostream.bench.store --rows 10000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from semiostream.bus.protocol import EventResult, ScoreResult
from semiostream.bus.store import ResultStore


def measure(path: Path, rows: int, synchronous: str) -> dict:
    """Rows/s of ``add_window`` into a new database at ``path``, 1 event per 100 windows."""
    with ResultStore(path, retention_days=1.0, synchronous=synchronous) as store:
        t0 = time.perf_counter()
        for i in range(rows):
            event_id = f"bed-{i % 16:02d}-ev{i // 100}" if i % 100 == 0 else None
            if event_id:
                store.open_event(f"bed-{i % 16:02d}", event_id, time.time_ns())
            store.add_window(ScoreResult(
                bed=f"bed-{i % 16:02d}", first_seq=i * 30, last_seq=i * 30 + 59, first_t_ns=time.time_ns(),
                last_t_ns=time.time_ns(), p_tle=(i % 100) / 100, label="TLE" if i % 100 >= 50 else "FLE",
                bundle_id="3f2a9c0d11b2e4aa", latency_ms=120.0, event_id=None))
            if event_id:
                store.finish_event(EventResult(bed=f"bed-{i % 16:02d}", event_id=event_id, start_t_ns=0,
                                               stop_t_ns=1, windows=0, p_tle=None, label=None,
                                               bundle_id="3f2a9c0d11b2e4aa"))
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        deleted = store.prune(now_ns=time.time_ns() + 2 * 86_400 * 10**9)
        prune_s = time.perf_counter() - t1
    return {"synchronous": synchronous, "rows": rows, "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds), "prune_deleted": deleted, "prune_s": round(prune_s, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000, help="add_window calls per setting")
    ap.add_argument("--dir", type=Path, default=None, help="folder for the database files (default: temporary)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        results = [measure(Path(d) / f"bench-{s.lower()}.sqlite", args.rows, s) for s in ("NORMAL", "FULL")]
    print(json.dumps({"bench": "store", "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
