"""Live windows are defined in time: a bed camera at another rate than the bundle's is resampled by the
archives' rule (sources.rate), so its windows span the same capture time and score as the file does."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from bus_helpers import WINDOW, collect, make_config, wait_for_scorer
from waiting import wait_until

from semiostream.bus.camera_rate import CameraRate
from semiostream.bus.protocol import ScoreResult
from semiostream.bus.publisher import Publisher
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.watch import ControlClient, ResultsSubscriber
from semiostream.cli import main
from semiostream.sources.rate import frame_selection
from semiostream.sources.synth import SynthConfig, render_clip

FPS = 30.0  # the bundle's rate


def _live_selection(times_ns: np.ndarray, seqs: np.ndarray, window: int = 60) -> tuple[CameraRate, list[int]]:
    rate = CameraRate(FPS, window)
    shown: list[int] = []
    for seq, t in zip(seqs, times_ns, strict=True):
        slots = rate.push(np.zeros((1, 1), np.uint16), int(seq), int(t))
        assert slots is not None
        shown.extend(s for _, s, _ in slots)
    return rate, shown


@pytest.mark.parametrize("camera_fps, drop, jitter_ms", [(15.0, None, 0.0), (60.0, None, 0.0), (6.0, None, 0.0),
                                                         (30.0, 40, 0.0), (25.0, None, 3.0), (30.0, None, 0.0)])
def test_live_rule_is_the_archive_rule(camera_fps, drop, jitter_ms):
    """Frame by frame, a bed's resampling shows the frames `frame_selection` gives the same recording."""
    rng = np.random.default_rng(1)
    n = int(camera_fps * 8)
    seqs = np.arange(n)
    if drop is not None:
        seqs = np.delete(seqs, drop)
    t_s = seqs / camera_fps + rng.uniform(-jitter_ms, jitter_ms, len(seqs)) / 1e3
    t_ns = 1_750_000_000_000_000_000 + np.round(t_s * 1e9).astype(np.int64)
    rate, shown = _live_selection(t_ns, seqs)
    archive = frame_selection((t_ns - t_ns[0]) / 1e9, camera_fps, FPS)
    assert rate.camera_fps == pytest.approx(camera_fps, rel=0.01)
    if archive is None:  # at the bundle's rate, evenly spaced: frame for frame, as before
        assert rate.mode == "as is" and rate.fps_used == FPS and shown == list(seqs)
        return
    assert rate.mode == "resampled" and "resampled to the bundle's 30 fps" in rate.describe()
    assert len(archive) - FPS / camera_fps - 1 <= len(shown) <= len(archive)  # the last frame's wait for the next
    np.testing.assert_array_equal(np.asarray(shown), seqs[archive[: len(shown)]])


def test_too_slow_or_frozen_camera_is_refused():
    rate, shown = _live_selection(np.arange(20) * 250_000_000, np.arange(20))  # 4 fps
    assert rate.mode == "refused" and shown == [] and "below 5 fps" in rate.refused
    rate, shown = _live_selection(np.full(80, 10**18), np.arange(80))  # capture times that never advance
    assert rate.mode == "refused" and "do not advance" in rate.refused


@pytest.mark.slow
def test_live_windows_span_their_time_and_score_as_the_archive(bus_bundle, tmp_path):
    """15 and 60 fps cameras: every live window spans WINDOW/30 s of capture time and its p(TLE) is the
    archive's on the same frames; the status and metrics give each camera's rate."""
    clips = {}
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "patient_id", "seizure_id", "label", "fps", "onset", "offset"])
        for cam_fps, seconds in ((15.0, 3.0), (60.0, 2.0)):
            frames = render_clip(SynthConfig(width=96, height=72, fps=cam_fps, seconds=seconds), 21, 21,
                                 "TLE").frames
            path = tmp_path / f"clip{int(cam_fps)}.npy"
            np.save(path, frames)
            clips[cam_fps] = frames
            w.writerow([path, "P1", f"S{int(cam_fps)}", "TLE", cam_fps, 0.0, len(frames) / cam_fps])
    out = tmp_path / "scores.csv"
    assert main(["score", str(manifest), "--bundle", str(bus_bundle), "--out", str(out), "--backend",
                 "torch-cpu-fp32", "--quiet"]) == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    archive = {fps: [float(r["p_tle"]) for r in sorted((r for r in rows if f"clip{int(fps)}" in r["path"]),
                                                        key=lambda r: int(r["window"]))] for fps in clips}

    cfg = make_config(bus_bundle)
    runtime = ScorerRuntime(cfg)
    with runtime.start():
        sub = ResultsSubscriber(cfg.endpoints.results)
        ctl = ControlClient(cfg.endpoints.control)
        pubs = {fps: Publisher(cfg.endpoints.frames, f"bed-{int(fps)}", fps=fps, queue_seconds=4) for fps in clips}
        wait_for_scorer(*pubs.values())
        for fps, pub in pubs.items():
            assert ctl.event("start", pub.bed)["ok"]
            pub.run(clips[fps], realtime=False)
        want = {fps: len(clips[fps]) * FPS / fps // WINDOW for fps in clips}  # whole windows, frames decided
        got = collect(sub, lambda g: all(sum(isinstance(r, ScoreResult) and r.bed == pubs[fps].bed for r in g)
                                         >= want[fps] for fps in clips))
        status = wait_until(lambda: ctl.request("status")["status"])
        metrics = {fps: runtime.service.metrics.value("semiostream_camera_fps", bed=pubs[fps].bed) for fps in clips}
        for c in (sub, ctl, *pubs.values()):
            c.close()

    for fps, pub in pubs.items():
        live = sorted((r for r in got if isinstance(r, ScoreResult) and r.bed == pub.bed), key=lambda r: r.first_seq)
        n = len(live)
        assert n >= 3 and n <= len(archive[fps])
        spans = np.array([(r.last_t_ns - r.first_t_ns) / 1e9 for r in live])
        print(f"\n{fps:g} fps camera: windows span {np.round(spans, 4)} s; p live {np.round([r.p_tle for r in live], 5)}"
              f", archive {np.round(archive[fps][:n], 5)}")
        assert np.all(np.abs(spans - (WINDOW - 1) / FPS) <= 1 / fps + 1e-6)
        np.testing.assert_allclose([r.p_tle for r in live], archive[fps][:n], atol=1e-5)
        bed = status["beds"][pub.bed]
        assert bed["camera_fps"] == pytest.approx(fps, rel=1e-3) and bed["fps_used"] == FPS
        assert bed["rate"] == f"camera {fps:g} fps, resampled to the bundle's 30 fps"
        assert metrics[fps] == pytest.approx(fps, rel=1e-3)
