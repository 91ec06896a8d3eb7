"""Evaluation protocols: nested cross-validation (default) and the paper's protocol.

**paper** (``--protocol paper``, section 3.5.1/3.6 of the paper): on each of the 5 patient-grouped folds a
model is trained and the epoch with the best *validation* macro F1 is kept ("early stopping"); with a
random search the configuration with the best mean validation F1 wins. The same validation folds that
chose the epoch and the configuration then report the metrics, so the estimate is optimistic: on data
without any class signal it lands above chance.

**nested** (default): the outer patient-grouped folds only measure. On each outer fold, model selection
(the kept epoch count, and with ``--search`` the configuration) runs on an inner patient-grouped
cross-validation of the outer *training* part; the selected configuration is retrained on the whole outer
training part for the median of its inner kept epochs, then scored once on the outer validation part,
which took no part in any choice. The estimate is unbiased by selection (near chance without signal).

Either way the final model in the bundle is selected by a cross-validation over all data (the paper's
procedure: configuration, then the median kept epoch) and retrained on all windows; with the nested
protocol those selection numbers are kept in the report as ``selection`` but not reported as the estimate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cv import CVResult, cross_validate
from .dataset import FeatureSet
from .folds import Fold, FoldError, make_folds
from .metrics import evaluate, summarize_folds
from .search import SearchSpace, random_search
from .train import TrainConfig, predict, train_model

log = logging.getLogger(__name__)

PROTOCOLS = {
    "nested": "nested cross-validation: model selection (kept epoch count{search}) on an inner patient-grouped "
              "{inner}-fold CV of each outer training part; the outer folds only measure (unbiased by selection)",
    "paper": "the paper's protocol: the kept epoch (best validation macro F1{search}) is chosen on the same "
             "validation fold that reports the metrics (optimistic: above chance even without class signal)",
}


def describe_protocol(name: str, inner_folds: int | None = None, search_trials: int = 0) -> str:
    """One sentence saying what a protocol's numbers mean (for reports and the bundle provenance)."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}")
    search = f" and the best of {search_trials} random-search configurations" if search_trials else ""
    return PROTOCOLS[name].format(search=search, inner=inner_folds or "?")


def final_epochs(cv: CVResult) -> int:
    """Median of the folds' kept epochs (at least 1): the length of a retraining without validation."""
    return max(1, int(round(float(np.median([f["best_epoch"] for f in cv.folds])))))


@dataclass
class Selection:
    """The outcome of model selection on some data: configuration, epoch count, and the CV behind it."""

    config: TrainConfig
    epochs: int
    cv: CVResult
    search_table: list[dict[str, Any]] | None = None


def select_model(
    data: FeatureSet, folds: list[Fold], base: TrainConfig, search_trials: int = 0,
    space: SearchSpace | None = None, seed: int = 0,
    on_epoch: Callable[[int, int, int, dict[str, float]], None] | None = None,
) -> Selection:
    """Choose a configuration (random search when ``search_trials`` > 0) and an epoch count by CV on ``folds``.

    ``on_epoch(trial, fold, epoch, stats)`` reports progress.
    """
    if search_trials:
        res = random_search(data, folds, search_trials, base, space, seed, on_epoch=on_epoch)
        cv, table = res.best_cv, res.table()
    else:
        cb = (lambda f, e, s: on_epoch(0, f, e, s)) if on_epoch else None
        cv, table = cross_validate(data, folds, base, cb), None
    return Selection(cv.config, final_epochs(cv), cv, table)


def inner_folds_for(data: FeatureSet, n: int, seed: int) -> list[Fold]:
    """Patient-grouped inner folds of an outer training part (fewer than ``n`` if patients are few).

    Raises:
        FoldError: fewer than 2 patients of some class, so no inner split can validate both classes.
    """
    y, groups = data.seizure_y, data.seizure_groups
    per_class = [len(set(groups[y == c].tolist())) for c in (0, 1)]
    k = min(n, *per_class) if min(per_class) >= 2 else min(n, len(set(groups.tolist())))
    if k < 2:
        raise FoldError(f"an outer training part holds {per_class[0]} FLE and {per_class[1]} TLE patients; "
                        "nested CV needs at least 2 patients to split it. Use --protocol paper or add patients")
    return make_folds(data, k, seed)


