"""The one decision rule (semiostream.core.decision) and the live scorer's ``threshold`` setting."""

from __future__ import annotations

import numpy as np
import pytest

from semiostream.bus.config import ServiceConfig, load_service_config
from semiostream.bus.events import Event
from semiostream.core.decision import DECISION_THRESHOLD, aggregate_event, decide, positive
from semiostream.core.errors import UserError
from semiostream.trainer.metrics import binary_metrics


def test_decide_is_p_at_or_above_the_threshold():
    assert DECISION_THRESHOLD == 0.5
    labels = ("FLE", "TLE")
    assert [decide(p, labels) for p in (0.0, 0.4999, 0.5, 1.0)] == ["FLE", "FLE", "TLE", "TLE"]
    assert [decide(p, labels, 0.7) for p in (0.5, 0.6999, 0.7)] == ["FLE", "FLE", "TLE"]
    assert decide(float("nan"), labels) == "FLE"
    np.testing.assert_array_equal(positive(np.array([0.2, 0.5, 0.8], np.float32), 0.6), [0, 0, 1])


def test_a_threshold_labels_live_archive_and_trainer_alike():
    probs = [0.55, 0.62, 0.58]  # mean 0.5833...: TLE at 0.5, FLE at 0.6
    for threshold, want in ((0.5, "TLE"), (0.6, "FLE")):
        live = Event("bed", "e1", 0, 1, probs=list(probs)).summary(("FLE", "TLE"), "b", threshold)
        archive = aggregate_event(probs, ("FLE", "TLE"), threshold)
        m = binary_metrics(np.array([1]), np.array([np.mean(probs)]), threshold)
        assert live.label == archive.label == want
        assert m["confusion"] == ([[0, 0], [0, 1]] if want == "TLE" else [[0, 0], [1, 0]])


def test_service_threshold_defaults_to_the_rule_and_is_checked(tmp_path):
    assert ServiceConfig(bundle=tmp_path).threshold == DECISION_THRESHOLD
    assert ServiceConfig(bundle=tmp_path, threshold=0.7).threshold == 0.7
    cfg = tmp_path / "scorer.yaml"
    cfg.write_text("bundle: b\nthreshold: 1.5\n")
    with pytest.raises(UserError, match="threshold"):
        load_service_config(cfg)
