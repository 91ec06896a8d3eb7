from __future__ import annotations

import json

import numpy as np
import pytest
from tr_helpers import synthetic_featureset

from semiostream.cli import main
from semiostream.trainer.cv import cross_validate
from semiostream.trainer.folds import make_folds
from semiostream.trainer.report import (
    PLOTS,
    REPORT_JSON,
    ReportError,
    read_predictions,
    render,
    write_json,
    write_predictions,
)
from semiostream.trainer.run import _predictions
from semiostream.trainer.train import TrainConfig


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    data = synthetic_featureset(patients_per_class=4, dim=16, seed=9)
    folds = make_folds(data, 4, seed=0)
    cv = cross_validate(data, folds, TrainConfig(lstm_units=(8, 8), dense_units=(8, 4), epochs=6, batch_size=32))
    d = tmp_path_factory.mktemp("run")
    write_predictions(d / "predictions.csv", _predictions(data, cv))
    write_json(d / REPORT_JSON, {"run_id": "t", "cv": cv.to_dict(), "data": {"description": "synthetic"},
                                 "notes": ["a note"]})
    return d, data, cv


def test_predictions_round_trip_and_seizure_metrics_from_file(run_dir):
    d, data, cv = run_dir
    pred = read_predictions(d / "predictions.csv")
    assert np.allclose(pred["p"], cv.p_oof, atol=1e-6)
    assert np.array_equal(pred["y"], data.y) and np.array_equal(pred["fold"], cv.fold_of_window)
    assert len(np.unique(pred["seizure"])) == len(data.seizures)


def test_json_is_standard_without_nan(run_dir):
    d, _, _ = run_dir
    text = (d / REPORT_JSON).read_text()
    assert "NaN" not in text
    json.loads(text)


def test_render_writes_pngs_and_summary(run_dir):
    d, _, cv = run_dir
    paths = render(d)
    for name in PLOTS:
        assert (d / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    summary = (d / "summary.md").read_text()
    f1 = cv.summary["window"]["f1_macro"]
    assert f"{f1['mean']:.3f} ± {f1['std']:.3f}" in summary
    assert "0.844 ± 0.042" in summary and "a note" in summary
    assert len(paths) == len(PLOTS) + 1


def test_report_command(run_dir, tmp_path, capsys):
    d, _, _ = run_dir
    assert main(["report", str(d)]) == 0
    assert "cross-validation grouped by patient" in capsys.readouterr().out
    assert main(["report", str(tmp_path)]) == 2
    assert "report.json is missing" in capsys.readouterr().err
    with pytest.raises(ReportError):
        render(tmp_path)


def test_summary_names_the_protocol_and_what_it_means(run_dir, tmp_path):
    d, data, cv = run_dir
    render(d)
    summary = (d / "summary.md").read_text()
    assert "protocol paper:" in summary and "optimistic" in summary  # a run without a protocol: the paper's
    from semiostream.trainer.nested import nested_cross_validate

    folds = make_folds(data, 4, seed=0)
    nested = nested_cross_validate(data, folds, TrainConfig(lstm_units=(8, 8), dense_units=(8, 4), epochs=6,
                                                            batch_size=32), inner_folds=2)
    write_predictions(tmp_path / "predictions.csv", _predictions(data, nested))
    write_json(tmp_path / REPORT_JSON, {
        "run_id": "n", "cv": nested.to_dict(), "protocol": {"name": "nested", "inner_folds": 2},
        "selection": {"summary": cv.summary}, "extraction": {"crop_rules": {"person+bed": 3, "full frame": 1}}})
    render(tmp_path)
    text = (tmp_path / "summary.md").read_text()
    assert "protocol nested: nested cross-validation" in text and "inner patient-grouped 2-fold" in text
    assert "Epochs per outer fold (chosen on its inner folds)" in text
    assert "Model selection on all folds" in text and "not the estimate" in text
    assert "Crops: person+bed: 3 seizure(s), full frame: 1 seizure(s)" in text
