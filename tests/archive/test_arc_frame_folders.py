"""`semiostream score` on a folder of recordings with preview images beside them: the recordings are scored,
the previews are skipped (said in the summary), not a failing "frame folder" input."""

from __future__ import annotations

import shutil

from arc_helpers import FAST
from PIL import Image
from recorder_clips import demo_frames

from semiostream.archive.output import inputs_path, read_table
from semiostream.cli import main


def test_previews_beside_videos_do_not_fail_the_run(arc_clips, arc_bundle, tmp_path, capsys):
    ward = tmp_path / "ward"
    ward.mkdir()
    clips = sorted(arc_clips.glob("*.mkv"))[:2]
    for c in clips:
        shutil.copyfile(c, ward / c.name)
    for i, picture in enumerate(demo_frames(2)):  # real pictures, as a recorder's thumbnails
        Image.fromarray(picture).save(ward / f"{clips[i].stem}_preview.png")
    out = tmp_path / "res.csv"
    rc = main(["score", str(ward), "--bundle", str(arc_bundle), "--out", str(out), *FAST])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "2 inputs: 2 scored now, 0 from earlier runs, 0 failed" in text
    assert f"skipped (not an input): {ward}: not a frame folder: its 2 images lie beside video files" in text
    videos = read_table(inputs_path(out))
    assert sorted(v["path"] for v in videos) == sorted(str(ward / c.name) for c in clips)
    assert all(v["error"] is None and v["windows"] == 2 for v in videos)
