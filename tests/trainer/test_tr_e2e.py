"""The whole loop on SYNTHETIC data: `semiostream synth` -> `extract` -> `train` -> bundle -> Scorer."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from semiostream.cli import main


@pytest.mark.slow
def test_synth_extract_train_bundle_loop(tmp_path, kinetics_ckpt, capsys):
    t0 = time.perf_counter()
    data = tmp_path / "synth"
    assert main(["synth", str(data), "--patients", "6", "--seizures-per-patient", "2", "--seconds", "6",
                 "--format", "npy", "--width", "160", "--height", "120", "--seed", "3"]) == 0
    manifest = data / "manifest.csv"
    common = ["--i3d", str(kinetics_ckpt), "--cache", str(tmp_path / "cache")]
    assert main(["extract", str(manifest), *common]) == 0
    out = capsys.readouterr().out
    assert "12/12 seizures have features (0 from the cache, 12 computed" in out
    run = tmp_path / "run"
    assert main(["train", str(manifest), *common, "--out", str(run), "--folds", "3", "--epochs", "60",
                 "--batch-size", "16", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3-fold cross-validation grouped by patient" in out
    wall = time.perf_counter() - t0

    report = json.loads((run / "report.json").read_text())
    assert report["extraction"]["cached"] == 12 and report["extraction"]["computed"] == 0
    s = report["cv"]["summary"]
    # the synthetic FLE/TLE caricatures are separable: well above chance (0.5) at both levels
    assert s["window"]["f1_macro"]["mean"] > 0.75, s["window"]["f1_macro"]
    assert s["seizure"]["f1_macro"]["mean"] > 0.75, s["seizure"]["f1_macro"]
    for fold in report["folds"]:  # composition saved; no patient on both sides
        for lab in ("FLE", "TLE"):
            assert not set(fold["train"][lab]["patients"]) & set(fold["val"][lab]["patients"])

    from semiostream.engines.scorer import Scorer
    from semiostream.models.bundle import load_bundle
    from semiostream.trainer.features import FeatureCache

    bundle = load_bundle(run / "bundle")
    prov = bundle.meta["provenance"]
    assert prov["cv"]["summary"]["window"]["f1_macro"]["mean"] == pytest.approx(s["window"]["f1_macro"]["mean"])
    assert prov["folds"]["n"] == 3 and prov["final"]["epochs"] == report["final"]["epochs"]
    # trained on `semiostream synth` clips: the bundle and the run's summary say so
    from semiostream.models.bundle import training_data

    assert prov["data"]["synthetic"] is True and prov["data"]["synthetic_seizures"] == 12
    assert training_data(bundle.meta).kind == "synthetic"
    assert "Provenance: SYNTHETIC training data (12 of 12 seizures)" in (run / "summary.md").read_text()
    # the bundle's I3D is the one that produced the cached features: scoring a raw window through the
    # Scorer gives the same p(TLE) as the bundle's classifier on the cached features of that window
    key = report["extraction"]["cache_keys"][next(iter(report["extraction"]["cache_keys"]))]
    entry = FeatureCache(tmp_path / "cache").get(key)
    video = np.load(entry.meta["row"]["path"])
    with Scorer(bundle, "torch-cpu-fp32") as scorer:
        p_raw = scorer.score_windows([video[entry.starts[0]:entry.stops[0]]], [None])
        p_cached = scorer.score_features(entry.features[:1])
    np.testing.assert_allclose(p_raw, p_cached, atol=1e-4)
    assert 0 < p_raw[0] < 1
    print(f"synth->extract->train->bundle loop: {wall:.1f} s")
    assert wall < 240
