"""The paper's training recipe (section 3.5.1) for the LSTM-FC classifier on I3D feature windows.

* loss: class-weighted mean squared error on p(TLE) (``loss="mse"``, the paper's) or class-weighted
  binary cross-entropy on the logits (``loss="bce"``); class weights ``N / (2 N_c)`` from the training
  windows ("balanced"), applied per sample;
* plus the classifier's L2 terms (:meth:`SeizureClassifier.regularization_loss`);
* Adam, learning rate 1e-3, betas (0.9, 0.999);
* ``epochs`` x minibatches of ``batch_size`` windows, reshuffled every epoch (paper: 2000 and 500);
* model selection: the epoch with the best validation macro F1 (window level, threshold 0.5) is kept.
  F1 saturates quickly on small validation sets (often 1.0 a few epochs in, with p barely off 0.5), so
  among epochs with equal F1 the one with the lower validation loss wins: the decisions are the same and
  the probabilities better separated. Optional early stop after ``patience`` epochs without a better epoch.

Deterministic for a given ``seed`` on one machine: the seed drives the weight initialisation, dropout
and the shuffling; torch's deterministic-algorithm mode is on while training.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from semiostream.core.decision import DECISION_THRESHOLD, positive

from ..models.classifier import SeizureClassifier

log = logging.getLogger(__name__)

LOSSES = ("mse", "bce")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run. Defaults are the paper's.

    Attributes:
        lstm_units, dense_units: widths of the two LSTM and the two hidden dense layers.
        dropout, recurrent_dropout: classifier dropout rates.
        loss: ``"mse"`` (class-weighted MSE on p, the paper's) or ``"bce"`` (weighted BCE on logits).
        epochs, batch_size: training length and minibatch size in windows.
        lr, betas: Adam settings.
        l2_kernel, l2_recurrent, l2_activity, l2_bias: classifier L2 factors.
        class_weighted: weight samples by ``N / (2 N_c)``; False = unweighted.
        patience: stop after this many epochs without a better validation F1 (None = run all epochs).
        threshold: p(TLE) >= threshold predicts TLE (for F1 during model selection).
        seed: seeds initialisation, dropout and shuffling.
    """

    lstm_units: tuple[int, int] = (128, 64)
    dense_units: tuple[int, int] = (64, 32)
    dropout: float = 0.5
    recurrent_dropout: float = 0.3
    loss: str = "mse"
    epochs: int = 2000
    batch_size: int = 500
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    l2_kernel: float = 1e-4
    l2_recurrent: float = 1e-4
    l2_activity: float = 1e-4
    l2_bias: float = 1e-4
    class_weighted: bool = True
    patience: int | None = None
    threshold: float = DECISION_THRESHOLD
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.loss not in LOSSES:
            problems.append(f"loss={self.loss!r}; use 'mse' or 'bce'")
        if self.epochs < 1:
            problems.append(f"epochs={self.epochs} must be >= 1")
        if self.batch_size < 2:
            problems.append(f"batch_size={self.batch_size} must be >= 2 (BatchNorm needs 2 samples)")
        for name in ("dropout", "recurrent_dropout"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be in [0, 1)")
        if len(self.lstm_units) != 2 or len(self.dense_units) != 2 or min(*self.lstm_units, *self.dense_units) < 1:
            problems.append(f"lstm_units={self.lstm_units}, dense_units={self.dense_units}: two positive widths each")
        if self.patience is not None and self.patience < 1:
            problems.append(f"patience={self.patience} must be >= 1 or None")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def classifier_kwargs(self) -> dict[str, Any]:
        return {
            "lstm_units": tuple(self.lstm_units), "dense_units": tuple(self.dense_units),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
            "l2_kernel": self.l2_kernel, "l2_recurrent": self.l2_recurrent,
            "l2_activity": self.l2_activity, "l2_bias": self.l2_bias,
        }

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("lstm_units", "dense_units", "betas"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
        d = dict(d)
        for k in ("lstm_units", "dense_units", "betas"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


@dataclass
class TrainResult:
    """A trained classifier (eval mode, best epoch's weights) and how it got there.

    ``history`` holds one entry per epoch: ``train_loss`` (mean minibatch loss incl. L2), and with
    validation data ``val_loss`` (weighted loss, no L2) and ``val_f1`` (window macro F1).
    ``best_epoch`` is 1-based.
    """

    model: SeizureClassifier
    config: TrainConfig
    history: dict[str, list[float]]
    best_epoch: int
    best_val_f1: float
    epochs_run: int
    seconds: float
    class_weights: list[float] = field(default_factory=list)


def class_weights(y: np.ndarray) -> np.ndarray:
    """``[2]`` balanced weights ``N / (2 N_c)`` (a missing class gets weight 0)."""
    y = np.asarray(y, np.int64)
    counts = np.bincount(y, minlength=2).astype(np.float64)
    return np.where(counts > 0, len(y) / (2.0 * np.maximum(counts, 1)), 0.0)


def fast_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over classes {0, 1} with zero_division=0 (same as sklearn; numpy only, for every epoch)."""
    f1s = []
    for c in (0, 1):
        tp = float(np.sum((y_pred == c) & (y_true == c)))
        fp = float(np.sum((y_pred == c) & (y_true != c)))
        fn = float(np.sum((y_pred != c) & (y_true == c)))
        den = 2 * tp + fp + fn
        f1s.append(2 * tp / den if den > 0 else 0.0)
    return float(np.mean(f1s))


def weighted_loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample weighted loss, averaged over the batch (Keras ``class_weight`` semantics).

    ``logits`` ``[B]``, ``y`` ``[B]`` float {0, 1}, ``w`` ``[B]`` sample weights.
    """
    if kind == "mse":
        per = (torch.sigmoid(logits) - y).pow(2)
    elif kind == "bce":
        per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    else:
        raise ValueError(f"unknown loss {kind!r}; use 'mse' or 'bce'")
    return (w * per).mean()


@contextlib.contextmanager
def deterministic(seed: int, num_threads: int | None = None) -> Iterator[torch.Generator]:
    """Seed torch (restoring the global RNG afterwards), enable deterministic algorithms, and
    optionally set torch's intra-op thread count for the duration."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        if num_threads:
            torch.set_num_threads(num_threads)
        try:
            gen = torch.Generator().manual_seed(seed + 1)
            yield gen
        finally:
            torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
            torch.set_num_threads(prev_threads)


@torch.no_grad()
def predict(model: SeizureClassifier, x: np.ndarray | torch.Tensor, batch: int = 2048) -> np.ndarray:
    """p(TLE) ``[N]`` float64 for feature windows ``x`` ``[N, 7, D]`` (model put in eval mode)."""
    model.eval()
    xt = torch.as_tensor(np.asarray(x, np.float32)) if not isinstance(x, torch.Tensor) else x
    if len(xt) == 0:
        return np.zeros(0, np.float64)
    out = [torch.sigmoid(model.logits(xt[i:i + batch])) for i in range(0, len(xt), batch)]
    return torch.cat(out).double().numpy()


def _batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    parts = list(torch.randperm(n, generator=gen).split(size))
    if len(parts) > 1 and len(parts[-1]) == 1:  # BatchNorm cannot train on one sample
        parts[-2] = torch.cat([parts[-2], parts.pop()])
    return parts


def train_model(
    x_train: np.ndarray,
    y_train: np.ndarray,
    cfg: TrainConfig,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train one classifier.

    Args:
        x_train: ``[N, 7, D]`` float32 windows pre-padded with -1; ``y_train`` ``[N]`` int (TLE = 1).
        cfg: hyperparameters.
        x_val, y_val: validation windows; with them the best-validation-macro-F1 epoch is kept,
            without them the last epoch is.
        on_epoch: called after each epoch with ``(epoch, {"train_loss", "val_loss", "val_f1"})``.
        num_threads: torch CPU threads while training (1 by default: the classifier is small, and
            more threads mostly spin, badly so on a shared machine; None = leave torch's setting).

    Returns:
        :class:`TrainResult`; its ``model`` is in eval mode on CPU.
    """
    x_train = np.asarray(x_train, np.float32)
    y_train = np.asarray(y_train, np.int64)
    if len(x_train) < 2:
        raise ValueError(f"{len(x_train)} training window(s); need at least 2")
    if len(np.unique(y_train)) < 2:
        log.warning("the training windows hold one class only; the classifier cannot learn to separate")
    has_val = x_val is not None and y_val is not None and len(x_val) > 0
    cw = class_weights(y_train) if cfg.class_weighted else np.ones(2)
    t0 = time.perf_counter()
    with deterministic(cfg.seed, num_threads) as gen:
        model = SeizureClassifier(input_dim=x_train.shape[-1], **cfg.classifier_kwargs())
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        xt = torch.from_numpy(x_train)
        yt = torch.from_numpy(y_train.astype(np.float32))
        wt = torch.from_numpy(cw.astype(np.float32))[torch.from_numpy(y_train)]
        if has_val:
            xv = torch.from_numpy(np.asarray(x_val, np.float32))
            yv = np.asarray(y_val, np.int64)
            wv = torch.from_numpy(cw.astype(np.float32))[torch.from_numpy(yv)]
        history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_f1": []}
        best_f1, best_loss, best_epoch, best_state, since = -math.inf, math.inf, 0, None, 0
        epoch = 0
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            total, count = 0.0, 0
            for idx in _batches(len(xt), cfg.batch_size, gen):
                opt.zero_grad(set_to_none=True)
                logits = model.logits(xt[idx])
                loss = weighted_loss(logits, yt[idx], wt[idx], cfg.loss) + model.regularization_loss()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            stats = {"train_loss": total / count}
            if has_val:
                model.eval()
                with torch.no_grad():
                    lv = torch.cat([model.logits(xv[i:i + 4096]) for i in range(0, len(xv), 4096)])
                    stats["val_loss"] = float(weighted_loss(lv, torch.from_numpy(yv.astype(np.float32)), wv,
                                                            cfg.loss))
                    pred = positive(torch.sigmoid(lv).numpy(), cfg.threshold)
                stats["val_f1"] = fast_macro_f1(yv, pred)
                if stats["val_f1"] > best_f1 or (stats["val_f1"] == best_f1 and stats["val_loss"] < best_loss):
                    best_f1, best_loss, best_epoch, since = stats["val_f1"], stats["val_loss"], epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    since += 1
            for k, v in stats.items():
                history[k].append(v)
            if on_epoch is not None:
                on_epoch(epoch, stats)
            if has_val and cfg.patience is not None and since >= cfg.patience:
                log.info("early stop at epoch %d (best %d, F1 %.3f)", epoch, best_epoch, best_f1)
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        else:
            best_epoch, best_f1 = epoch, math.nan
        model.eval()
    return TrainResult(
        model=model, config=cfg, history={k: v for k, v in history.items() if v}, best_epoch=best_epoch,
        best_val_f1=float(best_f1), epochs_run=epoch, seconds=time.perf_counter() - t0,
        class_weights=cw.tolist(),
    )
