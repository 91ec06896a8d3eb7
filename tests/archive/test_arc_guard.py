"""What `semiostream score` opens: regular files and frame folders only (FIFOs, devices, sockets and symbolic
link loops become error rows, unopened), and frames of a sane size only. Real FIFOs, sockets, symbolic
links and /dev/zero in tmp_path; every call that could block runs with a deadline, so a regression fails
instead of hanging the suite."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
from arc_helpers import FAST

from semiostream.archive.guard import MAX_FRAME_PIXELS, MIN_FRAME_SIDE, refusal
from semiostream.archive.inputs import expand_inputs, scan_folder
from semiostream.archive.output import inputs_path, read_table
from semiostream.archive.plan import PlanError, plan_job
from semiostream.core.errors import UserError
from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.core.segment import Segment
from semiostream.sources.readers import open_source
from semiostream.sources.source import SourceError

SPEC = PreprocessSpec(window=16, fps=15, min_frames=9)


def _within(seconds, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a daemon thread: (value, exception); fails if still running after
    ``seconds`` (e.g. blocked opening a FIFO) instead of hanging."""
    box: list = []

    def target():
        try:
            box.append((fn(*args, **kwargs), None))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box.append((None, e))

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{getattr(fn, '__name__', fn)} still running after {seconds} s (blocked?)"
    return box[0]


def _npy(path, shape=(20, 48, 64), value=1000):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.full(shape, value, np.uint16))
    return path


@pytest.fixture
def specials(tmp_path):
    """Name -> path of one of each thing that must never be opened, all with video suffixes."""
    d = tmp_path / "specials"
    d.mkdir()
    os.mkfifo(d / "pipe.npy")
    os.mkfifo(d / "pipe.mkv")
    (d / "zero.npy").symlink_to("/dev/zero")
    (d / "zero.mkv").symlink_to("/dev/zero")
    (d / "loop.mkv").symlink_to(d / "loop.mkv")
    (d / "loop_a.npy").symlink_to(d / "loop_b.npy")
    (d / "loop_b.npy").symlink_to(d / "loop_a.npy")
    (d / "fifo_link.mkv").symlink_to(d / "pipe.mkv")
    return d


@pytest.fixture
def unix_socket():
    """A bound AF_UNIX socket named ``s.npy`` (in a short /tmp folder: socket paths are limited to ~100 bytes)."""
    d = tempfile.mkdtemp(prefix="sock", dir="/tmp")
    path = os.path.join(d, "s.npy")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    yield path
    s.close()
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("name, what", [
    ("pipe.npy", "is a FIFO (named pipe), not a regular file"),
    ("zero.npy", "is a character device (a symbolic link to /dev/zero), not a regular file"),
    ("zero.mkv", "is a character device (a symbolic link to /dev/zero), not a regular file"),
    ("loop.mkv", "is a symbolic link loop, not a regular file"),
    ("loop_a.npy", "is a symbolic link loop, not a regular file"),
    ("fifo_link.mkv", "is a FIFO (named pipe) (a symbolic link to "),
])
def test_refusal_names_what_the_input_is(specials, name, what):
    assert what in refusal(specials / name)
    value, err = _within(10, open_source, specials / name)  # the readers refuse it too, without blocking
    assert isinstance(err, SourceError) and "not a regular file" in str(err), (value, err)


def test_regular_files_folders_and_links_to_them_are_opened(tmp_path, unix_socket):
    a = _npy(tmp_path / "a.npy")
    (tmp_path / "link.npy").symlink_to(a)
    assert refusal(a) is None and refusal(tmp_path / "link.npy") is None and refusal(tmp_path) is None
    assert "is a socket" in refusal(unix_socket)
    assert "is a character device" in refusal("/dev/null")
    assert refusal(tmp_path / "gone.npy").startswith("no such file")
    (tmp_path / "dangling.npy").symlink_to(tmp_path / "gone.npy")
    assert refusal(tmp_path / "dangling.npy") == "is a dangling symbolic link, not a regular file; fix or remove the link"


def test_specials_are_jobs_wherever_they_are_listed(specials, tmp_path):
    """Given directly, met in a folder, or named by a manifest row: a job (an error row later), not a crash."""
    _npy(specials / "good.npy")
    (tmp_path / "m.csv").write_text("path,patient_id,seizure_id,label\n"
                                    f"{specials / 'loop.mkv'},P1,S1,FLE\n"
                                    f"{specials / 'pipe.npy'},P1,S2,TLE\n"
                                    f"{specials / 'good.npy'},P1,S3,TLE\n")
    found, err = _within(10, scan_folder, specials)
    assert err is None and {p.name for p in found} == {"pipe.npy", "pipe.mkv", "zero.npy", "zero.mkv", "loop.mkv",
                                                        "loop_a.npy", "loop_b.npy", "fifo_link.mkv", "good.npy"}
    jobs, err = _within(10, expand_inputs, [specials / "loop.mkv", specials / "loop_a.npy", tmp_path / "m.csv"])
    assert err is None, err
    assert sorted(j.path.name for j in jobs) == ["good.npy", "loop.mkv", "loop_a.npy", "pipe.npy"]
    assert all(j.path.is_absolute() for j in jobs)


def test_a_manifest_that_is_a_fifo_or_a_loop_is_a_user_error(tmp_path):
    os.mkfifo(tmp_path / "m.csv")
    _, err = _within(10, expand_inputs, [tmp_path / "m.csv"])
    assert isinstance(err, UserError) and "is a FIFO (named pipe), not a regular file" in str(err)
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    _, err = _within(10, expand_inputs, [tmp_path / "loop.csv"])
    assert isinstance(err, UserError) and "is a symbolic link loop" in str(err)


