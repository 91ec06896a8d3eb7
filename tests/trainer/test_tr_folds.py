from __future__ import annotations

import numpy as np
import pytest
from tr_helpers import seizure, synthetic_featureset

from semiostream.trainer.dataset import FeatureSet
from semiostream.trainer.folds import (
    FoldError,
    check_disjoint,
    fold_composition,
    format_composition,
    make_folds,
)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_no_patient_in_train_and_validation_of_one_fold(seed):
    data = synthetic_featureset(patients_per_class=6, seed=seed)
    folds = make_folds(data, n_splits=5, seed=seed)
    assert len(folds) == 5
    groups = data.seizure_groups
    for f in folds:
        assert not set(groups[f.train]) & set(groups[f.val])
        # windows follow their seizures: no validation window in the training windows
        assert not set(data.windows_of(f.train)) & set(data.windows_of(f.val))
    all_val = np.concatenate([f.val for f in folds])
    assert sorted(all_val.tolist()) == list(range(len(data.seizures)))  # each seizure validated once
    check_disjoint(data, folds)


def test_check_disjoint_catches_a_leak():
    data = synthetic_featureset(patients_per_class=5)
    folds = make_folds(data, 5, seed=0)
    f0 = folds[0]
    leaked = type(f0)(0, np.append(f0.train, f0.val[0]), f0.val)
    with pytest.raises(AssertionError, match="in train and validation"):
        check_disjoint(data, [leaked, *folds[1:]])


def test_folds_are_seeded_and_stratified():
    data = synthetic_featureset(patients_per_class=5, seed=3)
    a = make_folds(data, 5, seed=11)
    b = make_folds(data, 5, seed=11)
    c = make_folds(data, 5, seed=12)
    assert all(np.array_equal(x.val, y.val) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x.val, y.val) for x, y in zip(a, c, strict=True))
    comp = fold_composition(data, a)
    for fc in comp:  # 5 patients per class over 5 folds: each validation part has both classes
        assert len(fc["val"]["FLE"]["patients"]) >= 1 and len(fc["val"]["TLE"]["patients"]) >= 1


def test_fold_composition_counts_by_hand():
    parts = [
        (seizure("A", "1", "FLE"), np.zeros((2, 7, 4))),
        (seizure("A", "2", "FLE"), np.zeros((3, 7, 4))),
        (seizure("B", "1", "TLE"), np.zeros((1, 7, 4))),
        (seizure("C", "1", "TLE"), np.zeros((4, 7, 4))),
        (seizure("D", "1", "FLE"), np.zeros((5, 7, 4))),
    ]
    data = FeatureSet.from_parts(parts, feature_shape=(7, 4))
    folds = make_folds(data, 2, seed=0)
    comp = fold_composition(data, folds)
    for f, fc in zip(folds, comp, strict=True):
        for side, idx in (("train", f.train), ("val", f.val)):
            for lab in ("FLE", "TLE"):
                sel = [i for i in idx if parts[i][0].label == lab]
                assert fc[side][lab]["seizures"] == len(sel)
                assert fc[side][lab]["windows"] == sum(len(parts[i][1]) for i in sel)
                assert fc[side][lab]["patients"] == sorted({parts[i][0].patient_id for i in sel})
    text = format_composition(comp)
    assert "train" in text and "val" in text and len(text.splitlines()) == 2 + 2 * 2


def test_too_few_patients_or_one_class():
    data = synthetic_featureset(patients_per_class=2)
    with pytest.raises(FoldError, match="4 patients cannot fill 5"):
        make_folds(data, 5)
    one = FeatureSet.from_parts([(seizure(f"P{i}", "1", "FLE"), np.zeros((1, 7, 4))) for i in range(6)],
                                feature_shape=(7, 4))
    with pytest.raises(FoldError, match="no TLE seizures"):
        make_folds(one, 5)
    few = FeatureSet.from_parts([(seizure(f"P{i}", "1", "FLE" if i < 3 else "TLE"), np.zeros((1, 7, 4)))
                                 for i in range(6)], feature_shape=(7, 4))
    with pytest.raises(FoldError, match="cannot make 5 stratified folds from FLE 3, TLE 3 seizures"):
        make_folds(few, 5)


def test_one_class_validation_folds_are_warned_about():
    from semiostream.trainer.run import one_class_folds

    parts = [(seizure(f"F{i}", str(k), "FLE"), np.zeros((2, 7, 4))) for i in range(3) for k in range(2)]
    parts += [(seizure(f"T{i}", str(k), "TLE"), np.zeros((2, 7, 4))) for i in range(2) for k in range(3)]
    data = FeatureSet.from_parts(parts, feature_shape=(7, 4))
    folds = make_folds(data, 5, seed=0)
    lacking = [f.index for f in folds if len(set(data.seizure_y[f.val].tolist())) < 2]
    assert lacking  # 5 patients in 5 folds: every validation part holds one class
    notes = one_class_folds(fold_composition(data, folds))
    assert [int(n.split()[1].rstrip(":")) for n in notes] == lacking
    assert all("macro F1 is at most 0.5" in n for n in notes)
    ok = make_folds(synthetic_featureset(patients_per_class=5), 5, seed=0)
    assert one_class_folds(fold_composition(synthetic_featureset(patients_per_class=5), ok)) == []
