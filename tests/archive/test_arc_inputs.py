"""INPUTS -> jobs: files, recursive folders (every supported format, frame folders), manifests."""

from __future__ import annotations

import numpy as np
import pytest

from semiostream.archive.inputs import dedupe, expand_inputs, scan_folder
from semiostream.core.errors import UserError
from semiostream.core.segment import Segment
from semiostream.sources.writers import write_frames


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
    assert Segment(tmp_path / "x.mkv", "depth").input_id == f"{tmp_path / 'x.mkv'}#depth"
    assert Segment(tmp_path / "x.mkv", onset=2.0).input_id == f"{tmp_path / 'x.mkv'}@2-s"
    assert Segment(tmp_path / "x.mkv", offset=3.5).input_id == f"{tmp_path / 'x.mkv'}@-3.5s"


def test_duplicates_are_scored_once(tmp_path):
    a = _npy(tmp_path / "a.npy")
    jobs = expand_inputs([a, tmp_path, a])
    assert [j.path for j in jobs] == [a]
    assert len(dedupe([Segment(a), Segment(a, fps=10.0), Segment(a, onset=1.0)])) == 2


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


def _pngs(folder, names, value=900):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.fromarray(np.full((8, 10), value, np.uint16)).save(folder / n)
    return folder


def test_stray_previews_beside_videos_are_skipped_not_inputs(tmp_path):
    """The layout a user met: two preview PNGs beside the recordings became a bogus frame-folder input."""
    root = tmp_path / "ward"
    a = _npy(root / "bed1.npy")
    b = write_frames(root / "bed2.mkv", np.full((10, 8, 10), 900, np.uint16), 30.0, "mkv")
    _pngs(root, ["bed1_preview.png", "bed2_preview.png"])
    skipped = []
    assert scan_folder(root, skipped) == [a, b]
    assert skipped == [(root, "its 2 images lie beside video files (bed1.npy, bed2.mkv): images next to "
                              "recordings are previews, not frames")]
    assert [j.path for j in expand_inputs([root])] == [a, b]


@pytest.mark.parametrize("names, other, problem", [
    ([f"frame_{i:06d}.png" for i in range(9)], ["README.txt", "times.csv"], None),
    ([f"{i}.tif" for i in range(1, 13)], [], None),
    ([f"frame_{i:06d}.png" for i in range(8)], [], "its 8 images are fewer than the 9 frames"),
    ([f"frame_{i:06d}.png" for i in range(9)] + ["cover.png"], [], "image 'cover.png' has no frame number"),
    ([f"cam_{i:04d}.png" for i in range(9)] + ["cam_0003_small.png"], [],
     "images 'cam_0003.png' and 'cam_0003_small.png' have the same frame number 3"),
    ([f"frame_{i:06d}.png" for i in range(9)], ["clip.mp4"], "lie beside video files (clip.mp4)"),
])
def test_one_rule_for_what_a_frame_folder_is(tmp_path, names, other, problem):
    from semiostream.sources.read_images import frame_folder_problem
    from semiostream.sources.readers import SourceError, open_source

    folder = _pngs(tmp_path / "f", names)
    for n in other:
        (folder / n).write_text("x")
    got = frame_folder_problem(folder)
    skipped = []
    found = scan_folder(tmp_path, skipped)
    if problem is None:
        assert got is None and found == [folder] and skipped == []
        assert open_source(folder).num_frames == len(names)
    else:
        assert problem in got and found == [p for p in found if p.suffix] and skipped == [(folder, got)]
        with pytest.raises(SourceError, match="not a frame folder"):  # opened directly: the same rule
            open_source(folder)
        if not other:
            with pytest.raises(UserError, match="is not a frame folder"):
                expand_inputs([folder])
