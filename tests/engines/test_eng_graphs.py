"""engines.graphs and the torch engine's graph path: the CPU runs the same static-buffer / bucket / padding
code eagerly and must give the reference's features (folded BN, channels-last); on a GPU the captured CUDA
graphs (fp16, bf16) must equal the same engine without graphs (gpu marker)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from semiostream.engines.backend_torch import TorchEngine, optimized_i3d
from semiostream.engines.graphs import BatchGraphs, ShapeGraph, bucket
from semiostream.engines.registry import BACKENDS


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def test_buckets():
    assert [bucket(b, 64) for b in (1, 2, 3, 5, 17, 33, 64)] == [1, 2, 4, 8, 32, 64, 64]
    assert bucket(5, 6) == 6
    with pytest.raises(ValueError):
        bucket(0, 8)


def test_shape_graph_protocol_on_cpu():
    lin = torch.nn.Linear(4, 3).eval()
    g = ShapeGraph(lin, torch.zeros(2, 4))
    assert not g.captured
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    ya = g(a)
    yb = g(b)
    with torch.no_grad():
        assert torch.equal(ya, lin(a)) and torch.equal(yb, lin(b))  # an earlier result is not overwritten
    with pytest.raises(ValueError, match="takes"):
        g(torch.zeros(3, 4))
    bg = BatchGraphs(lin, (4,), 8, torch.float32, torch.device("cpu"))
    x = torch.randn(5, 4)
    with torch.no_grad():
        assert torch.allclose(bg(x), lin(x), atol=1e-6)
    assert sorted(bg.graphs) == [8] and bg.accepts(x) and not bg.accepts(torch.zeros(9, 4))


@pytest.fixture(scope="module")
def short_bundle(eng_bundle):
    """The engine bundle with a 9-frame standard window (the graphed length), so the CPU test stays fast."""
    return dataclasses.replace(eng_bundle, spec=dataclasses.replace(eng_bundle.spec, window=9))


def test_graphed_engine_on_cpu_equals_the_reference(short_bundle):
    x = torch.rand(3, 1, 9, 224, 224, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.inference_mode():
        ref = short_bundle.i3d.extract_features(x)  # unfolded BN, contiguous layout
        unfolded = optimized_i3d(short_bundle.i3d, "cpu", "fp32", fold_bn=False, channels_last=False)(x)
    with TorchEngine(short_bundle, "features", "cpu", "fp32", compile=False, graphs=True) as e:
        assert e.graphed and not e.compiled
        y = e.infer(x)  # batch 3 runs in the 4-bucket, padded with a zero window
        assert sorted(e._graphs.graphs) == [4]
        y1 = e.infer(x[1:2])
    assert y.shape == ref.shape == (3, 1, 1024)
    assert rel_err(unfolded, ref) <= 1e-6
    assert rel_err(y, ref) <= 1e-5  # folded BN + channels-last + padding: float rounding only
    assert rel_err(y1, ref[1:2]) <= 1e-5
    with pytest.raises(Exception, match="not both"):
        TorchEngine(short_bundle, "features", "cpu", "fp32", compile=True, graphs=True)


def test_cuda_bf16_backend_is_registered():
    info = BACKENDS["torch-cuda-bf16"]
    assert (info.device, info.precision, info.module) == ("cuda", "bf16", "backend_torch")
    if not torch.cuda.is_available():
        assert info.available() == (False, "torch sees no CUDA GPU")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_graphs_equal_eager(eng_bundle, precision):
    x = torch.rand(3, 1, eng_bundle.spec.window, 224, 224, device="cuda") * 2 - 1
    with TorchEngine(eng_bundle, "features", "cuda", precision, graphs=False) as eager, \
            TorchEngine(eng_bundle, "features", "cuda", precision) as graphed:
        assert graphed.graphed and graphed._graphs.graphs == {}
        y_eager = eager.infer(x)
        y = graphed.infer(x)
        y_again = graphed.infer(x)
        assert list(graphed._graphs.graphs) == [4] and graphed._graphs.graphs[4].captured
    with torch.inference_mode():
        ref = copy.deepcopy(eng_bundle.i3d).cuda().extract_features(x)
    assert torch.equal(y, y_again)
    assert rel_err(y, y_eager) <= 2e-2
    assert rel_err(y, ref) <= (2e-2 if precision == "fp16" else 5e-2)
