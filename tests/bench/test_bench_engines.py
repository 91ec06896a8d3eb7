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


@pytest.mark.slow
def test_peers_interleaved_stages_add_up(bundle, tmp_path):
    """bench engines --peers: every variant timed in every round; semiostream's stages add up to its total;
    the OpenVINO peer runs the 3-channel reference I3D (tool check, not a claim)."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the dev extra installs it)")
    rgb = be.reference_rgb_bundle(bundle, CKPT, tmp_path)
    assert rgb.in_channels == 3 and bundle.in_channels == 1
    res = be.peers(bundle, rgb, repeats=1, backends=["openvino-cpu-fp32"], progress=lambda m: None)
    rows = {r["variant"]: r for r in res["rows"]}
    ours = next(r for n, r in rows.items() if n.startswith("semiostream end to end, openvino-cpu-fp32"))
    parts = ours["preprocess_s"] + ours["copies_batching_s"] + ours["i3d_s"] + ours["classifier_call_s"] + ours["other_s"]
    assert parts == pytest.approx(ours["total_s"], rel=1e-6)
    assert 0 < ours["i3d_s"] < ours["total_s"] and 0 <= ours["classifier_s"] <= ours["classifier_call_s"]
    assert any(n.startswith("peer: reference RGB I3D, ONNX -> OpenVINO") for n in rows)
    assert all(r["rounds"] == 1 and r["total_s"] > 0 for r in rows.values())
    ratios = be.peer_ratios(res)
    assert len(ratios) == len(rows) - 1 and all(x > 0 for _, _, x in ratios)
    json.dumps(res)
