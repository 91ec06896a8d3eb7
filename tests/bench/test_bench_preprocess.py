"""bench preprocess: the tool's JSON/table/plot on tiny windows, and the DALI CPU path's exactness."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from semiostream.bench import preprocess as bp
from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.dali_pipes.reference import preprocess


def test_run_reports_every_variant_on_the_same_windows():
    windows, rois = bp.make_windows(2, 48, 64, frames=12)
    res = bp.run(windows, rois, repeat=1, threads=1, batch=2)
    r = res["results"]
    assert {"naive_numpy_loop", "torch_reference", "dali_cpu_1t", "dali_cpu_in_graph_1t"} <= set(r)
    assert r["naive_numpy_loop"]["speedup_vs_naive"] == pytest.approx(1.0)
    for name, v in r.items():
        assert v["windows_per_s"] > 0 and v["frames_per_s"] == pytest.approx(12 * v["windows_per_s"]), name
        assert v["max_abs_diff_vs_reference"] < 1e-3, name  # every variant computes the same function
    assert all(ms > 0 for ms in res["components"].values())


def test_cli_writes_json_with_machine_facts_and_a_plot(tmp_path):
    from semiostream.cli import main

    rc = main(["bench", "preprocess", "--windows", "2", "--height", "40", "--width", "56", "--repeat", "1",
               "--threads", "1", "--no-in-graph", "--out", str(tmp_path)])
    assert rc == 0
    data = json.loads(next(tmp_path.glob("preprocess_*.json")).read_text())
    assert data["benchmark"] == "preprocess" and data["windows"] == 2 and data["height"] == 40
    m = data["machine"]
    assert m["cpu_count"] >= 1 and m["cpu"] and "torch" in m["libraries"] and len(m["loadavg"]) == 3
    assert "dali_cpu_in_graph_1t" not in data["results"]
    assert data["command"].startswith("semiostream bench preprocess")
    png = next(tmp_path.glob("preprocess_*_bars.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _full_range(t, h, w, seed):
    return np.random.default_rng(seed).integers(0, 65536, (t, h, w), dtype=np.uint16)


@pytest.mark.parametrize("spec", [
    PreprocessSpec(),  # percentiles (integers on 16-bit data: the uint16 host path)
    PreprocessSpec(intensity_mode="fixed", intensity_lo=1000.5, intensity_hi=40000.25),  # fractional: float32 path
    PreprocessSpec(intensity_mode="fixed", intensity_lo=60001, intensity_hi=60003),  # narrow window at a high level
])
def test_dali_cpu_path_equals_reference(spec):
    from semiostream.dali_pipes.pipeline import DaliPreprocessor

    cases = [(576, 640, (13, 7, 333, 571)), (97, 131, (1, 1, 130, 96)), (300, 200, (0, 0, 1, 1)),
             (424, 512, (0, 423, 512, 424)), (480, 640, (17, 23, 618, 301))]
    windows = [_full_range(9, h, w, i) for i, (h, w, _) in enumerate(cases)]
    if spec.intensity_lo == 60001:
        windows = [60000 + (w % 4) for w in windows]  # values around the narrow window
    rois = [r for _, _, r in cases]
    pre = DaliPreprocessor(spec, device="cpu", max_batch=3, num_threads=1)
    for out, fr, roi in zip(pre(windows, rois), windows, rois, strict=True):
        ref = preprocess(fr, roi, spec)
        assert out.shape == ref.shape and out.dtype == torch.float32
        assert float((out - ref).abs().max()) < 1e-3


def test_dali_cpu_padding_offsets_for_every_output_size():
    """crop_mirror_normalize places the resized image at exactly the reference's centre-pad offsets."""
    from semiostream.dali_pipes.pipeline import DaliPreprocessor

    spec = PreprocessSpec(intensity_mode="fixed", intensity_lo=0, intensity_hi=1000)
    rng = np.random.default_rng(0)
    windows = [rng.integers(0, 1000, (1, n, 224), dtype=np.uint16) for n in range(1, 225, 3)]  # landscape
    windows += [rng.integers(0, 1000, (1, 224, n), dtype=np.uint16) for n in range(2, 225, 5)]  # portrait
    pre = DaliPreprocessor(spec, device="cpu", max_batch=32, num_threads=1)
    worst = max(float((o - preprocess(w, None, spec)).abs().max()) for o, w in zip(pre(windows), windows, strict=True))
    assert worst < 1e-3


def test_dali_cpu_path_switches_between_uint16_and_float32_batches():
    """Integer intensity bounds take the uint16 graph, fractional ones the float32 graph; one preprocessor
    must serve both in any order and in one mixed batch (DALI fixes an external source's dtype)."""
    from semiostream.dali_pipes.intensity import intensity_window
    from semiostream.dali_pipes.pipeline import DaliPreprocessor

    spec = PreprocessSpec()
    a = np.random.default_rng(1).integers(1000, 1100, (9, 40, 50), dtype=np.uint16)  # many repeats: integer bounds
    b = np.full((9, 40, 50), 7, np.uint16)
    b[0].flat[:160] = 0  # 160 of the 16000 percentile pixels: the 1st percentile interpolates 0..7 -> 6.93
    assert all(float(v).is_integer() for v in intensity_window(a, None, spec))
    assert not all(float(v).is_integer() for v in intensity_window(b, None, spec))
    pre = DaliPreprocessor(spec, device="cpu", max_batch=2, num_threads=1)
    for batch in ([a], [b], [a], [a, b], [b, a]):
        for out, fr in zip(pre(batch), batch, strict=True):
            assert float((out - preprocess(fr, None, spec)).abs().max()) < 1e-3
