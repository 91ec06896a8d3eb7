"""Files: one atomic replace, one content hash and one file kind for the whole project. Imports nothing of this project.

A file is replaced atomically in one way: the new content goes to a temporary file beside the target
(same file system, so ``os.replace`` is a rename), is fsynced, renamed over the target, and the directory
is fsynced, so a reader or a crash (process or power) sees the old file or the new one, never half of one.
On an exception the temporary file is removed and the target is untouched. :func:`atomic_write` takes
bytes, text or a function writing a file object; :func:`replacing` gives a path to writers that need one.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@functools.cache
def _umask() -> int:
    """The process umask: read from /proc where it can be (no side effect), else set and restored once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory (makes a rename in it durable); silently skipped where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _put_in_place(tmp: Path, path: Path, durable: bool) -> None:
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions of a new file
    if durable:
        _fsync_file(tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, durable: bool = True, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path for a writer that wants a file name (PyAV, ``np.save``, PIL, ``torch.save``...).

    The path is ``.NAME.tmp`` (``keep_suffix``: followed by ``path``'s suffix, for writers that choose the
    format by it) inside a private hidden folder beside ``path``: unique, yet a fixed file name (``torch.save``
    names its records after it, so the bytes do not depend on the temporary name). When the block ends
    normally the file gets a new file's usual permissions, is fsynced (``durable``), renamed over ``path``
    and the directory is fsynced (``durable``); when it raises the temporary folder is removed and ``path``
    is untouched. ``durable=False`` only for many small files whose loss on power failure is harmless
    (frames of an image folder being written).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    tmp = scratch / (f".{path.name}.tmp" + (path.suffix if keep_suffix else ""))
    try:
        yield tmp
        _put_in_place(tmp, path, durable)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    scratch.rmdir()
    if durable:
        fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[IO[bytes]], Any],
                 encoding: str = "utf-8") -> Path:
    """Replace ``path`` atomically by ``data``: bytes, text (``encoding``), or a function ``write(binary_file)``
    that writes the content. The temporary file is ``.NAME.RANDOM.tmp`` beside ``path``; it is fsynced and
    renamed over ``path``, then the directory is fsynced; on an exception it is removed and ``path`` is
    untouched. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode(encoding) if isinstance(data, str) else data)
        _put_in_place(tmp, path, durable=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_kind(path: str | os.PathLike) -> str:
    """What ``path`` is, following symbolic links, without opening it: ``"file"`` (regular), ``"folder"``,
    ``"missing"``, or a description of anything else (``"a FIFO (named pipe)"``, ``"a character device"``,
    ``"a symbolic link loop"`` ...). Opening a FIFO or a device for reading can block forever or never end,
    so readers open regular files (and folders of them) only."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a dangling symbolic link" if os.path.islink(path) else "missing"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop"
        return f"unreadable ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a regular file"
