from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from waiting import wait_until

from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.core.segment import Segment
from semiostream.dali_pipes.event_intensity import segment_window
from semiostream.trainer.features import (
    ExtractionSettings,
    FeatureCache,
    extract_features,
    load_featureset,
    segment_frames,
    state_digest,
)
from semiostream.trainer.manifest import load_manifest


def _clip(path: Path, n: int, seed: int, h: int = 48, w: int = 64) -> Path:
    rng = np.random.default_rng(seed)
    base = rng.integers(1000, 3000, (1, h, w))
    motion = rng.integers(0, 800, (n, h, w))
    np.save(path, (base + motion).astype(np.uint16))
    return path


def _row(path, pid="P1", sid="1", label="FLE", **kw) -> Segment:
    return Segment(Path(path), patient_id=pid, seizure_id=sid, label=label, row=2, **kw)


def test_cache_key_follows_content_spec_weights_and_segment(tmp_path):
    a = _clip(tmp_path / "a.npy", 20, 0)
    cache = FeatureCache(tmp_path / "cache")
    h = cache.content_hash(a)
    moved = tmp_path / "sub"
    moved.mkdir()
    b = moved / "renamed.npy"
    b.write_bytes(a.read_bytes())
    assert cache.content_hash(b) == h  # same bytes, same hash wherever the file lives
    s = ExtractionSettings(PreprocessSpec(), "w" * 64)
    k = s.key_for(_row(a), h)
    assert s.key_for(_row(b, pid="other"), h) == k  # ids are not part of the key
    assert s.key_for(_row(a, onset=1.0), h) != k
    assert s.key_for(_row(a, roi=(0, 0, 10, 10)), h) != k
    assert ExtractionSettings(PreprocessSpec(window=30), "w" * 64).key_for(_row(a), h) != k
    assert ExtractionSettings(PreprocessSpec(), "v" * 64).key_for(_row(a), h) != k
    assert ExtractionSettings(PreprocessSpec(), "w" * 64, "yolox:abc:0.3").key_for(_row(a), h) != k
    assert ExtractionSettings(PreprocessSpec(), "w" * 64, backend="torch-cpu-bf16").key_for(_row(a), h) != k
    arr = np.load(a)
    arr[3, 4, 5] += 1
    np.save(a, arr)
    os.utime(a, ns=(time.time_ns(), time.time_ns() + 10_000))
    assert cache.content_hash(a) != h  # one pixel changed: the memo notices size/mtime and re-hashes
    cache.save_hashes()
    assert str(a.resolve()) in json.loads((tmp_path / "cache" / "hashes.json").read_text())


def test_state_digest_changes_with_any_weight():
    import torch

    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    d = state_digest(m)
    assert d == state_digest(m)
    with torch.no_grad():
        m[0].weight[0, 0] += 1e-6
    assert state_digest(m) != d


def test_segment_frames():
    r = _row("x", onset=0.5, offset=1.5)
    assert segment_frames(r, 100, 30.0) == (15, 45)
    assert segment_frames(_row("x"), 100, 30.0) == (0, 100)
    assert segment_frames(_row("x", offset=99.0), 100, 30.0) == (0, 100)


