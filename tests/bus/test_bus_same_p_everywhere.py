"""The same frames give the same p(TLE) through the trainer's features, `semiostream score` and the live
scorer: one preprocessing rule (crop, intensity window held from the segment's first frames, window
phase from the segment's onset), one model; and the same label under a threshold other than 0.5 (one
decision rule, :mod:`semiostream.core.decision`, with the threshold taken from each part's configuration)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from bus_helpers import WINDOW, collect, make_config, wait_for_scorer

from semiostream.archive.output import inputs_path
from semiostream.bus.protocol import EventResult, ScoreResult
from semiostream.bus.publisher import Publisher
from semiostream.bus.runtime import ScorerRuntime
from semiostream.bus.watch import ControlClient, ResultsSubscriber
from semiostream.cli import main
from semiostream.engines.scorer import Scorer
from semiostream.sources.synth import SynthConfig, render_clip
from semiostream.trainer.metrics import evaluate

FPS = 30.0


@pytest.mark.slow
def test_trainer_archive_and_live_scorer_agree(bus_bundle, kinetics_ckpt, tmp_path, capsys):
    clip = render_clip(SynthConfig(width=96, height=72, fps=FPS, seconds=4.0), 21, 21, "TLE")
    np.save(tmp_path / "clip.npy", clip.frames)
    onset_f = round(clip.onset * FPS)
    segment = clip.frames[onset_f:]
    n = len(segment) // WINDOW  # whole windows of the segment, from its onset
    assert n >= 3
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "patient_id", "seizure_id", "label", "fps", "onset", "offset"])
        w.writerow([tmp_path / "clip.npy", "P1", "S1", "TLE", FPS, onset_f / FPS, (onset_f + n * WINDOW) / FPS])

    # 1. the trainer's features (extract), classified by the bundle's classifier
    cache = tmp_path / "features"
    assert main(["extract", str(manifest), "--i3d", str(kinetics_ckpt), "--spec", str(bus_bundle),
                 "--cache", str(cache), "--backend", "torch-cpu-fp32"]) == 0
    (entry,) = list(cache.rglob("*.npz"))
    feats = np.load(entry)["features"]
    with Scorer(bus_bundle, "torch-cpu-fp32") as scorer:
        p_trainer = scorer.score_features(feats)
    # a threshold 0.01 beyond the event's mean p(TLE): every part must label it the other way than 0.5 does
    m = float(np.mean(p_trainer))
    threshold = min(m + 0.01, (1 + m) / 2) if m >= 0.5 else max(m - 0.01, m / 2)
    flipped = "FLE" if m >= 0.5 else "TLE"

    # 2. semiostream score on the same manifest row
    out = tmp_path / "scores.csv"
    main(["score", str(manifest), "--bundle", str(bus_bundle), "--out", str(out), "--backend", "torch-cpu-fp32",
          "--threshold", repr(threshold), "--quiet"])
    with open(out) as f:
        p_archive = np.array([float(r["p_tle"]) for r in sorted(csv.DictReader(f), key=lambda r: int(r["window"]))])
    with open(inputs_path(out)) as f:
        (archive_event,) = list(csv.DictReader(f))

    # 3. the live scorer: the camera streams the segment, an event open from its first frame
    cfg = make_config(bus_bundle, threshold=threshold)
    with ScorerRuntime(cfg).start():
        sub = ResultsSubscriber(cfg.endpoints.results)
        ctl = ControlClient(cfg.endpoints.control)
        pub = Publisher(cfg.endpoints.frames, "bed-same", fps=FPS, queue_seconds=8)
        wait_for_scorer(pub)
        assert ctl.event("start", "bed-same")["ok"]
        pub.run(segment[: n * WINDOW], realtime=False)
        live = collect(sub, lambda g: sum(isinstance(r, ScoreResult) for r in g) >= n)
        assert ctl.event("stop", "bed-same")["ok"]
        live += collect(sub, lambda g: any(isinstance(r, EventResult) for r in g))
        for c in (sub, ctl, pub):
            c.close()
    p_live = np.array([r.p_tle for r in sorted((r for r in live if isinstance(r, ScoreResult)),
                                               key=lambda r: r.first_seq)])

    print(f"\np(TLE) per window: trainer {np.round(p_trainer, 5)}, score {np.round(p_archive, 5)}, "
          f"live {np.round(p_live, 5)}")
    assert len(p_trainer) == len(p_archive) == len(p_live) == n
    np.testing.assert_allclose(p_archive, p_trainer, atol=1e-5)
    np.testing.assert_allclose(p_live, p_trainer, atol=1e-5)

    # one decision under the same non-default threshold: live windows and event, the archive, the trainer
    live_windows = sorted((r for r in live if isinstance(r, ScoreResult)), key=lambda r: r.first_seq)
    assert [r.label for r in live_windows] == ["TLE" if p >= threshold else "FLE" for p in p_live]
    (live_event,) = [r for r in live if isinstance(r, EventResult)]
    assert live_event.windows == n and live_event.label == flipped
    assert archive_event["label"] == flipped
    seizure = evaluate(np.ones(n, np.int64), p_trainer, np.zeros(n, np.int64), threshold)["seizure"]
    assert seizure["confusion"] == ([[0, 0], [0, 1]] if flipped == "TLE" else [[0, 0], [1, 0]])
    default = evaluate(np.ones(n, np.int64), p_trainer, np.zeros(n, np.int64))["seizure"]
    assert default["confusion"] != seizure["confusion"]
