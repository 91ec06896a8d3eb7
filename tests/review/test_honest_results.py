"""What a reader needs to judge a result, on real third-party material: the input's kind (a colour H.264
clip of people is not IR), whether the detector found a person (a real Azure Kinect recording of a mug has
none), the frame rate, and the bundle's training-data provenance, in the tables, the summary and the reports."""

from __future__ import annotations

import json
import re
import shutil

import pyarrow.parquet as pq
import pytest
from review_helpers import make_evidence

from semiostream.archive.output import inputs_path, read_table
from semiostream.cli import main
from semiostream.models.bundle import load_bundle, read_bundle_json, training_data
from semiostream.review.report import write_event_report

SYNTHETIC = {"synthetic": True, "synthetic_seizures": 8, "seizures": 8}


def _with_provenance(bundle, dest, data):
    """A copy of ``bundle`` whose bundle.json records ``data`` as its training data (not part of the id)."""
    shutil.copytree(bundle, dest)
    meta = json.loads((dest / "bundle.json").read_text())
    meta["provenance"]["data"] = data
    (dest / "bundle.json").write_text(json.dumps(meta, indent=2))
    return dest


@pytest.mark.slow
def test_colour_clip_and_empty_scene_are_named_as_such(review_bundle, get_asset, tmp_path, capsys):
    mp4, k4a = get_asset("mmaction2_demo.mp4"), get_asset("pyk4a_recording.mkv")
    yolox = get_asset("yolox_nano.onnx")
    bundle = _with_provenance(review_bundle, tmp_path / "synthetic-bundle", SYNTHETIC)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,patient_id,seizure_id,label,onset,offset\n"
                        f"{mp4},p1,s1,TLE,0,2\n{k4a},p2,s1,FLE,,\n")
    out, reports = tmp_path / "r.parquet", tmp_path / "reports"
    rc = main(["score", str(manifest), "--bundle", str(bundle), "--out", str(out), "--backend", "torch-cpu-fp32",
               "--no-compile", "--preprocessing", "reference", "--detector", "yolox", "--detector-weights",
               str(yolox), "--report", str(reports), "--no-saliency", "--quiet"])
    printed = capsys.readouterr().out
    assert rc == 3, printed  # the one-capture Kinect recording is too short to score

    rows = {r["path"].rsplit("/", 1)[1]: r for r in read_table(inputs_path(out))}
    clip, mug = rows["mmaction2_demo.mp4"], rows["pyk4a_recording.mkv"]
    assert clip["error"] is None and clip["windows"] == 4  # 2 s at 30 fps: 3 windows of 16 + a leftover of 12
    assert clip["kind"] == "8-bit colour" and clip["kind_detail"] == "yuv420p h264, colour"
    assert clip["person_found"] is True and clip["person_score"] > 0.3  # two men arm wrestling
    assert clip["fps"] == pytest.approx(28.0) and clip["training_data"] == "synthetic"
    assert "too short" in mug["error"] and mug["kind"] == "16-bit gray"
    assert mug["person_found"] is False and mug["person_score"] is None  # a mug on a desk
    assert mug["training_data"] == "synthetic"
    assert pq.read_schema(out).metadata[b"training_data"].startswith(b"SYNTHETIC training data")
    bundle_id = read_bundle_json(bundle)["bundle_id"]
    assert f"bundle {bundle_id}: SYNTHETIC training data (8 of 8 seizures)" in printed
    assert "input kind: 1 input is 8-bit colour video, not the 16-bit IR the model is made for" in printed
    assert "the detector found no person in 1 input: pyk4a_recording.mkv" in printed

    index = (reports / "index.html").read_text()
    assert "SYNTHETIC training data" in index and "8-bit colour" in index and "NOT FOUND" in index
    assert clip["in_segment"] is True and f"<td>{clip['label']}</td><td>{clip['p_tle']:.3f}</td>" in index
    (link,) = re.findall(r"href='([^']+)'", index)
    html = (reports / link).read_text()
    heading = re.search(r"<h1>(.*?)</h1>", html).group(1)
    assert "mmaction2_demo.mp4@0-2s" in heading and "bed" not in heading
    assert "no 95% interval: fewer than 5 windows" in html and "95% interval of the mean" not in html
    facts = re.search(r"<table id=input-facts>(.*?)</table>", html).group(1)
    assert "8-bit colour (yuv420p h264, colour): not the 16-bit IR video" in facts
    assert "28 fps (stored in the file)" in facts and "found by the detector (score 0." in facts
    assert re.search(r"id=provenance>Model [0-9a-f]{16}: SYNTHETIC training data", html)
    assert "id=card-training-data>SYNTHETIC training data" in html
    doc = json.loads((reports / link).with_name("report.json").read_text())
    assert doc["model"]["training_data"]["kind"] == "synthetic" and doc["uncertainty"]["ci95"] is None
    assert doc["title"] == "mmaction2_demo.mp4@0-2s" and doc["input"]["person"].startswith("found")


def test_a_bundle_without_provenance_loads_and_says_provenance_unknown(review_bundle, clip, tmp_path):
    meta = read_bundle_json(review_bundle)  # written like every bundle before the trainer recorded it
    assert "data" not in meta["provenance"]
    assert load_bundle(review_bundle).meta["bundle_id"] == meta["bundle_id"]
    assert training_data(meta).kind == "unknown" and training_data({}).kind == "unknown"
    html = write_event_report(make_evidence(clip, review_bundle, [0.7, 0.9, 0.2, 0.8, 0.6, 0.75]), review_bundle,
                              tmp_path / "old", saliency=False).read_text()
    assert "id=provenance>Model " in html and "provenance unknown" in html
    assert "95% interval of the mean" in html  # 6 windows: an interval
    assert "Seizure event on bed <span id=bed>bed-01</span>" in html  # a live event names its bed
    real = _with_provenance(review_bundle, tmp_path / "real",
                            {"synthetic": False, "synthetic_seizures": 0, "seizures": 12})
    html = write_event_report(make_evidence(clip, real, [0.7] * 6), real, tmp_path / "r", saliency=False).read_text()
    assert "training data not synthetic (none of the 12 training seizures" in html and "SYNTHETIC" not in html
    part = training_data({"provenance": {"data": {"synthetic": True, "synthetic_seizures": 2, "seizures": 12}}})
    assert part.kind == "partly synthetic" and part.synthetic and "(2 of 12 seizures)" in part.text
