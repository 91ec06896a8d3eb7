"""Per-event aggregation: mean of window probabilities, label by threshold with the bundle's names."""

from __future__ import annotations

import numpy as np
import pytest

from semiostream.core.decision import aggregate_event, aggregate_events


def test_mean_and_label():
    e = aggregate_event([0.2, 0.9, 0.7], ("FLE", "TLE"))
    assert e.p_tle == pytest.approx(0.6) and e.label == "TLE" and e.windows == 3
    assert e.p_min == 0.2 and e.p_max == 0.9
    assert aggregate_event(np.array([0.1, 0.3]), ("frontal", "temporal")).label == "frontal"
    assert aggregate_event([0.5]).label == "TLE"  # >= threshold
    assert aggregate_event([0.6], threshold=0.7).label == "FLE"


def test_groups_by_event():
    out = aggregate_events([0.1, 0.9, 0.8, 0.2], ["a", "b", "b", "a"])
    assert out["a"].p_tle == pytest.approx(0.15) and out["b"].label == "TLE"


@pytest.mark.parametrize("probs, msg", [([], "at least one"), ([1.2], r"\[0, 1\]"), ([np.nan], "NaN")])
def test_rejects_bad_probabilities(probs, msg):
    with pytest.raises(ValueError, match=msg):
        aggregate_event(probs)
