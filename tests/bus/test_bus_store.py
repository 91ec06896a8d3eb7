"""The results database (bus/store.py) on real SQLite files: round trips, WAL, crash safety under a real
``kill -9``, restart of unfinished events, retention, schema versions and the errors for bad files."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from waiting import wait_until

from semiostream.bus.protocol import EventResult, ScoreResult
from semiostream.bus.store import (
    APPLICATION_ID,
    BUSY_TIMEOUT_MS,
    NS_PER_DAY,
    SCHEMA_VERSION,
    ResultStore,
    StoredEvent,
    StoreError,
)

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z
BUNDLE = "3f2a9c0d11b2e4aa"


def window(bed: str, i: int, p: float, event_id: str | None = None) -> ScoreResult:
    first = T0 + i * 2 * 10**9
    return ScoreResult(bed=bed, first_seq=60 * i, last_seq=60 * i + 59, first_t_ns=first,
                       last_t_ns=first + 1_966_666_666, p_tle=p, label="TLE" if p >= 0.5 else "FLE",
                       bundle_id=BUNDLE, latency_ms=412.5 + i, event_id=event_id)


def summary(bed: str, event_id: str, start: int, stop: int, probs: list[float]) -> EventResult:
    p = sum(probs) / len(probs) if probs else None
    return EventResult(bed=bed, event_id=event_id, start_t_ns=start, stop_t_ns=stop, windows=len(probs),
                       p_tle=p, label=None if p is None else ("TLE" if p >= 0.5 else "FLE"), bundle_id=BUNDLE)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "results.sqlite"


def test_window_and_event_round_trip(db):
    probs = [0.25, 0.5, 0.875]
    with ResultStore(db) as store:
        store.open_event("bed-01", "bed-01-aaaa", T0)
        for i, p in enumerate(probs):
            store.add_window(window("bed-01", i, p, "bed-01-aaaa"))
        store.add_window(window("bed-02", 7, 0.125))  # outside any event
        store.stop_event("bed-01-aaaa", T0 + 95 * 10**9)
        store.finish_event(summary("bed-01", "bed-01-aaaa", T0, T0 + 95 * 10**9, probs))
    with ResultStore(db) as store:  # everything read back from the file, in a new connection
        (ev,) = store.events()
        assert ev["event_id"] == "bed-01-aaaa" and ev["bed"] == "bed-01" and ev["state"] == "closed"
        assert (ev["start_t_ns"], ev["stop_t_ns"], ev["windows"]) == (T0, T0 + 95 * 10**9, 3)
        assert ev["p_tle"] == pytest.approx(sum(probs) / 3) and ev["label"] == "TLE" and ev["bundle_id"] == BUNDLE
        assert ev["opened_ns"] <= ev["closed_ns"] <= time.time_ns()
        rows = store.windows("bed-01-aaaa")
        assert [r["p_tle"] for r in rows] == probs
        w = window("bed-01", 2, 0.875, "bed-01-aaaa")
        assert {k: rows[2][k] for k in ("bed", "first_seq", "last_seq", "first_t_ns", "last_t_ns", "label",
                                        "bundle_id", "latency_ms", "event_id")} == {
            "bed": w.bed, "first_seq": w.first_seq, "last_seq": w.last_seq, "first_t_ns": w.first_t_ns,
            "last_t_ns": w.last_t_ns, "label": w.label, "bundle_id": w.bundle_id, "latency_ms": w.latency_ms,
            "event_id": w.event_id}
        assert store.unfinished_events() == []
        assert store.counts() == {"windows": 4, "events": 1, "unfinished": 0}
        assert store.windows("no-such-event") == []


def test_wal_mode_and_settings(db):
    with ResultStore(db) as store:
        c = store.conn
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert c.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert not c.in_transaction
    with ResultStore(db, synchronous="FULL") as store:
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    # WAL is a property of the file: a plain sqlite3 connection sees it too
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_each_call_is_committed_before_it_returns(db):
    """Another connection (another process, in effect) sees every row as soon as the call returns."""
    with ResultStore(db) as store:
        other = sqlite3.connect(db)
        store.open_event("bed-01", "e1", T0)
        assert other.execute("SELECT state FROM events").fetchall() == [("open",)]
        store.add_window(window("bed-01", 0, 0.5, "e1"))
        assert other.execute("SELECT count(*) FROM windows").fetchone()[0] == 1
        store.stop_event("e1", T0 + 1)
        assert other.execute("SELECT state, stop_t_ns FROM events").fetchall() == [("stopping", T0 + 1)]
        other.close()


_WRITER = textwrap.dedent("""
    import sys
    from semiostream.bus.protocol import ScoreResult
    from semiostream.bus.store import ResultStore

    store = ResultStore(sys.argv[1])
    store.open_event("bed-01", "ev-open", 1000)
    store.open_event("bed-02", "ev-stopping", 2000)
    store.add_window(ScoreResult("bed-02", 0, 59, 0, 1, 0.75, "TLE", "b", 1.0, "ev-stopping"))
    store.stop_event("ev-stopping", 3000)
    print("ready", flush=True)
    i = 0
    while True:  # until killed: one committed window per call, acknowledged after it returns
        store.add_window(ScoreResult("bed-01", i, i + 59, i, i + 1, (i % 1000) / 1000, "FLE", "b", 1.0,
                                     "ev-open" if i % 2 == 0 else None))
        print(i, flush=True)
        i += 1
