"""``semiostream score ... --report DIR``: a report per scored input and an index page, from a real run."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from semiostream.archive.output import read_table
from semiostream.cli import main


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
    assert "too short" in index and "research second opinion" in index and f"{row['p_tle']:.3f}" in index
    folder = (reports / links[0]).parent
    doc = json.loads((folder / "report.json").read_text())
    assert doc["source"] == row["input_id"] and doc["p_tle"] == pytest.approx(row["p_tle"])
    assert doc["label"] == row["label"] and doc["windows"]["scored"] == row["windows"] == 6
    windows = sorted((r for r in read_table(out) if r["input_id"] == row["input_id"]), key=lambda r: r["window"])
    best = sorted(windows, key=lambda r: -abs(r["p_tle"] - 0.5))[:2]
    assert sorted(d["first_seq"] for d in doc["decisive"]) == sorted(r["first_frame"] for r in best)
    assert doc["start"].endswith("s into the recording")
    # run again: nothing changed, the report is kept as it is
    before = (folder / "report.json").stat().st_mtime_ns
    assert main(argv) == 3
    assert (folder / "report.json").stat().st_mtime_ns == before