def nested_cross_validate(
    data: FeatureSet, folds: list[Fold], base: TrainConfig, inner_folds: int = 4, search_trials: int = 0,
    space: SearchSpace | None = None, seed: int = 0,
    on_epoch: Callable[[int, int, int, dict[str, float]], None] | None = None,
) -> CVResult:
    """Nested CV: select on inner folds of each outer training part, measure on the outer validation part.

    Args:
        data, folds: all windows and the outer patient-grouped folds (:func:`~.folds.make_folds`).
        base: the configuration (or the search's base configuration).
        inner_folds: inner folds per outer training part (reduced when it has fewer patients per class).
        search_trials: random-search trials per outer fold (0 = ``base`` only).
        space, seed: search ranges and seed (the outer fold index is added to the seed).
        on_epoch: progress ``(outer fold, inner trial, epoch, stats)``.

    Returns:
        :class:`~.cv.CVResult` whose metrics and out-of-fold scores come from the outer validation parts
        only; each fold record adds ``selected_config``, ``inner_folds``, ``inner_score`` (the inner CV's
        window macro F1 of the selected configuration) and ``best_epoch`` = the retraining length.
    """
    t0 = time.perf_counter()
    y = data.y
    p_oof = np.full(len(data), np.nan)
    fold_of_window = np.full(len(data), -1, np.int64)
    records = []
    for f in folds:
        train = data.subset(f.train)
        va = data.windows_of(f.val)
        inner = inner_folds_for(train, inner_folds, seed + 1000 + f.index)
        cb = (lambda t, g, e, s, _i=f.index: on_epoch(_i, t, e, s)) if on_epoch else None
        sel = select_model(train, inner, base.replace(seed=base.seed + 100 * (f.index + 1)), search_trials,
                           space, seed + f.index, cb)
        cfg = sel.config.replace(epochs=sel.epochs, seed=base.seed + f.index)
        res = train_model(train.x, train.y, cfg)  # no validation data: nothing here looks at the outer fold
        p = predict(res.model, data.x[va])
        p_oof[va] = p
        fold_of_window[va] = f.index
        m = evaluate(y[va], p, data.seizure_index[va], cfg.threshold)
        records.append({
            "fold": f.index, "best_epoch": sel.epochs, "best_val_f1": None, "epochs_run": res.epochs_run,
            "seconds": round(res.seconds, 3), "history": res.history, "class_weights": res.class_weights,
            "metrics": m, "selected_config": sel.config.to_dict(), "inner_folds": len(inner),
            "inner_score": sel.cv.score("window", "f1_macro"),
        })
        log.info("outer fold %d: %d inner folds chose %d epochs; window F1 %.3f, seizure F1 %.3f", f.index,
                 len(inner), sel.epochs, m["window"]["f1_macro"], m["seizure"]["f1_macro"])
    return CVResult(base, records, summarize_folds([r["metrics"] for r in records]), p_oof, fold_of_window,
                    time.perf_counter() - t0)


def cross_validate_protocol(
    protocol: str, data: FeatureSet, folds: list[Fold], base: TrainConfig, inner_folds: int = 4,
    search_trials: int = 0, space: SearchSpace | None = None, seed: int = 0,
) -> CVResult:
    """The reported CV estimate under ``protocol`` (``"nested"`` or ``"paper"``), without a final model."""
    if protocol == "nested":
        return nested_cross_validate(data, folds, base, inner_folds, search_trials, space, seed)
    if protocol == "paper":
        return select_model(data, folds, base, search_trials, space, seed).cv
    raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
