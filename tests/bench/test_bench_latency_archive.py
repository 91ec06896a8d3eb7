"""bench latency and bench archive on the real I3D, tiny sizes, no torch.compile (tool checks, not claims)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semiostream.bench import common

CKPT = Path(__file__).resolve().parents[2].parent / "shared" / "assets" / "i3d-kinetics-400.ckpt"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    if not CKPT.is_file():
        pytest.skip(f"real asset {CKPT} is absent")
    return common.bench_bundle(None, CKPT, tmp_path_factory.mktemp("bench-live"))


def test_latency_point_with_a_real_scorer(bundle, tmp_path):
    from semiostream.bench import latency
    from semiostream.engines.scorer import Scorer

    with Scorer(bundle, "torch-cpu-fp32", max_batch=2, engine_options={"compile": False}) as scorer:
        points = latency.sweep([1], bundle=bundle, scorer=scorer, seconds=4.0, hop=30, width=64, height=48,
                               progress=lambda m: None)
    (p,) = points
    # 120 frames, window 60, hop 30 -> windows end at frames 60, 90, 120
    assert p["windows_expected"] == 3 and 1 <= p["windows_scored"] <= 3
    lat = p["latency_ms"]
    assert lat["n"] == p["windows_scored"] and 0 < lat["p50"] <= lat["p99"] <= lat["max"] < 60_000
    assert p["frames_sent"] == 120 and p["frames_received"] <= 120
    assert p["scorer_rss_mib"]["max"] > 100 and p["samples"]
    paths = latency.plot(points, tmp_path, 1500.0, "test")
    assert all(Path(x).stat().st_size > 1000 for x in paths)
    json.dumps(points)


def test_archive_scores_each_format_side_by_side(bundle, tmp_path):
    from semiostream.bench import archive
    from semiostream.engines.artifacts import bundle_dir

    manifest = archive.make_archive(tmp_path / "a", clips=1, seconds=2.5, width=64, height=48)
    folders = archive.make_formats(manifest, tmp_path / "f")
    assert {p.suffix for f in folders.values() for p in f.iterdir()} == {".mkv", ".dcm", ".npy"}
    res = archive.run(bundle_dir(bundle), folders, tmp_path / "runs", "torch-cpu-fp32", compile=False, max_batch=2)
    assert set(res["formats"]) == {"ffv1", "htj2k", "npy"} and res["engine_windows_per_s"] > 0
    for name, f in res["formats"].items():
        (run,) = f["runs"]
        assert run["inputs"] == 1 and run["failed"] == 0 and run["windows_scored"] == run["window_rows"] == 2
        assert f["vs_engine"] == pytest.approx(f["windows_per_s"] / res["engine_windows_per_s"])
        assert res["max_abs_p_tle_difference_vs_ffv1"][name] < 1e-6  # lossless: the same p(TLE)
    mkv = next(folders["ffv1"].iterdir())
    d = archive.decode_rates(mkv, folders["htj2k"] / f"{mkv.stem}.dcm", repeats=1)
    assert d["frames"] == 60 and d["ffv1_ms"] > 0 and d["htj2k_one_core_ms"] > 0 and d["htj2k_read_ms"] > 0
    assert d["one_core_speedup"] == pytest.approx(d["ffv1_ms"] / d["htj2k_one_core_ms"], rel=1e-6)
