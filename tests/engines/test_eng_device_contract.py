"""What a Scorer on a CUDA backend hands to DALI, to the engines and to the stream.

The backend is a real one registered for the test (``recording-cuda-fp32``): its engines are
:class:`~semiostream.engines.base.Engine` subclasses that run the bundle's own modules and record the
device, stream and current CUDA stream they were given. On a CPU machine the Scorer is built (nothing CUDA
happens at construction) and its wiring is checked; on a GPU the same Scorer runs end to end.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semiostream.core.device import Device
from semiostream.dali_pipes.reference import preprocess
from semiostream.engines import registry
from semiostream.engines.base import Engine, classifier_io, feature_io
from semiostream.engines.scorer import Scorer
from semiostream.models.classifier import pad_features

NAME = "recording-cuda-fp32"


class RecordingEngine(Engine):
    """The bundle's model on ``device``; remembers what it was given and which stream each call ran on."""

    created: list[RecordingEngine] = []

    def __init__(self, bundle, role, device, precision, stream=None):
        super().__init__(feature_io(bundle.in_channels) if role == "features" else classifier_io())
        self.name, self.device, self.stream = NAME, device, stream
        self._source = bundle.i3d if role == "features" else bundle.classifier
        self._model = None  # a copy on the device, made at the first call (construction stays CUDA-free)
        self.call_streams: list = []
        RecordingEngine.created.append(self)

    def _infer_impl(self, feeds):
        import copy

        if self._model is None:
            self._model = copy.deepcopy(self._source).to(self.device.torch).eval()
        x = next(iter(feeds.values())).to(self.device.torch)
        self.call_streams.append(torch.cuda.current_stream(self.device.torch))
        with torch.inference_mode():
            return self._model.extract_features(x) if self.role == "features" else self._model(x)


@pytest.fixture
def recording_backend(monkeypatch):
    RecordingEngine.created = []
    info = registry.BackendInfo(NAME, "", "cuda", "fp32", lambda: (True, ""),
                                factory=lambda bundle, role, **kw: RecordingEngine(bundle, role, **kw))
    monkeypatch.setitem(registry.BACKENDS, NAME, info)
    return info


class CallerStream:
    """A caller's stream handle (what ``torch.cuda.Stream`` exposes to DALI and ONNX Runtime)."""

    cuda_stream = 0x5EED


def test_cuda_scorer_hands_dali_the_gpu_and_its_index_and_the_engines_device_and_stream(eng_bundle,
                                                                                       recording_backend):
    stream = CallerStream()
    s = Scorer(eng_bundle, NAME, preprocessing="dali", device="cuda:1", stream=stream)
    assert s.device == Device("cuda", 1) and s.device.type == "cuda"  # bus/runtime sizes batches from .type
    assert s.stream is stream
    dali = s._preprocessor
    assert (dali.dali_device, dali.device_id, dali.device) == ("gpu", 1, Device("cuda", 1))
    fe, ce = RecordingEngine.created
    assert (fe.role, ce.role) == ("features", "classifier")
    for e in (fe, ce):
        assert e.device == Device("cuda", 1) and e.stream is stream


def test_unindexed_cuda_backend_uses_the_current_gpu_and_a_cpu_device_is_refused(eng_bundle, recording_backend):
    current = torch.cuda.current_device() if torch.cuda.is_available() else 0
    s = Scorer(eng_bundle, NAME, preprocessing="dali", stream=CallerStream())
    assert s.device == Device("cuda", current) and s._preprocessor.device_id == current
    with pytest.raises(ValueError, match="runs on cuda, not on cpu"):
        Scorer(eng_bundle, NAME, device="cpu", stream=CallerStream())


def test_cpu_backend_keeps_dali_on_the_cpu_without_a_stream(eng_bundle):
    with Scorer(eng_bundle, "torch-cpu-fp32", preprocessing="dali", engine_options={"compile": False}) as s:
        assert s.device == Device.cpu() and s.stream is None
        assert (s._preprocessor.dali_device, s._preprocessor.device_id) == ("cpu", None)
        assert s.feature_engine.device == Device.cpu()


@pytest.mark.gpu
def test_on_a_gpu_every_step_runs_on_the_scorers_own_stream(eng_bundle, recording_backend, make_ir):
    windows = [make_ir(16, seed=1), make_ir(9, seed=2)]
    with Scorer(eng_bundle, NAME, preprocessing="dali", max_batch=2) as s:
        assert isinstance(s.stream, torch.cuda.Stream)
        assert s.stream != torch.cuda.default_stream(s.device.torch)  # never the legacy default stream
        pre = s.preprocess(windows)
        assert all(x.is_cuda and x.device.index == s.device.index for x in pre)
        for x, w in zip(pre, windows, strict=True):
            assert float((x.cpu() - preprocess(w, None, eng_bundle.spec)).abs().max()) < 1e-3
        p = s.score_windows(windows)
    fe, ce = RecordingEngine.created
    assert fe.call_streams and all(st == s.stream for st in fe.call_streams + ce.call_streams)
    with torch.inference_mode():
        ref = [eng_bundle.classifier(pad_features(eng_bundle.i3d.extract_features(
            preprocess(w, None, eng_bundle.spec)[None].cuda()))).item() for w in windows]
    np.testing.assert_allclose(p, ref, atol=2e-3)


@pytest.mark.gpu
def test_torch_cuda_fp32_is_true_fp32(eng_bundle):
    """The reference GPU backend matches the CPU fp32 model to 1e-4 (TF32 would miss it by ~10x)."""
    x = torch.rand(2, 1, 16, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        ref = eng_bundle.i3d.extract_features(x)
    with registry.create_engine("torch-cuda-fp32", eng_bundle, "features", compile=False) as e:
        y = e.infer(x).cpu()
    assert float((y - ref).abs().max() / ref.abs().max()) <= 1e-4