def test_extract_cache_resume_and_failures(tmp_path, feature_scorer, small_spec, i3d_model):
    d = tmp_path / "videos"
    d.mkdir()
    _clip(d / "a.npy", 40, 1)
    _clip(d / "b.npy", 60, 2)
    (d / "bad.npy").write_bytes(b"\x93NUMPY garbage, not an array")
    _clip(d / "short.npy", 5, 3)
    (tmp_path / "m.csv").write_text(
        "path,patient_id,seizure_id,label,onset,offset,roi\n"
        "videos/a.npy,P1,1,FLE,,,\n"
        'videos/b.npy,P2,1,TLE,0.5,1.5,"8 4 56 40"\n'
        "videos/bad.npy,P3,1,TLE,,,\n"
        "videos/short.npy,P4,1,FLE,,,\n"
    )
    m = load_manifest(tmp_path / "m.csv")
    cache = FeatureCache(tmp_path / "cache")
    settings = ExtractionSettings(small_spec, state_digest(i3d_model))
    rep = extract_features(m, feature_scorer, cache, settings, workers=2, chunk_windows=1, show_progress=False)
    assert sorted(rep.computed) == ["P1/1", "P2/1"] and rep.cached == []
    errors = {f["key"]: f["error"] for f in rep.failed}
    assert set(errors) == {"P3/1", "P4/1"}
    assert "bad.npy" in errors["P3/1"]
    assert "fewer than min_frames=9" in errors["P4/1"]
    # a: 40 frames -> [0,16) [16,32), leftover 8 < 9 dropped; b: frames [15,45) -> [15,31) [31,45)
    ea, eb = cache.get(rep.keys["P1/1"]), cache.get(rep.keys["P2/1"])
    assert ea.starts.tolist() == [0, 16] and ea.stops.tolist() == [16, 32] and ea.roi is None
    assert eb.starts.tolist() == [15, 31] and eb.stops.tolist() == [31, 45] and eb.roi == (8, 4, 56, 40)
    # the cached features are the Scorer's features of exactly those windows and crops, with the
    # seizure's intensity window held from its first frames (intensity_scope="video", the default)
    vb = np.load(d / "b.npy")
    held = segment_window(vb[15:15 + small_spec.percentile_frames], (8, 4, 56, 40), small_spec)
    assert eb.meta["intensity_window"] == list(held)
    ref = feature_scorer.features([vb[15:31], vb[31:45]], [(8, 4, 56, 40)] * 2, intensities=held)
    np.testing.assert_allclose(eb.features, ref, rtol=1e-5, atol=1e-5)
    assert rep.crops == {"P1/1": {"rule": "full frame", "roi": None},
                         "P2/1": {"rule": "manifest", "roi": [8, 4, 56, 40]}}
    assert eb.features.shape == (2, 7, 1024)
    assert np.all(eb.features[:, :6] == -1) and np.all(eb.features[:, 6] >= 0)  # 16 / 14 frames -> 1 step

    rep2 = extract_features(m, feature_scorer, cache, settings, show_progress=False)
    assert sorted(rep2.cached) == ["P1/1", "P2/1"] and rep2.computed == [] and len(rep2.failed) == 2
    assert rep2.crops == rep.crops  # recorded in the cache entries
    data = load_featureset(m, cache, rep2)
    assert [s.key for s in data.seizures] == ["P1/1", "P2/1"] and len(data) == 4 and data.y.tolist() == [0, 0, 1, 1]

    # a lost entry and a truncated entry are recomputed, the rest is reused
    cache.path(rep.keys["P1/1"]).unlink()
    p = cache.path(rep.keys["P2/1"])
    p.write_bytes(p.read_bytes()[:100])
    rep3 = extract_features(m, feature_scorer, cache, settings, show_progress=False)
    assert sorted(rep3.computed) == ["P1/1", "P2/1"]
    np.testing.assert_allclose(cache.get(rep.keys["P2/1"]).features, ref, rtol=1e-5, atol=1e-5)
    assert not list((tmp_path / "cache").glob("*/.*.tmp"))  # no temporary files left behind


def test_extraction_resumes_after_kill(tmp_path, kinetics_ckpt, small_spec):
    d = tmp_path / "v"
    d.mkdir()
    lines = ["path,patient_id,seizure_id,label"]
    for i in range(8):
        _clip(d / f"c{i}.npy", 48, 10 + i)
        lines.append(f"v/c{i}.npy,P{i},1,{'FLE' if i % 2 else 'TLE'}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "spec.json").write_text(json.dumps(small_spec.to_dict()))
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "semiostream.cli", "extract", str(tmp_path / "m.csv"), "--i3d", str(kinetics_ckpt),
           "--spec", str(tmp_path / "spec.json"), "--cache", str(cache)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_until(lambda: proc.poll() is not None or len(list(cache.glob("*/*.npz"))) >= 2, timeout=120,
                   what="two clips' features in the cache")
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = list(cache.glob("*/*.npz"))
    assert 2 <= len(done) < 8, "the kill came too late to test resumption"
    for f in done:  # every entry present is whole
        with np.load(f) as z:
            assert z["features"].shape == (3, 7, 1024)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"({len(done)} from the cache, {8 - len(done)} computed, 24 windows)" in out.stdout
    assert len(list(cache.glob("*/*.npz"))) == 8


def test_intensity_window_held_per_seizure_or_per_window(tmp_path, feature_scorer, small_spec, i3d_model):
    """Video scope: every window of a seizure is mapped with its first frames' percentiles; window scope
    recomputes them per window. The first window is the same either way."""
    import dataclasses

    rng = np.random.default_rng(7)
    frames = rng.integers(1000, 1400, (48, 40, 56))
    frames[16:] += 2500  # the scene brightens after the first window: per-window contrast would follow it
    np.save(tmp_path / "v.npy", frames.astype(np.uint16))
    (tmp_path / "m.csv").write_text("path,patient_id,seizure_id,label\nv.npy,P1,1,TLE\n")
    m = load_manifest(tmp_path / "m.csv")
    feats = {}
    for scope in ("video", "window"):
        spec = dataclasses.replace(small_spec, intensity_scope=scope)
        settings = ExtractionSettings(spec, state_digest(i3d_model))
        cache = FeatureCache(tmp_path / f"cache-{scope}")
        rep = extract_features(m, feature_scorer, cache, settings, show_progress=False)
        entry = cache.get(rep.keys["P1/1"])
        feats[scope] = entry.features
        assert (entry.meta["intensity_window"] is None) == (scope == "window")
    np.testing.assert_allclose(feats["video"][0], feats["window"][0], rtol=1e-5, atol=1e-5)
    assert np.abs(feats["video"][1:] - feats["window"][1:]).max() > 1e-2
    v = np.load(tmp_path / "v.npy")
    held = segment_window(v[:small_spec.percentile_frames], None, small_spec)
    ref = feature_scorer.features([v[16:32], v[32:48]], None, intensities=held)
    np.testing.assert_allclose(feats["video"][1:], ref, rtol=1e-5, atol=1e-5)