def test_tiny_frames_are_refused_before_any_window_is_planned(tmp_path):
    tiny = _npy(tmp_path / "tiny.npy", (100_000, 2, 2))
    t0 = time.perf_counter()
    with pytest.raises(PlanError, match=f"frames are 2x2 pixels, below the minimum of {MIN_FRAME_SIDE} pixels"):
        plan_job(Segment(tiny), "k", "sha", SPEC)
    assert time.perf_counter() - t0 < 5
    narrow = _npy(tmp_path / "narrow.npy", (20, 480, MIN_FRAME_SIDE - 1))
    with pytest.raises(PlanError, match=f"480x{MIN_FRAME_SIDE - 1}|{MIN_FRAME_SIDE - 1}x480"):
        plan_job(Segment(narrow), "k", "sha", SPEC)
    edge = _npy(tmp_path / "edge.npy", (20, MIN_FRAME_SIDE, MIN_FRAME_SIDE))
    assert plan_job(Segment(edge), "k", "sha", SPEC).num_windows == 1  # the minimum itself is scored
    ok = _npy(tmp_path / "ok.npy", (20, 48, 64))
    with pytest.raises(PlanError, match="the manifest roi's crops are 8x8 pixels, below the minimum .* widen the roi"):
        plan_job(Segment(ok, roi=(0, 0, 8, 8)), "k", "sha", SPEC)


def test_huge_frames_are_refused_from_the_header(tmp_path):
    side = int(MAX_FRAME_PIXELS ** 0.5) + 1
    huge = np.lib.format.open_memmap(tmp_path / "huge.npy", mode="w+", dtype=np.uint16, shape=(1, side, side))
    del huge  # a sparse file: only its header is read
    with pytest.raises(PlanError, match=f"frames are {side}x{side} pixels, more than the"):
        plan_job(Segment(tmp_path / "huge.npy"), "k", "sha", SPEC)


def test_score_turns_every_special_into_an_error_row_and_scores_the_rest(arc_clips, arc_bundle, specials, tmp_path,
                                                                         unix_socket):
    """The issue's archive: a FIFO and a /dev/zero link inside a scanned folder, a link loop as an input and as
    a manifest row, 100,000 frames of 2x2 pixels. A real `semiostream score` process, bounded in time."""
    good = sorted(arc_clips.glob("*.mkv"))[0]
    shutil.copy(good, specials / "good.mkv")
    _npy(specials / "tiny.npy", (100_000, 2, 2))
    manifest = tmp_path / "m.csv"
    (tmp_path / "row_loop.npy").symlink_to(tmp_path / "row_loop.npy")
    manifest.write_text("path,patient_id,seizure_id,label\nrow_loop.npy,P9,S1,FLE\n")
    out = tmp_path / "res.csv"
    cmd = [sys.executable, "-m", "semiostream.cli", "score", str(specials), str(specials / "loop.mkv"),
           str(manifest), unix_socket, "--bundle", str(arc_bundle), "--out", str(out), *FAST]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    videos = {v["path"].rsplit("/", 1)[1]: v for v in read_table(inputs_path(out))}
    errors = {name: v["error"] for name, v in videos.items() if v["error"]}
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert set(videos) == {"good.mkv", "tiny.npy", "pipe.npy", "pipe.mkv", "zero.npy", "zero.mkv", "loop.mkv",
                           "loop_a.npy", "loop_b.npy", "fifo_link.mkv", "row_loop.npy", "s.npy"}
    assert set(errors) == set(videos) - {"good.mkv"} and videos["good.mkv"]["windows"] == 2
    assert proc.returncode == 2 + len(errors), proc.stdout[-3000:]
    assert errors["pipe.npy"].startswith("is a FIFO (named pipe), not a regular file")
    assert errors["zero.mkv"].startswith("is a character device (a symbolic link to /dev/zero)")
    assert errors["loop.mkv"].startswith("is a symbolic link loop")
    assert errors["row_loop.npy"].startswith("is a symbolic link loop") and videos["row_loop.npy"]["patient_id"] == "P9"
    assert errors["s.npy"].startswith("is a socket")
    assert errors["tiny.npy"].startswith(f"frames are 2x2 pixels, below the minimum of {MIN_FRAME_SIDE}")
    assert len(read_table(out)) == 2  # the good clip's windows only


def test_a_frame_folder_with_a_fifo_and_a_device_among_its_frames_is_hashed_and_planned(tmp_path):
    from semiostream.archive.identity import ContentHashes
    from semiostream.sources.writers import write_frames

    frames = write_frames(tmp_path / "frames", np.full((20, 48, 64), 900, np.uint16), 30.0, "png")
    clean, err = _within(30, ContentHashes(tmp_path / "work").sha256, frames)
    assert err is None, err
    os.mkfifo(frames / "frame_99998.png")
    (frames / "frame_99999.png").symlink_to("/dev/zero")
    (frames / "loop.png").symlink_to(frames / "loop.png")
    sha, err = _within(30, ContentHashes(tmp_path / "work2").sha256, frames)
    assert err is None and sha == clean, err  # only the regular frames are read
    plan, err = _within(30, plan_job, Segment(frames), "k", "sha", SPEC)
    assert err is None and plan.num_frames == 20, err
