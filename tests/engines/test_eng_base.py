"""Engine.infer checks names, dtypes and shapes against the model metadata; timing; lifecycle."""

from __future__ import annotations

import pytest
import torch

from semiostream.engines.base import EngineError, classifier_io, feature_io
from semiostream.engines.registry import create_engine


@pytest.fixture(scope="module")
def cls_engine(eng_bundle):
    with create_engine("torch-cpu-fp32", eng_bundle, "classifier") as e:
        yield e


@pytest.fixture(scope="module")
def feat_engine(eng_bundle):
    with create_engine("torch-cpu-fp32", eng_bundle, "features") as e:
        yield e


def test_io_specs_describe_both_roles():
    f = feature_io()
    assert f.input_names == ("frames",) and f.output_names == ("features",)
    assert f.inputs[0].shape == ("batch", 1, "frames", 224, 224) and f.dims["frames"] == (9, 64)
    c = classifier_io()
    assert c.inputs[0].shape == ("batch", 7, 1024) and c.outputs[0].shape == ("batch",)
    assert f.with_dims(frames=(9, 60)).dims["frames"] == (9, 60)
    with pytest.raises(KeyError):
        c.with_dims(frames=(9, 60))


def test_infer_accepts_dict_or_tensor_and_records_timing(cls_engine):
    x = torch.rand(3, 7, 1024)
    before = cls_engine.stats.calls
    p1 = cls_engine.infer(x)
    p2 = cls_engine.infer({"features": x})
    assert p1.shape == (3,) and p1.dtype == torch.float32
    torch.testing.assert_close(p1, p2)
    assert cls_engine.stats.calls == before + 2 and cls_engine.stats.samples >= 6
    assert cls_engine.stats.last_s > 0 and cls_engine.stats.mean_s_per_sample > 0


@pytest.mark.parametrize(
    "feeds, message",
    [
        ({"x": torch.rand(1, 7, 1024)}, "takes inputs ['features']"),
        ({"features": torch.rand(1, 7, 1024, dtype=torch.float64)}, "must be torch.float32"),
        ({"features": torch.rand(7, 1024)}, "must have shape [batch:1..64, 7, 1024]"),
        ({"features": torch.rand(2, 6, 1024)}, "axis 1 is 6, expected 7"),
        ({"features": torch.rand(65, 7, 1024)}, "batch=65 is outside this engine's range [1, 64]"),
        ({"features": [[0.0]]}, "must be a torch.Tensor"),
    ],
)
def test_infer_rejects_bad_inputs(cls_engine, feeds, message):
    with pytest.raises(EngineError) as e:
        cls_engine.infer(feeds)
    assert message in str(e.value)


def test_feature_engine_checks_frames_and_channels(feat_engine):
    with pytest.raises(EngineError, match=r"frames=8 is outside this engine's range \[9, 64\]"):
        feat_engine.infer(torch.zeros(1, 1, 8, 224, 224))
    with pytest.raises(EngineError, match="axis 1 is 3, expected 1"):
        feat_engine.infer(torch.zeros(1, 3, 9, 224, 224))
    with pytest.raises(EngineError, match="axis 3 is 112"):
        feat_engine.infer(torch.zeros(1, 1, 9, 112, 224))
    out = feat_engine.infer(torch.zeros(1, 1, 9, 224, 224))
    assert out.shape == (1, 1, 1024)


def test_closed_engine_refuses_calls(eng_bundle):
    with create_engine("torch-cpu-fp32", eng_bundle, "classifier") as e:
        e.infer(torch.rand(1, 7, 1024))
    assert e.closed
    with pytest.raises(EngineError, match="closed"):
        e.infer(torch.rand(1, 7, 1024))
