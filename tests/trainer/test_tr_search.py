from __future__ import annotations

import numpy as np
import pytest
from tr_helpers import synthetic_featureset

from semiostream.trainer.folds import make_folds
from semiostream.trainer.search import SearchSpace, plan_trials, random_search
from semiostream.trainer.train import TrainConfig


def test_samples_stay_in_the_papers_ranges_and_are_seeded():
    space = SearchSpace()
    rng = np.random.default_rng(0)
    cfgs = [space.sample(rng, TrainConfig()) for _ in range(300)]
    for c in cfgs:
        assert all(32 <= u <= 256 for u in c.lstm_units)
        assert all(16 <= u <= 128 for u in c.dense_units)
        assert c.loss in ("mse", "bce")
        assert 0 <= c.dropout <= 0.5 and 0 <= c.recurrent_dropout <= 0.5
        assert 50 <= c.epochs <= 2000 and 50 <= c.batch_size <= 2000
    assert {c.loss for c in cfgs} == {"mse", "bce"}
    assert min(c.epochs for c in cfgs) < 300 and max(c.epochs for c in cfgs) > 1700  # the range is covered
    a = plan_trials(5, TrainConfig(), space, seed=3)
    assert a == plan_trials(5, TrainConfig(), space, seed=3)
    assert a != plan_trials(5, TrainConfig(), space, seed=4)
    assert a[0] == TrainConfig()  # the base configuration is trial 0


def test_space_validation():
    with pytest.raises(ValueError, match="low <= high"):
        SearchSpace(epochs=(10, 5))
    with pytest.raises(ValueError, match="losses"):
        SearchSpace(losses=("hinge",))


def test_random_search_picks_the_best_trial_and_tabulates():
    data = synthetic_featureset(patients_per_class=5, dim=32, signal=0.8, seed=5)
    folds = make_folds(data, 5, seed=0)
    base = TrainConfig(lstm_units=(16, 8), dense_units=(8, 8), epochs=3, batch_size=32, seed=0)
    space = SearchSpace(lstm_units=(8, 24), dense_units=(4, 16), epochs=(2, 20), batch_size=(16, 64))
    seen = []
    res = random_search(data, folds, 4, base, space, seed=1, on_trial=lambda i, cv: seen.append(i))
    assert seen == [0, 1, 2, 3] and len(res.trials) == 4
    assert [cv.config for cv in res.trials] == plan_trials(4, base, space, seed=1)
    scores = [cv.score("window", "f1_macro") for cv in res.trials]
    assert scores[res.best] == max(scores)
    table = res.table()
    assert table[0]["trial"] == res.best and table[0]["best"] and sum(r["best"] for r in table) == 1
    assert [r["window_f1"] for r in table] == sorted([r["window_f1"] for r in table], reverse=True)
    md = res.markdown()
    assert md.count("\n") == 1 + 4 and "**best**" in md
