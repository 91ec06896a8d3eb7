"""The work folder: atomic chunks, completion manifest, kills at every step, one writer at a time."""

from __future__ import annotations

import json
import os

import pytest

from semiostream.archive.writer import PartsStore, parts_dir_for
from semiostream.core.errors import UserError
from semiostream.core.files import atomic_write

ROW = {"input_id": "/v/a.mkv", "windows": 2, "error": None}
WIN = {"window": [0, 1], "p_tle": [0.25, 0.5]}


def test_parts_dir_sits_beside_the_output(tmp_path):
    assert parts_dir_for(tmp_path / "r.parquet") == tmp_path / "r.parquet.parts"


def test_written_chunk_is_done_and_reads_back_exactly(tmp_path):
    with PartsStore(tmp_path / "p") as store:
        assert store.is_done("k1") is None
        store.write("k1", ROW, WIN)
        assert store.is_done("k1").status == "ok"
        assert store.read("k1") == (ROW, WIN)
    with PartsStore(tmp_path / "p") as store:  # a new run sees it
        assert store.is_done("k1").windows == 2
        store.write("k2", {**ROW, "input_id": "/v/b.mkv", "windows": 0, "error": "corrupt"}, {})
    with PartsStore(tmp_path / "p") as store:
        assert store.is_done("k2").status == "error"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "p" / "chunks" / "k1.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_kill_between_chunk_and_manifest_line_is_not_done(tmp_path):
    with PartsStore(tmp_path / "p") as store:
        store.write("k1", ROW, WIN)
    # killed after the chunk was moved into place but before its line was appended
    (tmp_path / "p" / "chunks" / "k2.json").write_text(json.dumps({"format": 1, "key": "k2", "input": ROW,
                                                                   "windows": WIN}))
    # killed in the middle of appending the line of k3
    with open(tmp_path / "p" / "done.jsonl", "ab") as f:
        f.write(b'{"key": "k3", "input_id": "/v/c.mk')
    # killed while writing a chunk's temporary file
    (tmp_path / "p" / "chunks" / ".k4.json.abc.tmp").write_text('{"format": 1, "ke')
    with PartsStore(tmp_path / "p") as store:
        assert store.is_done("k1") is not None
        assert store.is_done("k2") is None and store.is_done("k3") is None
        assert not list((tmp_path / "p" / "chunks").glob(".*.tmp"))
        store.write("k3", {**ROW, "input_id": "/v/c.mkv"}, WIN)  # the next append starts on a fresh line
    lines = (tmp_path / "p" / "done.jsonl").read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["k1", "k3"]


def test_done_line_without_chunk_is_not_done(tmp_path):
    with PartsStore(tmp_path / "p") as store:
        store.write("k1", ROW, WIN)
    os.remove(tmp_path / "p" / "chunks" / "k1.json")
    with PartsStore(tmp_path / "p") as store:
        assert store.is_done("k1") is None


def test_second_writer_is_refused(tmp_path):
    with PartsStore(tmp_path / "p"), pytest.raises(UserError, match="another `semiostream score`"):
        PartsStore(tmp_path / "p")
    PartsStore(tmp_path / "p").close()  # free again once the first one closed


def test_atomic_write_failure_leaves_no_file(tmp_path):
    def boom(f):
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "x.json", boom)
    assert list(tmp_path.iterdir()) == []


def test_unreadable_chunk_says_how_to_recover(tmp_path):
    with PartsStore(tmp_path / "p") as store:
        store.write("k1", ROW, WIN)
        (tmp_path / "p" / "chunks" / "k1.json").write_text("{not json")
        with pytest.raises(UserError, match="delete it and run the same command again"):
            store.read("k1")
