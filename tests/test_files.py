"""semiostream.core.files: the one atomic replace and the one file hash."""

from __future__ import annotations

import hashlib
import os
import stat

import numpy as np
import pytest

from semiostream.core.files import atomic_write, replacing, sha256_of


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_bytes_text_and_writer_exactly(tmp_path):
    target = tmp_path / "sub" / "x.bin"  # the folder is created
    blob = bytes(range(256)) * 1000
    assert atomic_write(target, blob) == target
    assert target.read_bytes() == blob
    atomic_write(target, "é\n")
    assert target.read_bytes() == "é\n".encode()
    atomic_write(target, lambda f: np.save(f, np.arange(5, dtype=np.uint16)))
    np.testing.assert_array_equal(np.load(target), np.arange(5, dtype=np.uint16))
    assert _leftovers(target.parent) == []
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # a new file's usual mode, not mkstemp's 0600


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")

    def half_then_fail(f):
        f.write(b'{"half": ')
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), replacing(target) as tmp:
        tmp.write_text("new")
        raise KeyboardInterrupt
    with pytest.raises(FileNotFoundError), replacing(target):
        pass  # a writer that wrote nothing fails, the target stays
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_replacing_gives_a_path_beside_the_target_keeping_its_suffix_when_asked(tmp_path):
    target = tmp_path / "clip.npy"
    with replacing(target, keep_suffix=True) as tmp:
        assert tmp.parent.parent == tmp_path and tmp.name == ".clip.npy.tmp.npy"
        assert not target.exists()
        np.save(tmp, np.ones(3, np.uint16))  # np.save would append .npy to any other name
    np.testing.assert_array_equal(np.load(target), np.ones(3, np.uint16))
    with replacing(tmp_path / "plain.json") as tmp:
        assert tmp.name == ".plain.json.tmp"  # a fixed name (torch.save names its records after it)
        tmp.write_text("{}")
    assert _leftovers(tmp_path) == []


def test_sha256_of_matches_hashlib_across_chunks(tmp_path):
    data = np.random.default_rng(0).bytes(3 * 1024 + 17)
    (tmp_path / "f").write_bytes(data)
    assert sha256_of(tmp_path / "f", chunk=1024) == sha256_of(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_of(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_file_kind_names_what_a_path_is_without_opening_it(tmp_path):
    from semiostream.core.files import file_kind

    (tmp_path / "f").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert [file_kind(tmp_path / n) for n in ("f", "pipe", "dangling", "loop", "nowhere")] == [
        "file", "a FIFO (named pipe)", "a dangling symbolic link", "a symbolic link loop", "missing"]
    assert file_kind(tmp_path) == "folder" and file_kind("/dev/null") == "a character device"
