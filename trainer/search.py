"""Random hyperparameter search over the paper's ranges (section 3.5.1).

Each trial draws a configuration from :class:`SearchSpace` with a seeded RNG and cross-validates it on
the same folds; the best trial is the one with the highest mean validation macro F1 at window level
(ties: seizure-level F1, then window ROC AUC). Trial 0 is the base configuration itself (the paper's
defaults unless changed), so the search never does worse than the baseline on its own criterion.

Ranges (inclusive): LSTM units 32-256 (each of the two layers), FC units 16-128 (each of the two
hidden layers), loss MSE or BCE, dropout 0-0.5, recurrent dropout 0-0.5, epochs 50-2000, batch size
50-2000. For quick runs shrink ``epochs`` / ``batch_size`` (``SearchSpace(epochs=(5, 40))``, or
``--epochs-range`` on the command line).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cv import CVResult, cross_validate
from .dataset import FeatureSet
from .folds import Fold
from .metrics import fmt
from .train import TrainConfig


@dataclass(frozen=True)
class SearchSpace:
    """Inclusive ranges sampled uniformly (integers for units, epochs and batch size)."""

    lstm_units: tuple[int, int] = (32, 256)
    dense_units: tuple[int, int] = (16, 128)
    losses: tuple[str, ...] = ("mse", "bce")
    dropout: tuple[float, float] = (0.0, 0.5)
    recurrent_dropout: tuple[float, float] = (0.0, 0.5)
    epochs: tuple[int, int] = (50, 2000)
    batch_size: tuple[int, int] = (50, 2000)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "losses":
                if not v or any(x not in ("mse", "bce") for x in v):
                    raise ValueError(f"losses={v}; choose from 'mse', 'bce'")
            elif len(v) != 2 or v[0] > v[1]:
                raise ValueError(f"{f.name}={v} must be a (low, high) pair with low <= high")
        if self.batch_size[0] < 2 or self.epochs[0] < 1 or self.lstm_units[0] < 1 or self.dense_units[0] < 1:
            raise ValueError("epochs >= 1, batch_size >= 2 and unit counts >= 1 are required")
        if self.dropout[1] >= 1 or self.recurrent_dropout[1] >= 1:
            raise ValueError("dropout rates must stay below 1")

    def sample(self, rng: np.random.Generator, base: TrainConfig) -> TrainConfig:
        """One random configuration: ``base`` with the searched fields replaced."""

        def integer(r: tuple[int, int]) -> int:
            return int(rng.integers(r[0], r[1] + 1))

        def real(r: tuple[float, float]) -> float:
            return round(float(rng.uniform(r[0], r[1])), 4)

        return base.replace(
            lstm_units=(integer(self.lstm_units), integer(self.lstm_units)),
            dense_units=(integer(self.dense_units), integer(self.dense_units)),
            loss=str(self.losses[int(rng.integers(len(self.losses)))]),
            dropout=real(self.dropout),
            recurrent_dropout=real(self.recurrent_dropout),
            epochs=integer(self.epochs),
            batch_size=integer(self.batch_size),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}


def _rank_key(cv: CVResult) -> tuple[float, float, float]:
    def z(v: float) -> float:
        return v if math.isfinite(v) else -1.0

    return (z(cv.score("window", "f1_macro")), z(cv.score("seizure", "f1_macro")),
            z(cv.score("window", "roc_auc")))


@dataclass
class SearchResult:
    """Every trial's configuration and CV result; ``best`` indexes the winner."""

    trials: list[CVResult]
    best: int
    space: SearchSpace
    seed: int

    @property
    def best_cv(self) -> CVResult:
        return self.trials[self.best]

    def table(self) -> list[dict[str, Any]]:
        """One row per trial: its settings and mean CV metrics, sorted best first."""
        rows = []
        for i, cv in enumerate(self.trials):
            c = cv.config
            w, s = cv.summary["window"], cv.summary["seizure"]
            rows.append({
                "trial": i, "lstm_units": list(c.lstm_units), "dense_units": list(c.dense_units), "loss": c.loss,
                "dropout": c.dropout, "recurrent_dropout": c.recurrent_dropout, "epochs": c.epochs,
                "batch_size": c.batch_size,
                "window_f1": w["f1_macro"]["mean"], "window_f1_std": w["f1_macro"]["std"],
                "window_auc": w["roc_auc"]["mean"], "seizure_f1": s["f1_macro"]["mean"],
                "seizure_auc": s["roc_auc"]["mean"], "seconds": round(cv.seconds, 1),
                "best": i == self.best,
            })
        order = sorted(range(len(rows)), key=lambda i: _rank_key(self.trials[i]), reverse=True)
        return [rows[i] for i in order]

    def markdown(self) -> str:
        head = ("| trial | LSTM | FC | loss | dropout | rec. dropout | epochs | batch | window F1 | window AUC "
                "| seizure F1 | seizure AUC | s |")
        lines = [head, "|" + "---|" * 13]
        for r in self.table():
            cv = self.trials[r["trial"]]
            mark = " **best**" if r["best"] else ""
            lines.append(
                f"| {r['trial']}{mark} | {r['lstm_units'][0]}/{r['lstm_units'][1]} | "
                f"{r['dense_units'][0]}/{r['dense_units'][1]} | {r['loss']} | {r['dropout']:.2f} | "
                f"{r['recurrent_dropout']:.2f} | {r['epochs']} | {r['batch_size']} | "
                f"{fmt(cv.summary['window']['f1_macro'])} | {fmt(cv.summary['window']['roc_auc'])} | "
                f"{fmt(cv.summary['seizure']['f1_macro'])} | {fmt(cv.summary['seizure']['roc_auc'])} | "
                f"{r['seconds']} |"
            )
        return "\n".join(lines)


