from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semiostream.trainer.manifest import ManifestError, load_manifest, write_manifest


def _video(d: Path, name: str) -> Path:
    p = d / name
    np.save(p, np.zeros((12, 8, 8), np.uint16))
    return p


def test_valid_manifest_parses_every_column(tmp_path):
    _video(tmp_path, "a.npy")
    _video(tmp_path, "b.npy")
    (tmp_path / "m.csv").write_text(
        "Path,patient_id,seizure_id,label,onset,offset,roi,stream,fps,comment\n"
        'a.npy,P1,1,fle,1.5,20,"10, 20, 110, 220",IR,15,first\n'
        "b.npy,P2,1,TLE,,,,,,\n"
    )
    m = load_manifest(tmp_path / "m.csv")
    assert len(m) == 2
    a, b = m.rows
    assert a.path == tmp_path / "a.npy" and a.label == "FLE" and a.y == 0
    assert (a.onset, a.offset, a.roi, a.stream, a.fps) == (1.5, 20.0, (10, 20, 110, 220), "ir", 15.0)
    assert b.label == "TLE" and b.y == 1 and b.onset is None and b.offset is None and b.roi is None
    assert a.row == 2 and b.row == 3
    assert m.counts() == {"FLE": {"patients": 1, "seizures": 1}, "TLE": {"patients": 1, "seizures": 1}}
    assert m.notes == []


def test_every_problem_is_listed_with_its_row(tmp_path):
    _video(tmp_path, "a.npy")
    (tmp_path / "m.csv").write_text(
        "path,patient_id,seizure_id,label,onset,offset,roi,stream\n"
        "a.npy,P1,1,XLE,,,,\n"            # row 2: unknown label
        "missing.npy,P1,2,FLE,,,,\n"      # row 3: missing file
        "a.npy,P2,1,TLE,5,3,,\n"          # row 4: offset before onset
        "a.npy,P2,2,TLE,x,,,\n"           # row 5: onset not a number
        "a.npy,P2,3,TLE,,,1 2 3,\n"       # row 6: roi of 3 numbers
        "a.npy,P2,4,TLE,,,,rgb\n"         # row 7: unknown stream
        "a.npy,P2,1,TLE,,,,\n"            # row 8: duplicate seizure of row 4
        "a.npy,,9,TLE,,,,\n"              # row 9: empty patient
    )
    with pytest.raises(ManifestError) as ei:
        load_manifest(tmp_path / "m.csv")
    probs = ei.value.problems
    text = "\n".join(probs)
    assert "row 2: unknown label 'XLE'; use FLE or TLE" in text
    assert "row 3: video" in text and "missing.npy does not exist" in text
    assert "row 4: offset 3 s is not after onset 5 s" in text
    assert "row 5: onset 'x' is not a number" in text
    assert "row 6: roi '1 2 3' is invalid" in text
    assert "row 7: stream 'rgb' is unknown" in text
    assert "row 8: seizure '1' of patient 'P2' is listed again (first at row 4)" in text
    assert "row 9: patient_id is empty" in text
    assert len(probs) == 8


def test_missing_columns_and_empty_manifest(tmp_path):
    (tmp_path / "m.csv").write_text("path,patient,label\nx.npy,P1,FLE\n")
    with pytest.raises(ManifestError, match="missing column"):
        load_manifest(tmp_path / "m.csv")
    (tmp_path / "e.csv").write_text("path,patient_id,seizure_id,label\n")
    with pytest.raises(ManifestError, match="no data rows"):
        load_manifest(tmp_path / "e.csv")
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "nope.csv")


def test_patient_with_two_labels_is_allowed_and_reported(tmp_path):
    _video(tmp_path, "a.npy")
    (tmp_path / "m.csv").write_text(
        "path,patient_id,seizure_id,label\na.npy,P1,1,FLE\na.npy,P1,2,TLE\na.npy,P2,1,TLE\n"
    )
    m = load_manifest(tmp_path / "m.csv")
    assert len(m) == 3
    assert len(m.notes) == 1 and "patient P1 has seizures of both labels (FLE 1, TLE 1)" in m.notes[0]


def test_write_then_load_round_trip(tmp_path):
    _video(tmp_path, "a.npy")
    (tmp_path / "m.csv").write_text(
        'path,patient_id,seizure_id,label,onset,roi\na.npy,P1,1,FLE,2.5,"1,2,3,4"\na.npy,P2,1,TLE,,\n'
    )
    m = load_manifest(tmp_path / "m.csv")
    write_manifest(tmp_path / "m2.csv", m.rows)
    m2 = load_manifest(tmp_path / "m2.csv")
    assert [r.to_dict() | {"row": 0} for r in m2.rows] == [r.to_dict() | {"row": 0} for r in m.rows]


def test_parquet_manifest(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="Parquet manifests need pyarrow (optional)")
    import pyarrow.parquet as pq

    _video(tmp_path, "a.npy")
    t = pa.table({"path": ["a.npy", "a.npy"], "patient_id": ["P1", "P2"], "seizure_id": [1, 1],
                  "label": ["FLE", "TLE"], "onset": [None, 1.0]})
    pq.write_table(t, tmp_path / "m.parquet")
    m = load_manifest(tmp_path / "m.parquet")
    assert [r.label for r in m.rows] == ["FLE", "TLE"] and m.rows[1].onset == 1.0 and m.rows[0].onset is None


def test_synthetic_column_marks_generated_clips(tmp_path):
    """`semiostream synth` marks its clips synthetic; the column round-trips; a bad value is refused."""
    from types import SimpleNamespace

    from semiostream.models.bundle import training_data
    from semiostream.sources.synth import SynthConfig, generate_dataset
    from semiostream.trainer.run import _synthetic_counts

    synth = generate_dataset(tmp_path / "s", 2, 1, SynthConfig(width=48, height=40, seconds=0.4), fmt="npy")
    m = load_manifest(synth)
    assert [r.synthetic for r in m.rows] == [True, True]
    write_manifest(tmp_path / "m2.csv", m.rows)
    assert all(r.synthetic for r in load_manifest(tmp_path / "m2.csv").rows)
    # what the trainer records in the bundle, over the seizures it trained on
    counts = _synthetic_counts(m, SimpleNamespace(seizures=m.rows))
    assert counts == {"synthetic": True, "synthetic_seizures": 2, "seizures": 2}
    assert training_data({"provenance": {"data": counts}}).kind == "synthetic"

    _video(tmp_path, "a.npy")
    (tmp_path / "real.csv").write_text("path,patient_id,seizure_id,label\na.npy,P1,1,FLE\n")
    real = load_manifest(tmp_path / "real.csv")
    counts = _synthetic_counts(real, SimpleNamespace(seizures=real.rows))
    assert counts["synthetic"] is False and training_data({"provenance": {"data": counts}}).kind == "not synthetic"
    (tmp_path / "bad.csv").write_text("path,patient_id,seizure_id,label,synthetic\na.npy,P1,1,FLE,maybe\n")
    with pytest.raises(ManifestError, match="synthetic 'maybe' must be yes or no"):
        load_manifest(tmp_path / "bad.csv")
