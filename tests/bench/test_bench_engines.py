"""bench engines: the I3D FLOP count, the matmul peak and a minimal backend sweep (tool checks, not claims)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from semiostream.bench import common
from semiostream.bench import engines as be

CKPT = Path(__file__).resolve().parents[2].parent / "shared" / "assets" / "i3d-kinetics-400.ckpt"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    if not CKPT.is_file():
        pytest.skip(f"real asset {CKPT} is absent")
    return common.bench_bundle(None, CKPT, tmp_path_factory.mktemp("bench-engines"))


def test_conv_flops_match_torch_flop_counter(bundle):
    from torch.utils.flop_counter import FlopCounterMode

    f = be.conv_flops(bundle.i3d, frames=16, size=224, in_channels=1)
    assert f["conv3d_layers"] == 57 and f["flops"] == 2 * f["macs"]
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        bundle.i3d.extract_features(torch.zeros(1, 1, 16, 224, 224))
    conv = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k))
    assert f["flops"] == conv
    f60 = be.conv_flops(bundle.i3d, frames=60)
    assert 3.0 < f60["flops"] / f["flops"] < 4.5  # roughly linear in T (TF-SAME padding rounds up)


def test_matmul_peak_is_positive_and_plausible():
    peaks = be.matmul_peak("cpu", n=256, repeats=1)
    assert "fp32" in peaks and 0.1 < peaks["fp32"] < 1e5


def test_sweep_json_structure(bundle, tmp_path):
    res = be.sweep(bundle, ["torch-cpu-fp32"], batches=(1,), repeats=1, end_to_end=False, compile=False)
    (row,) = res["rows"]
    assert row["backend"] == "torch-cpu-fp32" and row["batch"] == 1 and row["precision"] == "fp32"
    assert row["ms_per_window"] > 0 and row["windows_per_s"] == pytest.approx(1e3 / row["ms_per_window"])
    assert row["achieved_gflops"] == pytest.approx(res["flops"]["flops"] / row["ms_per_window"] * 1e3 / 1e9)
    assert row["peak_gflops"] >= res["peak_gflops"]["cpu"]["fp32"]  # re-measured beside the row, larger kept
    assert row["fraction_of_peak"] == pytest.approx(row["achieved_gflops"] / row["peak_gflops"])
    assert res["skipped"] == {}  # only the requested backend, which runs here
    res.update(machine=common.machine_facts())
    path = be.plot_sweep(res, tmp_path / "p.png")
    assert path.stat().st_size > 1000
    json.dumps(res)  # JSON-able
