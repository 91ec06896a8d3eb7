from __future__ import annotations

import math

import numpy as np
import pytest

from semiostream.trainer.metrics import (
    aggregate_by_seizure,
    binary_metrics,
    evaluate,
    mean_std,
    summarize_folds,
)
from semiostream.trainer.train import fast_macro_f1


def test_binary_metrics_by_hand():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.2, 0.9, 0.4])
    m = binary_metrics(y, p)
    # predictions 0 1 0 1 0 -> tn=2 fp=1 fn=1 tp=1
    assert m["confusion"] == [[2, 1], [1, 1]]
    prec = (2 / 3 + 1 / 2) / 2
    rec = (2 / 3 + 1 / 2) / 2
    f1 = (2 * 2 / (2 * 2 + 1 + 1) + 2 * 1 / (2 * 1 + 1 + 1)) / 2
    assert m["precision_macro"] == pytest.approx(prec)
    assert m["recall_macro"] == pytest.approx(rec)
    assert m["f1_macro"] == pytest.approx(f1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    # AUC = fraction of (pos, neg) pairs ranked correctly: pos {0.9, 0.4} vs neg {0.1, 0.6, 0.2} -> 5/6
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert m["n"] == 5 and m["n_per_class"] == [3, 2]


def test_single_class_auc_is_nan():
    m = binary_metrics(np.array([1, 1]), np.array([0.7, 0.2]))
    assert math.isnan(m["roc_auc"]) and m["confusion"] == [[0, 0], [1, 1]]


def test_fast_macro_f1_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        y = rng.integers(0, 2, n)
        yp = rng.integers(0, 2, n)
        ref = f1_score(y, yp, labels=[0, 1], average="macro", zero_division=0)
        assert fast_macro_f1(y, yp) == pytest.approx(ref)


def test_seizure_aggregation_is_mean_window_probability():
    p = np.array([0.2, 0.4, 0.9, 0.7, 0.1, 0.5])
    sidx = np.array([5, 5, 2, 2, 9, 5])
    y = np.array([0, 0, 1, 1, 0, 0])
    ids, ps, ys = aggregate_by_seizure(p, sidx, y)
    assert ids.tolist() == [2, 5, 9]
    assert ps == pytest.approx([0.8, (0.2 + 0.4 + 0.5) / 3, 0.1])
    assert ys.tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match="different labels"):
        aggregate_by_seizure(p, sidx, np.array([0, 1, 1, 1, 0, 0]))
    m = evaluate(y, p, sidx)
    assert m["seizure"]["confusion"] == [[2, 0], [0, 1]]  # 0.367 -> FLE, 0.8 -> TLE, 0.1 -> FLE
    assert m["window"]["confusion"] == [[3, 1], [0, 2]]   # 0.5 counts as TLE


def test_mean_std_across_folds_against_numpy():
    folds = []
    vals = [0.8, 0.6, 0.9]
    aucs = [0.7, math.nan, 0.9]
    for v, a in zip(vals, aucs, strict=True):
        lvl = {"f1_macro": v, "precision_macro": v / 2, "recall_macro": 1 - v, "roc_auc": a, "accuracy": v,
               "confusion": [[1, 2], [3, 4]]}
        folds.append({"window": lvl, "seizure": lvl})
    s = summarize_folds(folds)
    assert s["window"]["f1_macro"]["mean"] == pytest.approx(np.mean(vals))
    assert s["window"]["f1_macro"]["std"] == pytest.approx(np.std(vals))
    assert s["window"]["recall_macro"]["mean"] == pytest.approx(np.mean([1 - v for v in vals]))
    assert s["seizure"]["roc_auc"]["mean"] == pytest.approx(0.8) and s["seizure"]["roc_auc"]["n"] == 2
    assert s["seizure"]["roc_auc"]["std"] == pytest.approx(0.1)
    assert s["window"]["confusion_total"] == [[3, 6], [9, 12]]
    assert math.isnan(mean_std([math.nan])["mean"])
