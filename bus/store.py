"""Results database of the scorer: every published window and event, durably, in one SQLite file.

The scorer records each result here *before* publishing it, so a crash of the process (``kill -9``,
OOM killer, segfault in a native library) loses nothing that was scored, and events that were open
survive a restart: :meth:`ResultStore.unfinished_events` hands them back with the p(TLE) of every window
already recorded for them. ``semiostream events`` lists and exports what is stored.

Storage: SQLite in WAL mode with ``synchronous=NORMAL`` and a busy timeout, so readers (``semiostream
events``) never block the scorer and the scorer never blocks them.

Durability contract
-------------------
* Every write method (:meth:`~ResultStore.add_window`, :meth:`~ResultStore.open_event`,
  :meth:`~ResultStore.stop_event`, :meth:`~ResultStore.finish_event`, :meth:`~ResultStore.prune`) is one
  transaction, committed before the method returns. If it raises :class:`StoreError`, nothing of that call
  was written and the store stays usable.
* A returned call survives the end of the process in any way (the commit is in the WAL file, which the
  operating system holds even if the process dies before the next checkpoint).
* With ``synchronous="NORMAL"`` (the default) the most recent commits can be rolled back by a *power loss
  or operating-system crash* (never corrupted: the database stays consistent). Pass
  ``synchronous="FULL"`` to fsync every commit and survive those too, at several times the cost per row.
* Measured on a 2-core development VM (``python -m semiostream.bench.store --rows 10000``): 17,000
  ``add_window`` calls/s with NORMAL when idle, 7,000 while other jobs load it; 3,300 and 500 with FULL.
  The live scorer publishes at most ~1000 windows/s, so one commit per row is affordable with NORMAL and
  there is no batching to get wrong.

Threading: a :class:`ResultStore` owns one SQLite connection. Every public method holds the store's lock
for its whole transaction, so the store may be opened in one thread (start-up: a bad path is reported
before the model loads), written from another (the scorer's socket thread) and closed from the first;
calls from several threads are serialized, never interleaved. Other processes may read the same file at
the same time (open them with ``readonly=True``); listings read one consistent snapshot.

Schema (version 2, in ``PRAGMA user_version``; ``PRAGMA application_id`` marks the file as ours; a
version-1 file is migrated in place when a scorer opens it, and read as it is by readers):

* ``events(event_id PK, bed, start_t_ns, stop_t_ns, state, windows, p_tle, label, bundle_id,
  opened_ns, closed_ns, report)`` -- ``state`` is ``open`` (started), ``stopping`` (stop requested, summary
  waits for windows still being scored) or ``closed`` (summary published); ``report`` (v2) is the path
  of the event review report, when the scorer writes them.
* ``windows(id PK, bed, first_seq, last_seq, first_t_ns, last_t_ns, p_tle, label, bundle_id,
  latency_ms, event_id, written_ns)`` -- one row per published window result.

``*_t_ns`` are the scorer's/camera's times in ns since the Unix epoch; ``opened_ns``, ``closed_ns`` and
``written_ns`` are the wall-clock times at which the rows were written.

Retention: :meth:`ResultStore.prune` deletes closed events whose ``closed_ns`` is older than
``retention_days`` together with their windows, and windows outside any retained event whose
``written_ns`` is older. Open and stopping events and all their windows are never pruned.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from .protocol import EventResult, ScoreResult

SCHEMA_VERSION = 2
APPLICATION_ID = 0x53534442  # "SSDB": a semiostream results database
BUSY_TIMEOUT_MS = 5000
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the WAL file is truncated to after a checkpoint
NS_PER_DAY = 86_400 * 10**9

EVENT_STATES = ("open", "stopping", "closed")

_SCHEMA_V1 = """
CREATE TABLE events (
    event_id   TEXT PRIMARY KEY,
    bed        TEXT NOT NULL,
    start_t_ns INTEGER NOT NULL,
    stop_t_ns  INTEGER,
    state      TEXT NOT NULL CHECK (state IN ('open', 'stopping', 'closed')),
    windows    INTEGER,
    p_tle      REAL,
    label      TEXT,
    bundle_id  TEXT,
    opened_ns  INTEGER NOT NULL,
    closed_ns  INTEGER
);
CREATE INDEX events_start ON events (start_t_ns);
CREATE INDEX events_bed_start ON events (bed, start_t_ns);
CREATE INDEX events_unfinished ON events (state) WHERE state != 'closed';
CREATE INDEX events_closed ON events (closed_ns) WHERE state = 'closed';

