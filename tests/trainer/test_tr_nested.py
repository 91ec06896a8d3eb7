"""Evaluation protocols: nested CV is unbiased by model selection, the paper's protocol is optimistic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tr_helpers import seizure

from semiostream.trainer.dataset import FeatureSet
from semiostream.trainer.folds import make_folds
from semiostream.trainer.nested import cross_validate_protocol, describe_protocol, nested_cross_validate
from semiostream.trainer.train import TrainConfig


def _no_signal(patients: int = 8, seizures: int = 2, windows: int = 3, dim: int = 16, seed: int = 1) -> FeatureSet:
    """Feature windows drawn from one distribution for both classes: nothing to learn."""
    rng = np.random.default_rng(seed)
    parts = []
    for lab in ("FLE", "TLE"):
        for p in range(patients):
            for s in range(seizures):
                x = np.abs(rng.normal(1, 1, (windows, 7, dim))).astype(np.float32)
                parts.append((seizure(f"{lab}{p}", f"s{s}", lab), x))
    return FeatureSet.from_parts(parts, feature_shape=(7, dim))


# small, overfitting-prone classifier: its validation F1 swings from epoch to epoch, which the paper's
# best-epoch selection turns into an optimistic estimate
CFG = TrainConfig(lstm_units=(16, 16), dense_units=(16, 16), epochs=30, batch_size=512, lr=0.01, dropout=0.0,
                  recurrent_dropout=0.0, seed=1)


def test_without_class_signal_nested_is_near_chance_and_the_paper_protocol_above_it():
    data = _no_signal()
    folds = make_folds(data, 5, seed=1)
    paper = cross_validate_protocol("paper", data, folds, CFG)
    nested = cross_validate_protocol("nested", data, folds, CFG, inner_folds=2)
    f1_paper, f1_nested = paper.score("window", "f1_macro"), nested.score("window", "f1_macro")
    auc_nested = nested.score("window", "roc_auc")
    assert f1_nested <= 0.55 and abs(auc_nested - 0.5) < 0.15, (f1_nested, auc_nested)  # chance
    assert f1_paper > f1_nested + 0.1, (f1_paper, f1_nested)  # selection on the reported folds inflates
    assert not np.isnan(nested.p_oof).any() and set(nested.fold_of_window.tolist()) == set(range(5))
    for rec in nested.folds:
        assert rec["inner_folds"] == 2 and rec["best_val_f1"] is None and 1 <= rec["best_epoch"] <= CFG.epochs
        assert "val_f1" not in rec["history"]  # the outer fold was never looked at while training


def test_nested_never_looks_at_the_outer_validation_labels():
    data = _no_signal(patients=8)
    folds = make_folds(data, 3, seed=0)[:1]
    changed = set(folds[0].val.tolist()[::2])  # relabel every other validation seizure of the outer fold
    flipped_seizures = [
        dataclasses.replace(s, label=("TLE" if s.label == "FLE" else "FLE") if i in changed else s.label)
        for i, s in enumerate(data.seizures)
    ]
    flipped = FeatureSet(data.x, data.seizure_index, flipped_seizures)
    va = data.windows_of(folds[0].val)
    cfg = CFG
    a = nested_cross_validate(data, folds, cfg, inner_folds=2).p_oof[va]
    b = nested_cross_validate(flipped, folds, cfg, inner_folds=2).p_oof[va]
    np.testing.assert_array_equal(a, b)  # the outer validation labels changed nothing
    pa = cross_validate_protocol("paper", data, folds, cfg).p_oof[va]
    pb = cross_validate_protocol("paper", flipped, folds, cfg).p_oof[va]
    assert not np.array_equal(pa, pb)  # the paper's protocol picks its epoch with them


def test_protocol_descriptions_say_what_the_numbers_mean():
    assert "inner patient-grouped 4-fold" in describe_protocol("nested", 4)
    assert "optimistic" in describe_protocol("paper", search_trials=3) and "3 random-search" in \
        describe_protocol("paper", search_trials=3)
    with pytest.raises(ValueError, match="unknown protocol"):
        describe_protocol("holdout")


def test_run_config_refuses_unknown_protocols(tmp_path):
    from semiostream.trainer.run import ExtractConfig, RunConfig, TrainerError

    ext = ExtractConfig(manifest=tmp_path / "m.csv")
    assert RunConfig(extract=ext, out=tmp_path).protocol == "nested"  # the default
    with pytest.raises(TrainerError, match="unknown protocol 'holdout'"):
        RunConfig(extract=ext, out=tmp_path, protocol="holdout")
    with pytest.raises(TrainerError, match="at least 2"):
        RunConfig(extract=ext, out=tmp_path, inner_folds=1)