def plan_trials(
    n_trials: int, base: TrainConfig | None = None, space: SearchSpace | None = None, seed: int = 0,
    include_base: bool = True,
) -> list[TrainConfig]:
    """The configurations :func:`random_search` will try, in order (same arguments, same list)."""
    if n_trials < 1:
        raise ValueError(f"n_trials={n_trials}; the search needs at least one trial")
    base = base or TrainConfig()
    space = space or SearchSpace()
    rng = np.random.default_rng(seed)
    configs = [base] if include_base else []
    while len(configs) < n_trials:
        configs.append(space.sample(rng, base))
    return configs


def random_search(
    data: FeatureSet,
    folds: list[Fold],
    n_trials: int,
    base: TrainConfig | None = None,
    space: SearchSpace | None = None,
    seed: int = 0,
    include_base: bool = True,
    on_trial: Callable[[int, CVResult], None] | None = None,
    on_epoch: Callable[[int, int, int, dict[str, float]], None] | None = None,
) -> SearchResult:
    """Cross-validate ``n_trials`` configurations and pick the best.

    Args:
        data, folds: the data and its (fixed) folds.
        n_trials: trial budget (>= 1), the base configuration included when ``include_base``.
        base: configuration supplying the fields not searched (seed, L2 factors, patience ...).
        space: ranges (the paper's by default).
        seed: seeds the sampling RNG (independent of the training seed in ``base``).
        on_trial: called after each trial with ``(trial, result)``.
        on_epoch: progress callback ``(trial, fold, epoch, stats)``.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials={n_trials}; the search needs at least one trial")
    space = space or SearchSpace()
    configs = plan_trials(n_trials, base, space, seed, include_base)
    trials = []
    for i, cfg in enumerate(configs):
        t0 = time.perf_counter()
        cb = (lambda f, e, s, _i=i: on_epoch(_i, f, e, s)) if on_epoch else None
        cv = cross_validate(data, folds, cfg, cb)
        cv.seconds = time.perf_counter() - t0
        trials.append(cv)
        if on_trial is not None:
            on_trial(i, cv)
    best = max(range(len(trials)), key=lambda i: _rank_key(trials[i]))
    return SearchResult(trials, best, space, seed)
