from __future__ import annotations

import numpy as np
import pytest
import torch
from tr_helpers import synthetic_featureset

from semiostream.trainer.cv import cross_validate
from semiostream.trainer.folds import make_folds
from semiostream.trainer.train import TrainConfig, class_weights, predict, train_model, weighted_loss

SMALL = TrainConfig(lstm_units=(32, 16), dense_units=(16, 8), epochs=30, batch_size=64, seed=0)


def test_class_weights_and_weighted_losses_by_hand():
    w = class_weights(np.array([0, 0, 0, 1]))
    assert w.tolist() == pytest.approx([4 / 6, 4 / 2])
    logits = torch.tensor([0.0, 2.0, -1.0])
    y = torch.tensor([1.0, 0.0, 0.0])
    sw = torch.tensor([2.0, 0.5, 1.0])
    p = torch.sigmoid(logits)
    mse = ((sw * (p - y) ** 2).sum() / 3).item()
    assert weighted_loss(logits, y, sw, "mse").item() == pytest.approx(mse)
    bce = -(sw * (y * torch.log(p) + (1 - y) * torch.log(1 - p))).mean().item()
    assert weighted_loss(logits, y, sw, "bce").item() == pytest.approx(bce, rel=1e-5)


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="loss='hinge'"):
        TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="batch_size=1"):
        TrainConfig(batch_size=1)
    c = SMALL.replace(loss="bce", patience=5)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown training settings"):
        TrainConfig.from_dict({"learning_rate": 1})


def test_training_is_deterministic_and_keeps_best_epoch():
    data = synthetic_featureset(patients_per_class=4, dim=32, seed=1)
    y = data.y
    tr = data.windows_of(np.arange(0, len(data.seizures), 2))
    va = data.windows_of(np.arange(1, len(data.seizures), 2))
    a = train_model(data.x[tr], y[tr], SMALL, data.x[va], y[va])
    b = train_model(data.x[tr], y[tr], SMALL, data.x[va], y[va])
    assert a.history == b.history and a.best_epoch == b.best_epoch
    for (k, v), (_, w) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    f1, loss = a.history["val_f1"], a.history["val_loss"]
    # best F1; among equal F1, the lowest validation loss (first such epoch on exact ties)
    assert a.best_epoch == max(range(len(f1)), key=lambda i: (f1[i], -loss[i])) + 1
    assert a.best_val_f1 == max(f1)
    # the returned model is the best epoch's: its validation F1 is the recorded one
    from semiostream.trainer.metrics import macro_f1

    assert macro_f1(y[va], predict(a.model, data.x[va])) == pytest.approx(a.best_val_f1)
    c = train_model(data.x[tr], y[tr], SMALL.replace(seed=5), data.x[va], y[va])
    assert c.history["train_loss"] != a.history["train_loss"]


def test_patience_stops_early_and_no_validation_keeps_last_epoch():
    data = synthetic_featureset(patients_per_class=3, dim=16, seed=2)
    r = train_model(data.x, data.y, SMALL.replace(epochs=200, patience=3), data.x[:10], data.y[:10])
    assert r.epochs_run < 200 and r.epochs_run - r.best_epoch == 3
    r2 = train_model(data.x, data.y, SMALL.replace(epochs=4))
    assert r2.epochs_run == 4 and r2.best_epoch == 4 and "val_f1" not in r2.history


def test_training_reduces_loss_bce():
    data = synthetic_featureset(patients_per_class=3, dim=16, seed=4)
    r = train_model(data.x, data.y, SMALL.replace(loss="bce", epochs=40, dropout=0.1))
    assert np.mean(r.history["train_loss"][-5:]) < 0.7 * np.mean(r.history["train_loss"][:3])


def test_cv_on_synthetic_features_beats_chance_and_null_does_not():
    data = synthetic_featureset(patients_per_class=5, dim=64, signal=0.8, seed=0)
    folds = make_folds(data, 5, seed=0)
    cfg = SMALL.replace(epochs=25)
    cv = cross_validate(data, folds, cfg)
    assert np.all(np.isfinite(cv.p_oof)) and set(cv.fold_of_window.tolist()) == set(range(5))
    f1 = cv.summary["window"]["f1_macro"]["mean"]
    assert f1 > 0.85, cv.line()
    assert cv.summary["seizure"]["f1_macro"]["mean"] > 0.85
    assert cv.summary["window"]["roc_auc"]["mean"] > 0.9
    # same data without any class signal: selection on validation F1 is optimistic, but stays far below
    null = synthetic_featureset(patients_per_class=5, dim=64, signal=0.0, seed=0)
    cv0 = cross_validate(null, make_folds(null, 5, seed=0), cfg)
    assert cv0.summary["window"]["roc_auc"]["mean"] < 0.75, cv0.line()
