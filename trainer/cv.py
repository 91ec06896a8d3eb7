"""Cross-validation of one training configuration: train on each fold, evaluate its validation part.

Every window is validated exactly once, so :attr:`CVResult.p_oof` holds an out-of-fold p(TLE) for
every window; metrics are computed per fold at window and seizure level and summarised as mean ± std.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dataset import FeatureSet
from .folds import Fold
from .metrics import evaluate, fmt, summarize_folds
from .train import TrainConfig, predict, train_model

log = logging.getLogger(__name__)


@dataclass
class CVResult:
    """Per-fold training records and metrics, their summary, and out-of-fold window scores.

    Attributes:
        config: the configuration trained on every fold.
        folds: per fold ``{"fold", "best_epoch", "best_val_f1", "epochs_run", "seconds", "history",
            "metrics": {"window": ..., "seizure": ...}}``.
        summary: :func:`~.metrics.summarize_folds` of the fold metrics.
        p_oof: ``[N]`` out-of-fold p(TLE) of every window; ``fold_of_window`` ``[N]`` its fold.
    """

    config: TrainConfig
    folds: list[dict[str, Any]]
    summary: dict[str, dict[str, Any]]
    p_oof: np.ndarray
    fold_of_window: np.ndarray
    seconds: float

    def score(self, level: str = "window", metric: str = "f1_macro") -> float:
        return float(self.summary[level][metric]["mean"])

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "folds": self.folds, "summary": self.summary,
                "seconds": self.seconds}

    def line(self) -> str:
        w, s = self.summary["window"], self.summary["seizure"]
        return (f"window F1 {fmt(w['f1_macro'])}, AUC {fmt(w['roc_auc'])} | "
                f"seizure F1 {fmt(s['f1_macro'])}, AUC {fmt(s['roc_auc'])}")


def cross_validate(
    data: FeatureSet,
    folds: list[Fold],
    cfg: TrainConfig,
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
) -> CVResult:
    """Train ``cfg`` on every fold and evaluate on its validation seizures.

    Args:
        data: all windows.
        folds: from :func:`~.folds.make_folds`.
        cfg: training configuration (its seed is offset by the fold index so folds differ).
        on_epoch: progress callback ``(fold, epoch, stats)``.
    """
    t0 = time.perf_counter()
    y = data.y
    p_oof = np.full(len(data), np.nan)
    fold_of_window = np.full(len(data), -1, np.int64)
    records = []
    for f in folds:
        tr, va = data.windows_of(f.train), data.windows_of(f.val)
        cb = (lambda e, s, _i=f.index: on_epoch(_i, e, s)) if on_epoch else None
        res = train_model(data.x[tr], y[tr], cfg.replace(seed=cfg.seed + f.index), data.x[va], y[va], cb)
        p = predict(res.model, data.x[va])
        p_oof[va] = p
        fold_of_window[va] = f.index
        m = evaluate(y[va], p, data.seizure_index[va], cfg.threshold)
        records.append({
            "fold": f.index, "best_epoch": res.best_epoch, "best_val_f1": res.best_val_f1,
            "epochs_run": res.epochs_run, "seconds": round(res.seconds, 3), "history": res.history,
            "class_weights": res.class_weights, "metrics": m,
        })
        log.info("fold %d: best epoch %d, window F1 %.3f, seizure F1 %.3f", f.index, res.best_epoch,
                 m["window"]["f1_macro"], m["seizure"]["f1_macro"])
    return CVResult(cfg, records, summarize_folds([r["metrics"] for r in records]), p_oof, fold_of_window,
                    time.perf_counter() - t0)
