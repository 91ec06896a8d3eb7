"""Evaluation metrics (the paper's section 4): macro F1 / precision / recall, ROC AUC, confusion matrix.

Computed by scikit-learn at two levels:

* **window**: every 2-s window is one sample, scored by its own p(TLE);
* **seizure**: one sample per seizure, scored by the mean of its windows' p(TLE) (the runtime's
  per-event aggregation).

A label is predicted TLE when p >= ``threshold`` (0.5; the one rule of :mod:`semiostream.core.decision`).
Across folds every metric is reported as mean ± standard deviation (population std, ``ddof=0``, as
``numpy.std``); a metric undefined in a fold (ROC AUC when the validation part holds one class only) is
left out of that mean and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from semiostream.core.decision import DECISION_THRESHOLD, positive

SCALARS = ("f1_macro", "precision_macro", "recall_macro", "roc_auc", "accuracy")


def binary_metrics(y_true: np.ndarray, p: np.ndarray, threshold: float = DECISION_THRESHOLD) -> dict[str, Any]:
    """Metrics of p(TLE) scores against labels (TLE = 1).

    Args:
        y_true: ``[N]`` int labels in {0, 1}.
        p: ``[N]`` float scores in [0, 1].
        threshold: p >= threshold predicts class 1.

    Returns:
        ``f1_macro``, ``precision_macro``, ``recall_macro``, ``accuracy``, ``roc_auc`` (NaN with a single
        class), ``confusion`` ``[[tn, fp], [fn, tp]]`` (rows = true class), ``n``, ``n_per_class``.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y_true.shape != p.shape:
        raise ValueError(f"y_true {y_true.shape} and p {p.shape} differ in length")
    if len(y_true) == 0:
        raise ValueError("no samples to evaluate")
    y_pred = positive(p, threshold)
    kw = {"labels": [0, 1], "average": "macro", "zero_division": 0}
    auc = float(roc_auc_score(y_true, p)) if len(np.unique(y_true)) == 2 else math.nan
    return {
        "f1_macro": float(f1_score(y_true, y_pred, **kw)),
        "precision_macro": float(precision_score(y_true, y_pred, **kw)),
        "recall_macro": float(recall_score(y_true, y_pred, **kw)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "roc_auc": auc,
        "confusion": confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
        "n": int(len(y_true)),
        "n_per_class": [int(np.sum(y_true == 0)), int(np.sum(y_true == 1))],
    }


def macro_f1(y_true: np.ndarray, p: np.ndarray, threshold: float = DECISION_THRESHOLD) -> float:
    """Macro-averaged F1 of thresholded scores (the model-selection criterion)."""
    from sklearn.metrics import f1_score

    y_pred = positive(p, threshold)
    return float(f1_score(np.asarray(y_true, np.int64), y_pred, labels=[0, 1], average="macro", zero_division=0))


def aggregate_by_seizure(
    p_windows: np.ndarray, seizure_index: np.ndarray, y_windows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mean window probability per seizure.

    Args:
        p_windows: ``[N]`` window scores.
        seizure_index: ``[N]`` seizure id of each window (any integers).
        y_windows: optional ``[N]`` window labels (must be constant within a seizure).

    Returns:
        ``(seizures, p_seizure, y_seizure)``: the sorted unique seizure ids, their mean score, and their
        label (None if ``y_windows`` is None).
    """
    p_windows = np.asarray(p_windows, np.float64)
    seizure_index = np.asarray(seizure_index)
    ids, inv = np.unique(seizure_index, return_inverse=True)
    sums = np.bincount(inv, weights=p_windows, minlength=len(ids))
    counts = np.bincount(inv, minlength=len(ids))
    p_seiz = sums / counts
    y_seiz = None
    if y_windows is not None:
        y_windows = np.asarray(y_windows, np.int64)
        lo = np.full(len(ids), np.iinfo(np.int64).max)
        hi = np.full(len(ids), np.iinfo(np.int64).min)
        np.minimum.at(lo, inv, y_windows)
        np.maximum.at(hi, inv, y_windows)
        if np.any(lo != hi):
            raise ValueError("windows of one seizure carry different labels")
        y_seiz = lo
    return ids, p_seiz, y_seiz


def evaluate(
    y_windows: np.ndarray, p_windows: np.ndarray, seizure_index: np.ndarray, threshold: float = DECISION_THRESHOLD
) -> dict[str, dict[str, Any]]:
    """``{"window": binary_metrics(...), "seizure": binary_metrics(...)}`` for one validation fold."""
    _, p_s, y_s = aggregate_by_seizure(p_windows, seizure_index, y_windows)
    return {
        "window": binary_metrics(y_windows, p_windows, threshold),
        "seizure": binary_metrics(y_s, p_s, threshold),
    }


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "n", "values"}`` over the finite values (``std`` with ddof=0)."""
    vals = [float(v) for v in values]
    finite = np.array([v for v in vals if math.isfinite(v)], dtype=np.float64)
    return {
        "mean": float(finite.mean()) if len(finite) else math.nan,
        "std": float(finite.std()) if len(finite) else math.nan,
        "n": int(len(finite)),
        "values": vals,
    }


def summarize_folds(per_fold: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean ± std of every scalar metric across folds, per level, plus the summed confusion matrix."""
    out: dict[str, dict[str, Any]] = {}
    for level in ("window", "seizure"):
        rows = [f[level] for f in per_fold]
        lvl: dict[str, Any] = {k: mean_std([r[k] for r in rows]) for k in SCALARS}
        lvl["confusion_total"] = np.sum([r["confusion"] for r in rows], axis=0).tolist()
        out[level] = lvl
    return out


def fmt(ms: dict[str, Any], digits: int = 3) -> str:
    """``"0.844 ± 0.042"`` (or ``"n/a"``)."""
    if not math.isfinite(ms["mean"]):
        return "n/a"
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"
