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


def test_archive_scores_a_synthetic_archive(bundle, tmp_path):
    from semiostream.bench import archive
    from semiostream.engines.artifacts import bundle_dir

    manifest = archive.make_archive(tmp_path / "a", clips=1, seconds=2.5, width=64, height=48)
    res = archive.run(bundle_dir(bundle), manifest, tmp_path, "torch-cpu-fp32", compile=False, max_batch=2)
    (run,) = res["runs"]
    assert run["inputs"] == 1 and run["failed"] == 0
    assert run["windows_scored"] >= 1 and run["window_rows"] == run["windows_scored"]
    assert res["archive_windows_per_s"] > 0 and res["engine_windows_per_s"] > 0
    assert res["archive_vs_engine"] == pytest.approx(res["archive_windows_per_s"] / res["engine_windows_per_s"])