""")


def test_kill_9_loses_no_acknowledged_row_and_unfinished_events_survive(db):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    acked = -1
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while acked < 400 and time.monotonic() < deadline:
            acked = int(proc.stdout.readline())
        # the WAL holds the commits (not yet checkpointed into the main file) when the process dies
        assert Path(f"{db}-wal").stat().st_size > 0
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        # acknowledgements printed before the kill but still in the pipe
        acked = max([acked] + [int(line) for line in proc.stdout.read().split()])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert acked >= 400, "the writer did not acknowledge 400 windows within 60 s"

    with ResultStore(db) as store:
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = [r[0] for r in store.conn.execute("SELECT first_seq FROM windows WHERE bed = 'bed-01' ORDER BY id")]
        # every acknowledged window is there, in order; at most one more was committed but not yet acknowledged
        assert seqs[: acked + 1] == list(range(acked + 1))
        assert len(seqs) in (acked + 1, acked + 2)
        unfinished = {e.event_id: e for e in store.unfinished_events()}
        assert set(unfinished) == {"ev-open", "ev-stopping"}
        opened = unfinished["ev-open"]
        assert (opened.bed, opened.start_t_ns, opened.stop_t_ns, opened.stopping) == ("bed-01", 1000, None, False)
        assert opened.probs == [(i % 1000) / 1000 for i in range(0, len(seqs), 2)]
        assert unfinished["ev-stopping"] == StoredEvent("bed-02", "ev-stopping", 2000, 3000, [0.75])
        # the restarted scorer carries on: more windows, then the summary with every window of the event
        store.add_window(window("bed-01", 9999, 1.0, "ev-open"))
        probs = opened.probs + [1.0]
        store.stop_event("ev-open", 5000)
        store.finish_event(summary("bed-01", "ev-open", 1000, 5000, probs))
        store.finish_event(summary("bed-02", "ev-stopping", 2000, 3000, unfinished["ev-stopping"].probs))
        assert store.unfinished_events() == []
        by_id = {e["event_id"]: e for e in store.events()}
        assert by_id["ev-open"]["windows"] == len(store.windows("ev-open")) == len(probs)
        assert by_id["ev-stopping"]["p_tle"] == 0.75


def test_events_listing_filters_and_unfinished_counts(db):
    hour = 3600 * 10**9
    with ResultStore(db) as store:
        for k, bed in enumerate(["bed-01", "bed-02", "bed-01", "bed-03"]):
            store.open_event(bed, f"e{k}", T0 + k * hour)
            store.add_window(window(bed, k, 0.2 * k, f"e{k}"))
        store.add_window(window("bed-03", 5, 0.9, "e3"))
        for k in (0, 1):
            store.finish_event(summary(["bed-01", "bed-02"][k], f"e{k}", T0 + k * hour, T0 + k * hour + 60,
                                       [0.2 * k]))
        store.stop_event("e2", T0 + 2 * hour + 60)
        assert [e["event_id"] for e in store.events()] == ["e0", "e1", "e2", "e3"]
        assert [e["event_id"] for e in store.events(bed="bed-01")] == ["e0", "e2"]
        assert [e["event_id"] for e in store.events(since_ns=T0 + hour)] == ["e1", "e2", "e3"]
        assert [e["event_id"] for e in store.events(until_ns=T0 + hour)] == ["e0"]  # until is exclusive
        assert [e["event_id"] for e in store.events(since_ns=T0 + hour, until_ns=T0 + 3 * hour)] == ["e1", "e2"]
        assert [e["event_id"] for e in store.events(limit=2)] == ["e2", "e3"]  # the most recent, oldest first
        assert [e["event_id"] for e in store.events(bed="bed-01", limit=1)] == ["e2"]
        states = {e["event_id"]: (e["state"], e["windows"], e["p_tle"]) for e in store.events()}
        assert states == {"e0": ("closed", 1, 0.0), "e1": ("closed", 1, 0.2), "e2": ("stopping", 1, None),
                          "e3": ("open", 2, None)}
        with pytest.raises(ValueError, match="limit"):
            store.events(limit=0)


def test_event_state_errors(db):
    with ResultStore(db) as store:
        store.open_event("bed-01", "e1", T0)
        with pytest.raises(StoreError, match="already recorded"):
            store.open_event("bed-01", "e1", T0)
        with pytest.raises(StoreError, match="not recorded"):
            store.stop_event("nope", T0)
        store.finish_event(summary("bed-01", "e1", T0, T0 + 1, []))
        with pytest.raises(StoreError, match="already closed"):
            store.stop_event("e1", T0 + 2)
        # a summary for an event this store never saw open is still recorded (closed)
        store.finish_event(summary("bed-09", "e9", T0, T0 + 5, [0.5]))
        assert {e["event_id"]: e["state"] for e in store.events()} == {"e1": "closed", "e9": "closed"}
        assert store.counts()["events"] == 2  # the failed calls wrote nothing
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.add_window(window("bed-01", 0, 0.5))


def _clock_past(t_ns: int) -> int:
    """The first wall-clock reading (``time.time_ns()``) after ``t_ns``: the store stamps rows with it."""
    return wait_until(time.time_ns, until=lambda now: now > t_ns, what=f"the wall clock to pass {t_ns} ns")


def test_prune_keeps_unfinished_events_and_recent_rows(db):
    retention = 30.0
    with ResultStore(db, retention_days=retention) as store:
        # old rows: a closed event, loose windows, an open and a stopping event with windows
        store.open_event("bed-01", "old-closed", T0)
        store.add_window(window("bed-01", 0, 0.1, "old-closed"))
        store.finish_event(summary("bed-01", "old-closed", T0, T0 + 1, [0.1]))
        store.add_window(window("bed-02", 1, 0.2))
        store.open_event("bed-03", "still-open", T0)
        store.add_window(window("bed-03", 2, 0.3, "still-open"))
        store.open_event("bed-04", "stopping", T0)
        store.add_window(window("bed-04", 3, 0.4, "stopping"))
        store.stop_event("stopping", T0 + 1)
        # a window of an event that closes after the cutoff: kept with its event
        store.open_event("bed-05", "closes-late", T0)
        store.add_window(window("bed-05", 4, 0.5, "closes-late"))
        cutoff_wall = _clock_past(time.time_ns())  # every row above is older, every row below newer
        _clock_past(cutoff_wall)
        store.finish_event(summary("bed-05", "closes-late", T0, T0 + 1, [0.5]))
        store.add_window(window("bed-06", 5, 0.6))  # recent loose window
        store.add_window(window("bed-03", 6, 0.7, "still-open"))

        now = cutoff_wall + int(retention * NS_PER_DAY)
        assert store.prune(now_ns=now) == 3  # old-closed + its window + the old loose window
        assert {e["event_id"] for e in store.events()} == {"still-open", "stopping", "closes-late"}
        assert {e.event_id: e.probs for e in store.unfinished_events()} == {"still-open": [0.3, 0.7],
                                                                             "stopping": [0.4]}
        assert [w["p_tle"] for w in store.windows("closes-late")] == [0.5]
        assert store.windows("old-closed") == []
        assert store.counts() == {"windows": 5, "events": 3, "unfinished": 2}
        assert store.prune(now_ns=now) == 0
        # much later: everything finished goes, unfinished events and their windows never do
        assert store.prune(now_ns=time.time_ns() + int(retention * NS_PER_DAY) + 1) == 3
        assert store.counts() == {"windows": 3, "events": 2, "unfinished": 2}
    with ResultStore(db, retention_days=None) as store:
        assert store.prune(now_ns=time.time_ns() + 10**6 * NS_PER_DAY) == 0


def test_prune_in_slices_then_reclaim_shrinks_the_file(db):
    """The scorer prunes in slices (short transactions); the result is the same as one pass, and the
    pages freed go back to the filesystem (incremental auto-vacuum of a file this version created)."""
    with ResultStore(db, retention_days=1.0) as store:
        assert store.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        for e in range(3):
            store.open_event("bed-01", f"ev-{e}", T0)
            for i in range(40):
                store.add_window(window("bed-01", i, 0.5, f"ev-{e}"))
            store.finish_event(summary("bed-01", f"ev-{e}", T0, T0 + 1, [0.5] * 40))
        for i in range(2000):
            store.add_window(window("bed-02", i, 0.25))
        store.add_window(window("bed-03", 0, 0.5, "never-recorded"))
        store.open_event("bed-04", "open", T0)
        store.add_window(window("bed-04", 0, 0.5, "open"))
        store.reclaim()
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        later = time.time_ns() + 2 * NS_PER_DAY
        slices = []
        while not slices or slices[-1] >= 100:
            slices.append(store.prune(now_ns=later, limit=100))
        assert sum(slices) == 3 * 40 + 2000 + 1 + 3 and len(slices) >= 20
        assert store.counts() == {"windows": 1, "events": 1, "unfinished": 1}
        freed = store.reclaim()
        assert freed["freed_pages"] > 0.8 * pages - 10 and freed["wal_busy"] == 0
        assert freed["file_pages"] < 0.2 * pages + 10
    assert Path(db).stat().st_size == freed["file_pages"] * 4096


def test_prune_and_lookups_use_indexes(db):
    """Pruning and per-event reads never scan a whole table (they run hourly / per event on a large file)."""
    with ResultStore(db) as store:
        plans = []
        for sql in ("DELETE FROM windows WHERE id IN (SELECT id FROM windows WHERE written_ns < 1 AND "
                    "(event_id IS NULL OR event_id NOT IN "
                    "(SELECT event_id FROM events WHERE state != 'closed' UNION ALL "
                    " SELECT event_id FROM events WHERE state = 'closed' AND closed_ns >= 1)) LIMIT 5000)",
                    "DELETE FROM windows WHERE id IN (SELECT id FROM windows WHERE event_id IN "
                    "(SELECT event_id FROM events WHERE state = 'closed' AND closed_ns < 1) LIMIT 5000)",
                    "DELETE FROM events WHERE state = 'closed' AND closed_ns < 1 AND NOT EXISTS "
                    "(SELECT 1 FROM windows WHERE windows.event_id = events.event_id)",
                    "SELECT p_tle FROM windows WHERE event_id = 'x' ORDER BY id",
                    "SELECT * FROM events WHERE state != 'closed'"):
            plans += [row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql)]
        assert not [p for p in plans if p.startswith("SCAN") and "USING INDEX" not in p], plans


def test_disk_full_is_a_store_error_and_nothing_partial(db):
    with ResultStore(db) as store:
        store.conn.execute("PRAGMA max_page_count = 12")  # SQLite's own limit: SQLITE_FULL like a full disk
        written = 0
        with pytest.raises(StoreError, match="disk is full.*retention_days"):
            for i in range(10_000):
                store.add_window(window("bed-01", i, 0.5))
                written += 1
        assert 0 < written < 10_000
        assert store.counts()["windows"] == written  # the failed call left nothing behind
        assert not store.conn.in_transaction
        assert len(store.events()) == 0  # still readable


def test_newer_schema_version_is_refused(db):
    ResultStore(db).close()
    with sqlite3.connect(db) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*newer semiostream.*Upgrade"):
        ResultStore(db)
    with pytest.raises(StoreError, match="newer"):
        ResultStore(db, readonly=True)


def test_foreign_sqlite_database_is_refused(tmp_path):
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE patients (name TEXT)")
    with pytest.raises(StoreError, match="not a semiostream results database"):
        ResultStore(other)
    assert sqlite3.connect(other).execute("SELECT name FROM sqlite_schema").fetchall() == [("patients",)]


def test_corrupt_files_are_store_errors(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite\n" * 300)
    with pytest.raises(StoreError, match="corrupt or not a SQLite file.*move it aside"):
        ResultStore(garbage)
    with pytest.raises(StoreError, match="corrupt"):
        ResultStore(garbage, readonly=True)

    # a real database whose pages were overwritten (header intact): the error surfaces on read or write
    damaged = tmp_path / "damaged.sqlite"
    with ResultStore(damaged) as store:
        for i in range(2000):
            store.add_window(window("bed-01", i, 0.5, "e1" if i % 2 else None))
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = damaged.stat().st_size
    with open(damaged, "r+b") as f:
        f.seek(4096)
        f.write(b"\xff" * (size - 4096))
    with pytest.raises(StoreError, match="corrupt"):
        with ResultStore(damaged) as store:
            store.windows("e1")
            store.add_window(window("bed-01", 0, 0.5))


def test_bad_paths_are_store_errors(tmp_path):
    with pytest.raises(StoreError, match="is a folder; give a file path"):
        ResultStore(tmp_path)
    with pytest.raises(StoreError, match="folder .*missing.* does not exist"):
        ResultStore(tmp_path / "missing" / "results.sqlite")
    with pytest.raises(ValueError, match="retention_days"):
        ResultStore(tmp_path / "r.sqlite", retention_days=0)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_file_is_a_store_error(db):
    ResultStore(db).close()
    db.chmod(0o444)
    with pytest.raises(StoreError, match="not readable and writable"):
        ResultStore(db)


def test_readonly_never_creates_and_never_writes(tmp_path, db):
    missing = tmp_path / "absent.sqlite"
    with pytest.raises(StoreError, match="no results database"):
        ResultStore(missing, readonly=True)
    assert not missing.exists()
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(StoreError, match="empty"):
        ResultStore(empty, readonly=True)
    assert empty.stat().st_size == 0

    with ResultStore(db) as writer:  # the scorer keeps writing while a reader lists
        writer.open_event("bed-01", "e1", T0)
        with ResultStore(db, readonly=True) as reader:
            writer.add_window(window("bed-01", 0, 0.5, "e1"))
            assert [e["windows"] for e in reader.events()] == [1]
            with pytest.raises(StoreError, match="read-only"):
                reader.add_window(window("bed-01", 1, 0.5))
            with pytest.raises(StoreError, match="read-only"):
                reader.prune()
        assert writer.counts()["windows"] == 1


def test_processes_opening_a_new_file_at_once_share_one_schema(db):
    """Scorer restarts racing each other (or a reader and the scorer) must not fail creating the schema."""
    code = textwrap.dedent("""
        import sys
        from semiostream.bus.store import ResultStore
        print("ready", flush=True)
        sys.stdin.readline()  # all four start at once
        with ResultStore(sys.argv[1]) as store:
            store.open_event("bed-01", sys.argv[2], 1)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), f"e{i}"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    for p in procs:  # every interpreter has started and imported the store
        assert p.stdout.readline() == "ready\n", p.communicate(timeout=60)[1]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    with ResultStore(db) as store:
        assert sorted(e["event_id"] for e in store.events()) == ["e0", "e1", "e2", "e3"]


