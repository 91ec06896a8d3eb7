"""`semiostream score` end to end on this machine: error rows, exit status, resumption, change detection,
manifests, shared batches. (The classifier is an untrained seeded one: these tests check plumbing.)"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from arc_helpers import FAST, add_bad_inputs, make_bundle, rows_by_key

from semiostream.archive.output import inputs_path, read_table
from semiostream.archive.run import ScoreConfig, score_archive
from semiostream.cli import main


def _score(inputs, bundle, out, *extra):
    return main(["score", *map(str, inputs), "--bundle", str(bundle), "--out", str(out), *FAST, *extra])


def test_folder_with_bad_inputs_then_resume_then_changed_file(arc_clips, arc_bundle, tmp_path, capsys):
    bad = add_bad_inputs(arc_clips)
    out = tmp_path / "res.parquet"
    rc = _score([arc_clips], arc_bundle, out)
    text = capsys.readouterr().out
    assert rc == 2 + 4, text  # four failed inputs
    assert "6 scored now, 0 from earlier runs, 4 failed" in text and "windows/s" in text
    windows, videos = read_table(out), read_table(inputs_path(out))
    bundle_id = json.loads((arc_bundle / "bundle.json").read_text())["bundle_id"]
    assert len(videos) == 10 and len(windows) == 12
    by_name = {v["path"].rsplit("/", 1)[1]: v for v in videos}
    errors = {n: v["error"] for n, v in by_name.items() if v["error"]}
    assert set(errors) == bad
    assert "truncated" in errors["truncated.mkv"]
    assert "not a readable video" in errors["garbage.mkv"]
    assert "too short: the segment has 5 frames" in errors["short.npy"]
    assert errors["corrupt_middle.mkv"].startswith("window 1: cannot decode frames [16, 32)")  # no partial rows
    for v in videos:
        mine = [w["p_tle"] for w in windows if w["input_id"] == v["input_id"]]
        if v["error"]:
            assert mine == [] and v["p_tle"] is None and v["label"] is None and v["windows"] == 0
        else:
            assert v["windows"] == len(mine) == 2 and (v["first_frame"], v["stop_frame"]) == (0, 33)
            assert v["p_tle"] == pytest.approx(np.mean(mine), abs=1e-12)
            assert v["label"] == ("TLE" if v["p_tle"] >= 0.5 else "FLE") and v["bundle_id"] == bundle_id
            assert all(0.0 <= p <= 1.0 for p in mine)
    assert len({round(w["p_tle"], 6) for w in windows}) > 6  # the windows were really scored one by one
    # plain files are whole recordings, no seizure segment: flagged, and the summary says their label is no decision
    assert {v["in_segment"] for v in videos} == {False}
    assert "no seizure segment: 6 inputs scored whole" in text and "p_tle and label are no class decision" in text
    w0 = [w for w in windows if w["window"] == 1][0]
    assert (w0["first_frame"], w0["last_frame"]) == (16, 31)
    assert (w0["t_first"], w0["t_last"]) == pytest.approx((16 / 15, 31 / 15), abs=1e-3)  # FFV1 pts in ms

    # run again: everything is reused, the tables are the same, the failures still counted
    assert _score([arc_clips], arc_bundle, out) == 6
    assert "0 scored now, 10 from earlier runs, 4 failed" in capsys.readouterr().out
    assert read_table(out) == windows and read_table(inputs_path(out)) == videos

    # one video changes: only it is scored again
    clips = sorted(arc_clips.glob("*.mkv"))
    shutil.copyfile(clips[1], clips[0])
    assert _score([arc_clips], arc_bundle, out) == 6
    assert "1 scored now, 9 from earlier runs, 4 failed" in capsys.readouterr().out
    windows2 = rows_by_key(read_table(out))
    assert len(windows2) == 12
    for w in (0, 1):  # same frames scored in different batches: fp32 CPU convolutions differ by ~1e-6 with batch size
        assert windows2[(str(clips[0]), w)]["p_tle"] == pytest.approx(windows2[(str(clips[1]), w)]["p_tle"], abs=1e-5)

    # --retry-errors scores the failed ones again (they fail again); a subset of inputs gives a subset table
    assert _score([arc_clips / "bad"], arc_bundle, out, "--retry-errors") == 6
    assert "0 scored now, 0 from earlier runs, 4 failed" in capsys.readouterr().out
    assert read_table(out) == [] and len(read_table(inputs_path(out))) == 4


def test_manifest_segments_csv_shared_batches_and_new_bundle(arc_clips, arc_bundle, kinetics_ckpt, tmp_path):
    out = tmp_path / "res.csv"
    cfg = ScoreConfig([arc_clips / "manifest.csv"], arc_bundle, out, backend="torch-cpu-fp32", compile=False,
                      preprocessing="reference", max_batch=4, show_progress=False)
    s = score_archive(cfg)
    assert (s.inputs, s.scored, len(s.failed), s.exit_status()) == (6, 6, 0, 0)
    videos = read_table(inputs_path(out))
    assert {v["patient_id"] for v in videos} == {"synth005_p000", "synth005_p001", "synth005_p002"}
    assert all(v["true_label"] in ("FLE", "TLE") and v["onset_s"] is not None for v in videos)
    assert all(v["input_id"].endswith(f"@{v['onset_s']:g}-{v['offset_s']:g}s") for v in videos)
    assert all(v["first_frame"] == round(v["onset_s"] * 15) for v in videos)
    assert s.windows_scored == sum(v["windows"] for v in videos) == len(read_table(out))
    assert all(v["in_segment"] is True for v in videos) and "no seizure segment" not in s.text()  # seizures
    # windows of different videos shared inference batches (each segment has one or two windows)
    assert s.largest_batch >= 2 and s.batches < s.windows_scored

    other = make_bundle(tmp_path / "bundle2", kinetics_ckpt, seed=99)
    s2 = score_archive(ScoreConfig(**{**cfg.__dict__, "bundle": other}))
    assert (s2.scored, s2.reused) == (6, 0)  # a new bundle re-scores everything
    videos2 = read_table(inputs_path(out))
    assert {v["bundle_id"] for v in videos2} != {v["bundle_id"] for v in videos}
    assert [v["p_tle"] for v in videos2] != [v["p_tle"] for v in videos]


def test_user_errors_exit_2(arc_bundle, tmp_path, capsys):
    assert _score([tmp_path / "missing.mkv"], arc_bundle, tmp_path / "r.parquet") == 2
    assert "does not exist" in capsys.readouterr().err
    np.save(tmp_path / "a.npy", np.zeros((20, 8, 8), np.uint16))
    assert _score([tmp_path / "a.npy"], arc_bundle, tmp_path / "r.json") == 2
    assert ".parquet or .csv" in capsys.readouterr().err
    assert _score([tmp_path / "a.npy"], tmp_path, tmp_path / "r.csv") == 2
    assert "not a model bundle" in capsys.readouterr().err


def test_default_dali_preprocessing_scores_every_window(arc_clips, arc_bundle, tmp_path):
    out = tmp_path / "res.parquet"
    rc = main(["score", str(arc_clips), "--bundle", str(arc_bundle), "--out", str(out), "--backend",
               "torch-cpu-fp32", "--no-compile", "--quiet", "--max-batch", "1"])
    videos = read_table(inputs_path(out))
    assert [v["error"] for v in videos] == [None] * 6 and rc == 0


def test_local_runner_hands_over_jobs_as_they_complete(arc_clips, arc_bundle, tmp_path):
    """A long video first in line must not hold back the short ones finished meanwhile (their chunks are
    written at once, so a kill loses little work); every window is counted once."""
    from semiostream.archive.plan import plan_job
    from semiostream.archive.progress import WindowProgress
    from semiostream.archive.runner import score_local
    from semiostream.core.preprocess_spec import PreprocessSpec
    from semiostream.core.segment import Segment
    from semiostream.engines.scorer import Scorer

    long_clip = tmp_path / "long.npy"
    np.save(long_clip, np.random.default_rng(0).integers(2000, 4000, (16 * 24, 48, 64), dtype=np.uint16))  # 24 windows: 8x the 3 short jobs
    spec = PreprocessSpec(window=16, fps=15, min_frames=9)
    plans = [plan_job(Segment(long_clip), "long", "sha", spec)]
    plans += [plan_job(Segment(p, offset=1.0), p.name, "sha", spec) for p in sorted(arc_clips.glob("*.mkv"))[:3]]
    assert [p.num_windows for p in plans] == [24, 1, 1, 1]
    order = []
    with Scorer(arc_bundle, "torch-cpu-fp32", preprocessing="reference", engine_options={"compile": False}) as sc, \
            WindowProgress(27, enabled=False) as prog:
        stats = score_local(plans, sc, lambda pl, probs, err: order.append((pl.key, err, len(probs))), workers=2,
                            max_batch=1, prefetch=2, progress=prog)
    assert sorted(order) == sorted((p.key, None, p.num_windows) for p in plans)
    assert order[-1][0] == "long", order
    assert prog.done == stats.requests == 27


@pytest.mark.parametrize("tamper, message", [
    ("absolute", "must be a path relative to the bundle directory"),
    ("dotdot", "must be a path relative to the bundle directory"),
    ("no_files", "are not listed in 'files', so they cannot be verified"),
    ("swapped", "claims bundle_id '[0-9a-f]{16}' but its files, preprocessing and labels give"),
])
def test_a_bundle_with_weights_from_elsewhere_scores_nothing(arc_clips, arc_bundle, kinetics_ckpt, tmp_path, capsys,
                                                             tamper, message):
    """The issue's reproduction: bundle.json points the classifier at other weights (outside the bundle, or
    listed nowhere, or swapped in under the genuine id). `semiostream score` must not report p(TLE) of other
    weights under the genuine id: it stops with a user error naming the file, before anything is scored."""
    import hashlib

    other = make_bundle(tmp_path / "other", kinetics_ckpt, seed=99)
    root = tmp_path / "genuine"
    shutil.copytree(arc_bundle, root)
    meta = json.loads((root / "bundle.json").read_text())
    digest = hashlib.sha256((other / "classifier.pt").read_bytes()).hexdigest()
    if tamper in ("absolute", "dotdot"):
        name = str(other / "classifier.pt") if tamper == "absolute" else "../other/classifier.pt"
        meta["classifier"]["file"] = name
        meta["files"] = {"i3d.safetensors": meta["files"]["i3d.safetensors"], name: digest}
    elif tamper == "no_files":
        meta["classifier"]["file"] = "../other/classifier.pt"
        meta["files"] = {}
    else:
        shutil.copy(other / "classifier.pt", root / "classifier.pt")
        meta["files"]["classifier.pt"] = digest
    (root / "bundle.json").write_text(json.dumps(meta))
    out = tmp_path / "res.parquet"
    assert _score([sorted(arc_clips.glob("*.mkv"))[0]], root, out) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err, err
    assert not out.exists() and not inputs_path(out).exists()