CREATE TABLE windows (
    id         INTEGER PRIMARY KEY,
    bed        TEXT NOT NULL,
    first_seq  INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    first_t_ns INTEGER NOT NULL,
    last_t_ns  INTEGER NOT NULL,
    p_tle      REAL NOT NULL,
    label      TEXT NOT NULL,
    bundle_id  TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    event_id   TEXT,
    written_ns INTEGER NOT NULL
);
CREATE INDEX windows_event ON windows (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX windows_written ON windows (written_ns);
"""

_MIGRATIONS = {  # version -> statements that bring a database of that version to the next one
    1: ("ALTER TABLE events ADD COLUMN report TEXT",),  # v2: the event review report's path
}
_EVENT_COLUMNS = ("event_id", "bed", "start_t_ns", "stop_t_ns", "state", "windows", "p_tle", "label",
                  "bundle_id", "opened_ns", "closed_ns", "report")
_WINDOW_COLUMNS = ("bed", "first_seq", "last_seq", "first_t_ns", "last_t_ns", "p_tle", "label", "bundle_id",
                   "latency_ms", "event_id", "written_ns")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a public :class:`ResultStore` method under the store's lock (one transaction at a time)."""

    @wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with args[0]._lock:
            return method(*args, **kwargs)

    return run


class StoreError(RuntimeError):
    """The results database cannot be opened, read or written. The message says what and how to fix it."""


@dataclass(frozen=True)
class StoredEvent:
    """An event that was opened (and maybe stopped) but whose summary was never recorded as published.

    ``probs`` holds the p(TLE) of every window recorded for the event, in the order they were written;
    ``stop_t_ns`` is None while the event is still open.
    """

    bed: str
    event_id: str
    start_t_ns: int
    stop_t_ns: int | None
    probs: list[float] = field(default_factory=list)

    @property
    def stopping(self) -> bool:
        """True when ``event stop`` was requested before the scorer ended."""
        return self.stop_t_ns is not None


class ResultStore:
    """Durable record of the scorer's window results and events (one SQLite file, WAL mode).

    Args:
        path: the database file; created (with its schema) unless ``readonly``. Its folder must exist.
        retention_days: results older than this are removed by :meth:`prune`; None keeps everything.
        readonly: open an existing database for reading only (listing/export); never creates a file and
            refuses every write.
        synchronous: ``"NORMAL"`` (survives a process crash) or ``"FULL"`` (also survives a power loss,
            slower); see the module's durability contract.

    Raises:
        StoreError: the path is a folder, its folder is missing, the file is not a (semiostream) SQLite
            database or is corrupt, it was written by a newer version, or it cannot be written.

    Thread-safe: calls are serialized by a lock (see the module docstring).
    """

    def __init__(self, path: str | Path, retention_days: float | None = 30.0, *, readonly: bool = False,
                 synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> None:
        if retention_days is not None and not (retention_days > 0 and math.isfinite(retention_days)):
            raise ValueError(f"retention_days={retention_days!r} must be a positive number of days or None")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous={synchronous!r} must be 'NORMAL' or 'FULL'")
        self.path = Path(path)
        self._lock = threading.RLock()
        self.retention_days = retention_days
        self.readonly = readonly
        try:
            self._check_path()
        except OSError as e:
            raise StoreError(f"cannot use results database path {self.path}: {e.strerror or e}; check the "
                             "path and its permissions") from None
        try:
            if readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1e3,
                                             check_same_thread=False)  # guarded by self._lock
            else:
                self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1e3,
                                             check_same_thread=False)  # guarded by self._lock
        except sqlite3.Error as e:
            raise self._error("open", e) from None
        try:
            self._setup(synchronous)
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ opening
    def _check_path(self) -> None:
        p = self.path
        if p.is_dir():
            raise StoreError(f"results database path {p} is a folder; give a file path such as "
                             f"{p / 'results.sqlite'}")
        if self.readonly:
            if not p.exists():
                raise StoreError(f"no results database at {p}; check the path (the scorer creates it "
                                 "when it starts with a store configured)")
            return
        parent = p.parent
        if not parent.is_dir():
            raise StoreError(f"cannot create results database {p}: folder {parent} does not exist; create it "
                             "or choose another path")
        if p.exists() and not os.access(p, os.R_OK | os.W_OK):
            raise StoreError(f"results database {p} is not readable and writable by this user; fix its "
                             "permissions or choose another path")
        if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(f"cannot create results database {p}: folder {parent} is not writable by this "
                             "user; fix its permissions or choose another path")

    def _setup(self, synchronous: str) -> None:
        """Check the file is ours and create or migrate its schema. Processes opening a new file at once can
        meet SQLite's deadlock guard (SQLITE_BUSY without waiting, e.g. two switches to WAL): retried with
        jitter within the busy timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1e3
        while True:
            try:
                return self._setup_once(synchronous)
            except sqlite3.Error as e:
                name = getattr(e, "sqlite_errorname", "")
                if not name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or time.monotonic() > deadline:
                    raise self._error("open", e) from None
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                time.sleep(random.uniform(0.01, 0.05))

    def _setup_once(self, synchronous: str) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version, app_id, has_tables = self._identity()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"results database {self.path} has schema version {version}, written by a newer semiostream; "
                f"this one reads up to version {SCHEMA_VERSION}. Upgrade semiostream, or use another file.")
        if app_id not in (0, APPLICATION_ID) or (version == 0 and has_tables):
            raise StoreError(f"{self.path} is a SQLite database but not a semiostream results database; "
                             "choose another path")
        self._version = version
        if self.readonly:
            if version == 0:
                raise StoreError(f"results database {self.path} is empty (no schema yet); the scorer "
                                 "creates it when it starts with a store configured")
            c.execute("PRAGMA query_only = ON")
            return
        if version == 0 and not self._has_tables():  # before WAL writes the header: pages freed by
            c.execute("PRAGMA auto_vacuum = INCREMENTAL")  # prune can go back to the filesystem
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"results database {self.path}: SQLite refused WAL mode (got {mode!r}); put "
                             "the file on a local filesystem (WAL does not work on network filesystems)")
        c.execute(f"PRAGMA synchronous = {synchronous}")
        c.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        if version < SCHEMA_VERSION:
            with self._transaction():  # executescript would commit early: one statement at a time
                version = c.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
                if version == 0:
                    for stmt in _SCHEMA_V1.split(";"):
                        if stmt.strip():
                            c.execute(stmt)
                    c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    version = 1
                while version < SCHEMA_VERSION:
                    for stmt in _MIGRATIONS[version]:
                        c.execute(stmt)
                    version += 1
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._version = SCHEMA_VERSION

    def _identity(self) -> tuple[int, int, bool]:
        """(schema version, application id, has tables), read in one transaction: another process creating
        the schema at the same moment is seen either not at all or whole, never as tables without a version."""
        c = self._conn
        c.execute("BEGIN DEFERRED")
        try:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            app_id = c.execute("PRAGMA application_id").fetchone()[0]
            return version, app_id, self._has_tables()
        finally:
            c.execute("COMMIT")

    def _has_tables(self) -> bool:
        return self._conn.execute("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").fetchone()[0] > 0

    def _error(self, doing: str, e: sqlite3.Error) -> StoreError:
        name = getattr(e, "sqlite_errorname", "") or type(e).__name__
        where = f"results database {self.path}"
        if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            hint = (f"{where} is corrupt or not a SQLite file ({e}); move it aside (keep it for inspection) "
                    "and restart to create a new one, or restore it from a backup")
        elif name.startswith("SQLITE_FULL"):
            hint = (f"{where}: the disk is full ({e}); free space on its filesystem or lower "
                    "store.retention_days")
        elif name.startswith("SQLITE_READONLY") or name.startswith("SQLITE_PERM"):
            hint = f"{where} cannot be written ({e}); fix the permissions of the file and its folder"
        elif name.startswith("SQLITE_CANTOPEN"):
            hint = f"cannot open {where} ({e}); check that its folder exists and is writable"
        elif name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED"):
            hint = (f"{where} stayed locked for {BUSY_TIMEOUT_MS / 1000:.0f} s ({e}); another process holds "
                    "a write lock on it (two scorers must not share one database file)")
        elif name.startswith("SQLITE_IOERR"):
            hint = f"{where}: I/O error ({e}); check the disk and the filesystem"
        else:
            hint = f"{where}: {e} ({name})"
        return StoreError(f"cannot {doing}: {hint}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; rolled back if anything in it raises."""
        if self.readonly:
            raise StoreError(f"results database {self.path} was opened read-only")
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.rollback()
            raise

    def _write(self, doing: str, *statements: tuple[str, tuple | dict]) -> list[int]:
        """Run ``statements`` in one transaction; returns each statement's rowcount."""
        try:
            with self._transaction() as c:
                return [c.execute(sql, params).rowcount for sql, params in statements]
        except sqlite3.Error as e:
            raise self._error(doing, e) from None

    @contextmanager
    def _snapshot(self, doing: str) -> Iterator[None]:
        """Several reads that see one state of the file (a read transaction; writers are not blocked)."""
        try:
            self._conn.execute("BEGIN DEFERRED")
        except sqlite3.Error as e:
            raise self._error(doing, e) from None
        try:
            yield
        finally:
            if self._conn.in_transaction:
                self._conn.rollback()  # nothing was written: ends the read transaction

    def _read(self, doing: str, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        try:
            cur = self._conn.execute(sql, params)
            cur.row_factory = sqlite3.Row
            return cur.fetchall()
        except sqlite3.Error as e:
            raise self._error(doing, e) from None

    @_locked
    def close(self) -> None:
        """Close the connection (idempotent). The WAL is checkpointed into the main file by SQLite."""
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        """The underlying connection (for diagnostics and tests)."""
        if self._conn is None:
            raise StoreError(f"results database {self.path} is closed")
        return self._conn

    # ------------------------------------------------------------------ writes
    @_locked
    def add_window(self, result: ScoreResult) -> None:
        """Record one published window result (committed on return)."""
        self._ensure_open()
        self._write(
            f"record the window {result.first_seq}-{result.last_seq} of bed {result.bed}",
            ("INSERT INTO windows (bed, first_seq, last_seq, first_t_ns, last_t_ns, p_tle, label, bundle_id, "
             "latency_ms, event_id, written_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             (result.bed, result.first_seq, result.last_seq, result.first_t_ns, result.last_t_ns,
              float(result.p_tle), result.label, result.bundle_id, float(result.latency_ms), result.event_id,
              time.time_ns())),
        )

    @_locked
    def open_event(self, bed: str, event_id: str, start_t_ns: int) -> None:
        """Record that an event started on ``bed`` (committed on return).

        Raises:
            StoreError: ``event_id`` is already recorded.
        """
        self._ensure_open()
        doing = f"record the start of event {event_id} on bed {bed}"
        try:
            self._write(doing, ("INSERT INTO events (event_id, bed, start_t_ns, state, opened_ns) "
                                "VALUES (?, ?, ?, 'open', ?)", (event_id, bed, int(start_t_ns), time.time_ns())))
        except StoreError:
            if self._event_row(event_id) is not None:
                raise StoreError(f"cannot {doing}: event {event_id} is already recorded in {self.path}; event "
                                 "ids must be unique") from None
            raise

    @_locked
    def stop_event(self, event_id: str, stop_t_ns: int) -> None:
        """Record that ``event stop`` was requested; the summary follows with :meth:`finish_event`.

        Raises:
            StoreError: the event is unknown or already finished.
        """
        self._ensure_open()
        doing = f"record the stop of event {event_id}"
        (n,) = self._write(doing, ("UPDATE events SET stop_t_ns = ?, state = 'stopping' "
                                   "WHERE event_id = ? AND state != 'closed'", (int(stop_t_ns), event_id)))
        if n == 0:
            row = self._event_row(event_id)
            why = "it is not recorded" if row is None else "it is already closed"
            raise StoreError(f"cannot {doing}: {why} in {self.path}")

    @_locked
    def finish_event(self, result: EventResult) -> None:
        """Record an event's published summary (committed on return); the event is then closed.

        An event that was never opened in this store (e.g. started before the store was configured) is
        recorded as closed.
        """
        self._ensure_open()
        self._write(
            f"record the summary of event {result.event_id} on bed {result.bed}",
            ("INSERT INTO events (event_id, bed, start_t_ns, stop_t_ns, state, windows, p_tle, label, bundle_id, "
             "opened_ns, closed_ns, report) VALUES (:event_id, :bed, :start, :stop, 'closed', :windows, :p, "
             ":label, :bundle, :now, :now, :report) "
             "ON CONFLICT (event_id) DO UPDATE SET stop_t_ns = :stop, state = 'closed', windows = :windows, "
             "p_tle = :p, label = :label, bundle_id = :bundle, closed_ns = :now, report = :report",
             {"event_id": result.event_id, "bed": result.bed, "start": int(result.start_t_ns),
              "stop": int(result.stop_t_ns), "windows": int(result.windows),
              "p": None if result.p_tle is None else float(result.p_tle), "label": result.label,
              "bundle": result.bundle_id, "now": time.time_ns(), "report": result.report}),
        )

    @_locked
    def prune(self, now_ns: int | None = None, limit: int | None = None) -> int:
        """Delete what is older than ``retention_days`` before ``now_ns`` (default: now); see the module
        docstring for the rule. Unfinished events and their windows are kept. Returns the rows deleted
        (windows + events); 0 when retention is off. Uses the ``*_written``/``*_closed`` indexes: the cost
        is proportional to the rows deleted (~10 us a row on a 2-core VM).

        ``limit``: delete at most this many windows per rule in this call (one short transaction; an
        expired event goes once its windows are gone). A return value ``>= limit`` means there may be
        more: call again. The scorer prunes in such slices between its turns, so an hour of 64 beds
        (115,000 windows) never stalls it for a second.
        """
        self._ensure_open()
        if self.retention_days is None:
            return 0
        now = time.time_ns() if now_ns is None else int(now_ns)
        params = {"cutoff": max(now - int(self.retention_days * NS_PER_DAY), -(2**63)), "limit": limit or -1}
        loose, of_events, events = self._write(
            "prune old results",
            # windows outside any retained event (no event, or an event already pruned or never recorded)
            ("DELETE FROM windows WHERE id IN (SELECT id FROM windows WHERE written_ns < :cutoff AND "
             "(event_id IS NULL OR event_id NOT IN "
             "(SELECT event_id FROM events WHERE state != 'closed' "
             " UNION ALL SELECT event_id FROM events WHERE state = 'closed' AND closed_ns >= :cutoff)) "
             "LIMIT :limit)", params),
            # the windows of closed events that expire now, whatever their own age
            ("DELETE FROM windows WHERE id IN (SELECT id FROM windows WHERE event_id IN "
             "(SELECT event_id FROM events WHERE state = 'closed' AND closed_ns < :cutoff) LIMIT :limit)", params),
            ("DELETE FROM events WHERE state = 'closed' AND closed_ns < :cutoff AND NOT EXISTS "
             "(SELECT 1 FROM windows WHERE windows.event_id = events.event_id)", params),
        )
        return loose + of_events + events

    @_locked
    def reclaim(self, max_pages: int | None = None) -> dict[str, int]:
        """Give back the space :meth:`prune` freed: with incremental auto-vacuum (every file created by
        this version) the free pages are removed from the file; then the WAL is checkpointed and
        truncated (skipped while a reader holds an old snapshot; retried at the next pass).

        A file created before auto-vacuum was on keeps its size: SQLite reuses its free pages for new
        rows, so it does not grow while retention removes as much as is added; shrinking it takes one
        ``VACUUM`` with the scorer stopped (see docs/results-database.md).

        ``max_pages``: give back at most this many pages (4 KiB each) in this call; the rest stays free
        inside the file (reused by new rows) until the next call.

        Returns ``{"freed_pages", "file_pages", "wal_busy"}`` (``wal_busy`` 1 when the checkpoint could
        not complete).
        """
        self._ensure_open()
        c = self._conn
        try:
            free = c.execute("PRAGMA freelist_count").fetchone()[0]
            if free and c.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # 2 = incremental
                n = "" if max_pages is None else f"({int(max_pages)})"
                c.executescript(f"PRAGMA incremental_vacuum{n};")  # steps to the end (execute frees one page)
                free = free - c.execute("PRAGMA freelist_count").fetchone()[0]
            else:
                free = 0
            busy = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            pages = c.execute("PRAGMA page_count").fetchone()[0]
        except sqlite3.Error as e:
            raise self._error("reclaim free space", e) from None
        return {"freed_pages": int(free), "file_pages": int(pages), "wal_busy": int(busy)}

    # ------------------------------------------------------------------ reads
    def _ensure_open(self) -> None:
        if self._conn is None:
            raise StoreError(f"results database {self.path} is closed")

    def _event_row(self, event_id: str) -> sqlite3.Row | None:
        rows = self._read(f"read event {event_id}", "SELECT * FROM events WHERE event_id = ?", (event_id,))
        return rows[0] if rows else None

    @_locked
    def unfinished_events(self) -> list[StoredEvent]:
        """Events opened or stopping but never finished, oldest first, with their recorded windows' p(TLE).

        A restarted scorer restores these: open ones keep collecting windows; stopping ones (their pending
        windows died with the old process) can be finished at once with the windows recorded.
        """
        self._ensure_open()
        out = []
        with self._snapshot("list unfinished events"):
            events = self._read("list unfinished events",
                                "SELECT event_id, bed, start_t_ns, stop_t_ns FROM events WHERE state != 'closed' "
                                "ORDER BY start_t_ns, event_id")
            for e in events:
                probs = self._read(f"read the windows of event {e['event_id']}",
                                   "SELECT p_tle FROM windows WHERE event_id = ? ORDER BY id", (e["event_id"],))
                out.append(StoredEvent(bed=e["bed"], event_id=e["event_id"], start_t_ns=e["start_t_ns"],
                                       stop_t_ns=e["stop_t_ns"], probs=[r["p_tle"] for r in probs]))
        return out

    @_locked
    def events(self, bed: str | None = None, since_ns: int | None = None, until_ns: int | None = None,
               limit: int | None = None) -> list[dict[str, Any]]:
        """Events whose start time is in ``[since_ns, until_ns)`` (either end open when None), of ``bed``
        or every bed, oldest first; ``limit`` keeps the most recent ``limit`` of them.

        Each dict has the ``events`` columns (``event_id, bed, start_t_ns, stop_t_ns, state, windows, p_tle,
        label, bundle_id, opened_ns, closed_ns``). For an event not yet closed, ``windows`` counts the
        windows recorded so far and ``p_tle``/``label`` are None (the summary is not final).
        """
        self._ensure_open()
        if limit is not None and limit < 1:
            raise ValueError(f"limit={limit} must be at least 1 (or None for all)")
        where, params = [], {}
        if bed is not None:
            where.append("bed = :bed")
            params["bed"] = bed
        if since_ns is not None:
            where.append("start_t_ns >= :since")
            params["since"] = int(since_ns)
        if until_ns is not None:
            where.append("start_t_ns < :until")
            params["until"] = int(until_ns)
        columns = [c if c != "report" or self._version >= 2 else "NULL AS report" for c in _EVENT_COLUMNS]
        sql = (f"SELECT {', '.join(columns)} FROM events"
               + (f" WHERE {' AND '.join(where)}" if where else "")
               + " ORDER BY start_t_ns DESC, event_id DESC")
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = int(limit)
        with self._snapshot("list events"):
            rows = [dict(r) for r in reversed(self._read("list events", sql, params))]
            for r in rows:
                if r["state"] != "closed":
                    (n,) = self._read(f"count the windows of event {r['event_id']}",
                                      "SELECT count(*) FROM windows WHERE event_id = ?", (r["event_id"],))[0]
                    r["windows"] = n
        return rows

    @_locked
    def windows(self, event_id: str) -> list[dict[str, Any]]:
        """The window rows recorded for ``event_id``, in the order they were written (empty if none)."""
        self._ensure_open()
        return [dict(r) for r in self._read(
            f"list the windows of event {event_id}",
            f"SELECT {', '.join(_WINDOW_COLUMNS)} FROM windows WHERE event_id = ? ORDER BY id", (event_id,))]

    @_locked
    def has_event(self, event_id: str) -> bool:
        """True when ``event_id`` is recorded (in any state)."""
        self._ensure_open()
        return self._event_row(event_id) is not None

    @_locked
    def counts(self) -> dict[str, int]:
        """Rows per table and unfinished events (for status and metrics)."""
        self._ensure_open()
        (row,) = self._read("count rows", "SELECT (SELECT count(*) FROM windows) AS windows, "
                                          "(SELECT count(*) FROM events) AS events, "
                                          "(SELECT count(*) FROM events WHERE state != 'closed') AS unfinished")
        return dict(row)
