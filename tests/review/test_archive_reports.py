"""``semiostream score ... --report DIR``: a report per scored input and an index page, from a real run."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semiostream.archive.output import read_table
from semiostream.cli import main
from semiostream.review.archive import write_archive_reports


def test_score_writes_a_report_per_input_and_an_index(review_bundle, clip, tmp_path, capsys):
    good, short = tmp_path / "bed-07 night.npy", tmp_path / "short.npy"
    np.save(good, clip.frames)  # 96 frames: 6 windows of 16
    np.save(short, clip.frames[:5])  # too short: an error row, no report
    out, reports = tmp_path / "scores.parquet", tmp_path / "reports"
    argv = ["score", str(good), str(short), "--bundle", str(review_bundle), "--out", str(out), "--backend",
            "torch-cpu-fp32", "--report", str(reports), "--no-saliency", "--quiet"]
    assert main(argv) == 3  # one failed input
    printed = capsys.readouterr().out
    assert f"reports: {reports / 'index.html'}" in printed
    index = (reports / "index.html").read_text()
    (row,) = [r for r in read_table(tmp_path / "scores.videos.parquet") if r["error"] is None]
    links = re.findall(r"href='([^']+)'", index)
    assert len(links) == 1 and (reports / links[0]).is_file()
    assert "too short" in index and "research second opinion" in index
    # a plain file scored whole is no seizure segment: no class, no p(TLE) in the index or its report
    assert row["in_segment"] is False and "no seizure segment: no class decision" in index
    assert f"{row['p_tle']:.3f}" not in index and f"<td>{row['label']}</td>" not in index
    folder = (reports / links[0]).parent
    doc = json.loads((folder / "report.json").read_text())
    assert doc["source"] == row["input_id"] and doc["p_tle"] == pytest.approx(row["p_tle"])
    assert doc["label"] is None and doc["windows"]["scored"] == row["windows"] == 6
    assert any(n.startswith("No seizure segment") for n in doc["notes"])
    windows = sorted((r for r in read_table(out) if r["input_id"] == row["input_id"]), key=lambda r: r["window"])
    best = sorted(windows, key=lambda r: -abs(r["p_tle"] - 0.5))[:2]
    assert sorted(d["first_seq"] for d in doc["decisive"]) == sorted(r["first_frame"] for r in best)
    assert doc["start"].endswith("s into the recording")
    # run again: nothing changed, the report is kept as it is
    before = (folder / "report.json").stat().st_mtime_ns
    assert main(argv) == 3
    assert (folder / "report.json").stat().st_mtime_ns == before
    # a table written before in_segment: a plain row (no seizure_id) still gets no class; a manifest row does
    videos = tmp_path / "scores.videos.parquet"
    old = pq.read_table(videos)
    pq.write_table(old.drop_columns(["in_segment"]), videos)
    index = write_archive_reports(out, review_bundle, reports, saliency=False).read_text()
    assert "no seizure segment: no class decision" in index and f"{row['p_tle']:.3f}" not in index
    sid = pa.array(["s1" if r["error"] is None else None for r in old.to_pylist()], pa.string())
    old = old.drop_columns(["in_segment"])
    pq.write_table(old.set_column(old.schema.get_field_index("seizure_id"), "seizure_id", sid), videos)
    index = write_archive_reports(out, review_bundle, reports, saliency=False).read_text()
    assert "no seizure segment" not in index and f"<td>{row['label']}</td><td>{row['p_tle']:.3f}</td>" in index
    assert json.loads((folder / "report.json").read_text())["label"] == row["label"]


def test_report_of_a_resampled_clip_shows_the_frames_as_scored(review_bundle, tmp_path):
    """A 15 fps MPEG-4 AVI scored by a 30 fps bundle: each decisive window of its report is the window as the
    model saw it (16 frames at 30 fps = 8 source frames, each twice) with the run's held intensity window, as
    an independent sequential PyAV decode gives them."""
    from recorder_clips import demo_frames, encode_clip, reference_frames

    from semiostream.dali_pipes.event_intensity import segment_window
    from semiostream.models.bundle import load_bundle

    avi = encode_clip(tmp_path / "fifteen", "mpeg4-avi", demo_frames(24, size=(128, 96)), fps=15)  # 1.6 s
    out, reports = tmp_path / "s.parquet", tmp_path / "reports"
    assert main(["score", str(avi), "--bundle", str(review_bundle), "--out", str(out), "--backend",
                 "torch-cpu-fp32", "--no-compile", "--report", str(reports), "--no-saliency", "--quiet"]) == 0
    (doc,) = [json.loads(p.read_text()) for p in reports.glob("*/report.json")]
    spec = load_bundle(review_bundle).spec
    shown = reference_frames(avi)[np.repeat(np.arange(24), 2)]  # 48 frames at 30 fps: 3 windows of 16
    held = segment_window(shown[:spec.percentile_frames], None, spec)
    assert doc["windows"]["scored"] == 3 and len(doc["decisive"]) == 2
    for d in doc["decisive"]:
        assert d["frames"] == 16 and d["first_seq"] in (0, 8, 16)
        assert d["intensity"] == pytest.approx(list(held))