def test_threads_open_write_and_close(db):
    """Opened in one thread, written from several at once, closed from the first: every call is its own
    transaction (the store's lock), none fails and every row lands."""
    import threading

    errors: list[BaseException] = []

    def writer(store: ResultStore, k: int) -> None:
        try:
            store.open_event(f"bed-{k:02d}", f"e{k}", T0)
            for i in range(150):
                store.add_window(window(f"bed-{k:02d}", i, 0.5, f"e{k}"))
            store.stop_event(f"e{k}", T0 + 1)
        except BaseException as e:  # reported to the test thread
            errors.append(e)

    store = ResultStore(db)
    threads = [threading.Thread(target=writer, args=(store, k)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert store.counts() == {"windows": 600, "events": 4, "unfinished": 4}
    assert [len(e.probs) for e in store.unfinished_events()] == [150] * 4
    store.close()


def test_version_1_database_is_read_as_is_and_migrated_by_a_writer(db):
    from dataclasses import replace

    from semiostream.bus.store import _SCHEMA_V1

    with sqlite3.connect(db) as c:  # a database written before event reports existed
        for stmt in _SCHEMA_V1.split(";"):
            if stmt.strip():
                c.execute(stmt)
        c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        c.execute("PRAGMA user_version = 1")
        c.execute("INSERT INTO events (event_id, bed, start_t_ns, state, opened_ns) VALUES ('old', 'b', 1, 'open', 1)")
    with ResultStore(db, readonly=True) as ro:
        (old,) = ro.events()
        assert old["event_id"] == "old" and old["report"] is None
    with ResultStore(db) as store:
        store.finish_event(replace(summary("b", "old", 1, 5, [0.7]), report="/reports/old/index.html"))
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    with ResultStore(db, readonly=True) as ro:
        (old,) = ro.events()
    assert old["state"] == "closed" and old["report"] == "/reports/old/index.html" and old["p_tle"] == 0.7
