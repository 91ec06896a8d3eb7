"""The work folder ``<out>.parts/``: one atomic chunk per finished input plus a completion manifest.

Layout::

    <out>.parts/
        lock            held (flock) by the one run writing here
        done.jsonl      completion manifest: one JSON line per finished input {"key", "input_id", "status", "windows"}
        chunks/<key>.json   that input's rows: {"format": 1, "key", "input": {...}, "windows": {column: [...]}}
        hashes.json     content-hash memo (see :mod:`.identity`)

Exactly-once protocol: a chunk is written atomically (:func:`semiostream.core.files.atomic_write`: a temporary
file, fsynced, moved into place with ``os.replace``); only then is its line appended to ``done.jsonl`` (and
fsynced). An input counts as done only when its line is complete *and* its chunk exists, so a run killed at
any instant leaves either nothing for that input (it is scored again) or a whole chunk (it is reused); a
chunk without a line is simply rewritten.
A partial last line left by a kill is cut off when the folder is opened again. Chunk files are keyed by the
input's result key, so re-scoring an input replaces its chunk instead of adding a second one.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semiostream.core.errors import UserError
from semiostream.core.files import atomic_write

log = logging.getLogger(__name__)

CHUNK_FORMAT = 1


@dataclass(frozen=True)
class DoneEntry:
    """One line of ``done.jsonl``."""

    key: str
    input_id: str
    status: str  # "ok" or "error"
    windows: int


def parts_dir_for(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".parts")


class PartsStore:
    """The work folder of one output (see the module docstring). Use as a context manager (holds the lock).

    Raises:
        UserError: another process is writing to the same folder.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.chunks = self.root / "chunks"
        self.chunks.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.root / "lock", "a+")  # noqa: SIM115 - held for the store's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise UserError(f"another `semiostream score` is writing {self.root}; wait for it to finish "
                            "(or kill it) and run again") from None
        self._done_path = self.root / "done.jsonl"
        self._done: dict[str, DoneEntry] = self._load_done()
        for tmp in self.chunks.glob(".*.tmp"):  # left by a killed run; never counted
            tmp.unlink(missing_ok=True)
        self._done_file = open(self._done_path, "ab")  # noqa: SIM115

    def _load_done(self) -> dict[str, DoneEntry]:
        if not self._done_path.exists():
            return {}
        data = self._done_path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a kill in the middle of an append: drop the partial line
            log.info("dropping a partial line at the end of %s", self._done_path)
            with open(self._done_path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        done: dict[str, DoneEntry] = {}
        for line in data[:end].splitlines():
            try:
                d = json.loads(line)
                done[d["key"]] = DoneEntry(d["key"], d["input_id"], d["status"], int(d["windows"]))
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring an unreadable line of %s", self._done_path)
        return done

    # ----------------------------------------------------------------------------------------------
    def chunk_path(self, key: str) -> Path:
        return self.chunks / f"{key}.json"

    def is_done(self, key: str) -> DoneEntry | None:
        """The entry if ``key`` is finished and its chunk is present, else None."""
        e = self._done.get(key)
        return e if e is not None and self.chunk_path(key).is_file() else None

    def write(self, key: str, input_row: dict[str, Any], windows: dict[str, list]) -> None:
        """Persist one finished input (its inputs-table row and its windows-table columns) exactly once."""
        chunk = {"format": CHUNK_FORMAT, "key": key, "input": input_row, "windows": windows}
        blob = json.dumps(chunk, allow_nan=False).encode()
        atomic_write(self.chunk_path(key), lambda f: f.write(blob))
        entry = DoneEntry(key, input_row["input_id"], "error" if input_row.get("error") else "ok",
                          int(input_row.get("windows") or 0))
        self._done_file.write(json.dumps(entry.__dict__).encode() + b"\n")
        self._done_file.flush()
        os.fsync(self._done_file.fileno())
        self._done[key] = entry

    def read(self, key: str) -> tuple[dict[str, Any], dict[str, list]]:
        """``(input_row, window_columns)`` of a finished input."""
        p = self.chunk_path(key)
        try:
            chunk = json.loads(p.read_bytes())
            if chunk.get("format") != CHUNK_FORMAT or chunk.get("key") != key:
                raise ValueError(f"format {chunk.get('format')}, key {chunk.get('key')}")
            return chunk["input"], chunk["windows"]
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"chunk {p} is unreadable ({e}); delete it and run the same command again to "
                            "re-score that input") from e

    # ----------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._done_file.close()
        self._lock_file.close()  # releases the flock

    def __enter__(self) -> PartsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
