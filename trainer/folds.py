"""Subject-grouped, label-stratified cross-validation folds (the paper's 5-fold CV, section 3.6).

Seizures are split with scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`
(``groups`` = patient, ``y`` = seizure label, shuffled with a seed), so no patient is ever in the
training and the validation part of one fold. :func:`fold_composition` counts patients, seizures and
windows per class on each side; :func:`format_composition` prints it as a table.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semiostream.core.segment import LABELS

from .dataset import FeatureSet


class FoldError(ValueError):
    """The data cannot be split as asked (too few patients, a missing class)."""


@dataclass(frozen=True)
class Fold:
    """One split of the *seizures*: indices into ``FeatureSet.seizures``."""

    index: int
    train: np.ndarray
    val: np.ndarray


def make_folds(data: FeatureSet, n_splits: int = 5, seed: int = 0) -> list[Fold]:
    """Split seizures into ``n_splits`` folds grouped by patient and stratified by label.

    Raises:
        FoldError: fewer patients than folds, or a class missing from the data.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = data.seizure_groups
    y = data.seizure_y
    n_patients = len(set(groups.tolist()))
    if n_splits < 2:
        raise FoldError(f"n_splits={n_splits}; cross-validation needs at least 2 folds")
    if n_patients < n_splits:
        raise FoldError(
            f"{n_patients} patients cannot fill {n_splits} patient-grouped folds; "
            f"use --folds {max(2, n_patients)} or fewer, or add patients"
        )
    missing = [LABELS[c] for c in (0, 1) if not np.any(y == c)]
    if missing:
        raise FoldError(f"no {' or '.join(missing)} seizures in the data; training needs both classes")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = []
    with warnings.catch_warnings():  # "least populated class has only k members" - reported below instead
        warnings.simplefilter("ignore", UserWarning)
        try:
            splits = list(cv.split(np.zeros(len(y)), y, groups))
        except ValueError as e:  # e.g. fewer seizures of a class than folds
            counts = ", ".join(f"{LABELS[c]} {int(np.sum(y == c))}" for c in (0, 1))
            raise FoldError(f"cannot make {n_splits} stratified folds from {counts} seizures ({e}); "
                            "use fewer --folds or add seizures") from e
        for i, (tr, va) in enumerate(splits):
            folds.append(Fold(i, np.sort(tr), np.sort(va)))
    return folds


def check_disjoint(data: FeatureSet, folds: list[Fold]) -> None:
    """Raise AssertionError if any patient is on both sides of a fold or a seizure is validated twice."""
    groups = data.seizure_groups
    seen_val: set[int] = set()
    for f in folds:
        both = set(groups[f.train].tolist()) & set(groups[f.val].tolist())
        if both:
            raise AssertionError(f"fold {f.index}: patients {sorted(both)} are in train and validation")
        if set(f.val.tolist()) & seen_val:
            raise AssertionError(f"fold {f.index}: a seizure is in two validation folds")
        seen_val |= set(f.val.tolist())
        if len(set(f.train.tolist()) | set(f.val.tolist())) != len(data.seizures):
            raise AssertionError(f"fold {f.index}: train + validation do not cover every seizure")


def _side(data: FeatureSet, seizures: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c, lab in enumerate(LABELS):
        sel = [i for i in seizures.tolist() if data.seizures[i].y == c]
        out[lab] = {
            "patients": sorted({data.seizures[i].patient_id for i in sel}),
            "seizures": len(sel),
            "windows": int(data.n_windows[sel].sum()),
        }
    return out


def fold_composition(data: FeatureSet, folds: list[Fold]) -> list[dict[str, Any]]:
    """Per fold and side (train / val), per class: patient ids, seizure and window counts."""
    return [{"fold": f.index, "train": _side(data, f.train), "val": _side(data, f.val)} for f in folds]


def format_composition(comp: list[dict[str, Any]]) -> str:
    """A plain-text table: one line per fold, patients / seizures / windows per class and side."""
    head = f"{'fold':>4}  {'side':<5}" + "".join(f"  {lab + ' pat/seiz/win':>20}" for lab in LABELS)
    lines = [head, "-" * len(head)]
    for c in comp:
        for side in ("train", "val"):
            cells = "".join(
                f"  {len(c[side][lab]['patients']):>6}/{c[side][lab]['seizures']:>5}/{c[side][lab]['windows']:>7}"
                for lab in LABELS
            )
            lines.append(f"{c['fold']:>4}  {side:<5}{cells}")
    return "\n".join(lines)


def save_composition(path: str | os.PathLike, comp: list[dict[str, Any]]) -> Path:
    p = Path(path)
    p.write_text(json.dumps(comp, indent=1) + "\n")
    return p
