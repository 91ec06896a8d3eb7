"""INPUTS -> jobs: files, recursive folders (every supported format, frame folders), manifests."""

from __future__ import annotations

import numpy as np
import pytest

from semiostream.archive.inputs import Job, dedupe, expand_inputs, scan_folder
from semiostream.dali_pipes.writers import write_frames
from semiostream.errors import UserError


def _npy(path, n=12):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.full((n, 8, 10), 1000, np.uint16))
    return path


def test_folder_scan_finds_every_format_and_skips_the_rest(tmp_path):
    root = tmp_path / "archive"
    a = _npy(root / "2024" / "a.npy")
    mkv = write_frames(root / "2024" / "b.mkv", np.full((10, 8, 10), 900, np.uint16), 30.0, "mkv")
    frames = write_frames(root / "2025" / "frames_c", np.full((10, 8, 10), 900, np.uint16), 30.0, "png")
    (root / "README.txt").write_text("not a video")
    (root / "notes.csv").write_text("a,b\n")
    _npy(root / ".hidden" / "h.npy")
    _npy(root / "old.parquet.parts" / "x.npy")  # a work folder of an earlier run
    _npy(root / ".cache.npy")
    found = scan_folder(root)
    assert found == sorted([a, mkv, frames])
    jobs = expand_inputs([root])
    assert [j.path for j in jobs] == sorted([a, mkv, frames])
    assert all(j.stream == "ir" and j.onset is None and j.patient_id is None for j in jobs)


def test_manifest_rows_become_segments_with_their_metadata(tmp_path):
    _npy(tmp_path / "v1.npy", 40)
    _npy(tmp_path / "v2.npy", 40)
    (tmp_path / "m.csv").write_text(
        "path,patient_id,seizure_id,label,onset,offset,roi,fps\n"
        "v1.npy,P1,S1,TLE,0.5,1.25,1 1 9 7,15\n"
        "v2.npy,P2,S1,fle,,,,\n"
        "missing.npy,P3,S1,FLE,,,,\n"  # kept: it becomes an error row when scored
    )
    jobs = expand_inputs([tmp_path / "m.csv"])
    by_name = {j.path.name: j for j in jobs}
    assert set(by_name) == {"v1.npy", "v2.npy", "missing.npy"}
    j1 = by_name["v1.npy"]
    assert (j1.onset, j1.offset, j1.roi, j1.fps, j1.patient_id, j1.seizure_id, j1.label) == \
        (0.5, 1.25, (1, 1, 9, 7), 15.0, "P1", "S1", "TLE")
    assert j1.input_id == f"{tmp_path / 'v1.npy'}@0.5-1.25s"
    assert by_name["v2.npy"].input_id == str(tmp_path / "v2.npy") and by_name["v2.npy"].label == "FLE"
    assert [j.input_id for j in jobs] == sorted(j.input_id for j in jobs)


def test_input_id_names_stream_and_open_segments(tmp_path):
    assert Job(tmp_path / "x.mkv", "depth").input_id == f"{tmp_path / 'x.mkv'}#depth"
    assert Job(tmp_path / "x.mkv", onset=2.0).input_id == f"{tmp_path / 'x.mkv'}@2-s"
    assert Job(tmp_path / "x.mkv", offset=3.5).input_id == f"{tmp_path / 'x.mkv'}@-3.5s"


def test_duplicates_are_scored_once(tmp_path):
    a = _npy(tmp_path / "a.npy")
    jobs = expand_inputs([a, tmp_path, a])
    assert [j.path for j in jobs] == [a]
    assert len(dedupe([Job(a), Job(a, fps=10.0), Job(a, onset=1.0)])) == 2


@pytest.mark.parametrize("name, message", [
    ("nope.mkv", "does not exist"),
    ("notes.txt", "unsupported file type '.txt'"),
    ("empty_dir", "holds no supported videos"),
    ("bad.csv", "missing column"),
])
def test_bad_inputs_are_user_errors(tmp_path, name, message):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "bad.csv").write_text("file,label\nx.npy,FLE\n")
    with pytest.raises(UserError, match=message):
        expand_inputs([tmp_path / name])
