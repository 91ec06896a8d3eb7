"""Window-level training data: I3D feature sequences with their seizure, patient and label.

A :class:`FeatureSet` holds every window of every seizure in one array ``x`` ``[N, 7, 1024]`` float32
(pre-padded with rows of -1) and ``seizure_index`` ``[N]`` saying which seizure each window came from.
Each seizure is the manifest's :class:`~semiostream.core.segment.Segment` (ids, label, class id ``y``); its
number of windows is :attr:`FeatureSet.n_windows`. Cross-validation splits *seizures* (grouped by patient);
:meth:`FeatureSet.windows_of` maps a set of seizures to the indices of their windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semiostream.core.segment import Segment


class FeatureSet:
    """Every window's features plus the seizure it belongs to.

    Args:
        x: ``[N, T, D]`` float32 feature sequences (T = 7, D = 1024 for I3D), pre-padded with -1.
        seizure_index: ``[N]`` int, index into ``seizures`` of each window.
        seizures: one :class:`~semiostream.core.segment.Segment` per seizure, with ``patient_id``,
            ``seizure_id`` and ``label``; ``seizure_index`` must lie in ``0..len(seizures) - 1``.
    """

    def __init__(self, x: np.ndarray, seizure_index: np.ndarray, seizures: Sequence[Segment]) -> None:
        x = np.asarray(x, dtype=np.float32)
        seizure_index = np.asarray(seizure_index, dtype=np.int64)
        if x.ndim != 3:
            raise ValueError(f"x must be [N, T, D] feature sequences; got shape {x.shape}")
        if seizure_index.shape != (x.shape[0],):
            raise ValueError(f"seizure_index has shape {seizure_index.shape}, expected ({x.shape[0]},)")
        if len(seizure_index) and not (0 <= seizure_index.min() and seizure_index.max() < len(seizures)):
            raise ValueError(f"seizure_index must lie in 0..{len(seizures) - 1} (one entry per seizure)")
        for s in seizures:
            if s.patient_id is None or s.seizure_id is None or s.label is None:
                raise ValueError(f"seizure {s.input_id}: training needs its patient_id, seizure_id and label")
        self.x = x
        self.seizure_index = seizure_index
        self.seizures = list(seizures)

    @classmethod
    def from_parts(cls, parts: Sequence[tuple[Segment, np.ndarray]], feature_shape=(7, 1024)) -> FeatureSet:
        """Concatenate per-seizure feature arrays ``[n_i, T, D]`` (seizures with 0 windows are kept)."""
        infos, xs, idx = [], [], []
        for i, (info, feats) in enumerate(parts):
            feats = np.asarray(feats, np.float32).reshape((-1, *feature_shape))
            infos.append(info)
            xs.append(feats)
            idx.append(np.full(len(feats), i, np.int64))
        x = np.concatenate(xs) if xs else np.zeros((0, *feature_shape), np.float32)
        return cls(x, np.concatenate(idx) if idx else np.zeros(0, np.int64), infos)

    def __len__(self) -> int:
        return len(self.x)

    @property
    def y(self) -> np.ndarray:
        """``[N]`` int window labels (TLE = 1)."""
        return self.seizure_y[self.seizure_index]

    @property
    def n_windows(self) -> np.ndarray:
        """``[S]`` int64 number of windows of each seizure."""
        return np.bincount(self.seizure_index, minlength=len(self.seizures)).astype(np.int64)

    @property
    def seizure_y(self) -> np.ndarray:
        """``[S]`` int seizure labels (TLE = 1)."""
        return np.array([s.y for s in self.seizures], dtype=np.int64)

    @property
    def seizure_groups(self) -> np.ndarray:
        """``[S]`` patient id of each seizure (the CV groups)."""
        return np.array([s.patient_id for s in self.seizures], dtype=object)

    def windows_of(self, seizure_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Indices of the windows that belong to the given seizure indices, in window order."""
        return np.flatnonzero(np.isin(self.seizure_index, np.asarray(seizure_ids, dtype=np.int64)))

    def subset(self, seizure_ids: Sequence[int] | np.ndarray) -> FeatureSet:
        """A FeatureSet of the given seizures only (in the given order), their windows in window order."""
        ids = [int(i) for i in np.asarray(seizure_ids, dtype=np.int64)]
        parts = [(self.seizures[i], self.x[self.seizure_index == i]) for i in ids]
        return FeatureSet.from_parts(parts, feature_shape=self.x.shape[1:])
