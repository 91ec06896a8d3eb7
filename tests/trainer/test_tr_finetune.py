"""`semiostream train --finetune` end to end on SYNTHETIC clips: the loss falls, the bundle carries the fine-tuned
I3D and verifies on every CPU backend, and a run killed mid-epoch resumes onto the same trajectory.

Small on purpose (6 patients, 9-frame windows, 2 epochs of 2 steps): one run is shared by the tests, the
resume test runs a second one in a subprocess it kills.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from waiting import wait_until

from semiostream.cli import main

pytestmark = pytest.mark.slow


def _args(data, kinetics_ckpt, out):
    return ["train", str(data / "manifest.csv"), "--finetune", "--i3d", str(kinetics_ckpt), "--spec",
            str(data / "spec.json"), "--out", str(out), "--folds", "3", "--epochs", "2", "--batch-size", "2",
            "--windows-per-seizure", "1", "--checkpoint-every", "1", "--quiet"]


@pytest.fixture(scope="module")
def ft_run(tmp_path_factory, kinetics_ckpt):
    root = tmp_path_factory.mktemp("finetune")
    data = root / "synth"
    assert main(["synth", str(data), "--patients", "6", "--seizures-per-patient", "1", "--seconds", "2",
                 "--format", "npy", "--width", "160", "--height", "120", "--seed", "3"]) == 0
    (data / "spec.json").write_text(json.dumps({"window": 9, "min_frames": 9}))
    t0 = time.perf_counter()
    assert main(_args(data, kinetics_ckpt, root / "run")) == 0
    print(f"fine-tuning run: {time.perf_counter() - t0:.1f} s")
    return data, root / "run", json.loads((root / "run" / "finetune.json").read_text())


def _windows(data, n=2):
    import csv

    rows = list(csv.DictReader(open(data / "manifest.csv")))[:n]
    return [np.load(data / r["path"])[round(float(r["onset"]) * 30):][:9] for r in rows]


def test_the_loss_falls_and_the_bundle_records_what_was_trained(ft_run, kinetics_ckpt):
    from semiostream.models.bundle import load_bundle, training_data
    from semiostream.models.weights import load_i3d_checkpoint
    from semiostream.trainer.features import state_digest

    data, run, report = ft_run
    h = report["history"]
    assert len(h["train_loss"]) == 2 and len(h["step_loss"]) == 4
    assert h["train_data_loss"][1] < 0.85 * h["train_data_loss"][0], h  # the fit to the windows improves
    assert h["train_loss"][1] < h["train_loss"][0], h
    b = load_bundle(run / "bundle")
    prov = b.meta["provenance"]
    assert prov["trainer"]["recipe"] == "finetune" and training_data(b.meta).kind == "synthetic"
    ft = prov["i3d"]["finetune"]
    assert ft["trained_endpoints"] == ["Mixed_5b", "Mixed_5c"] and ft["epochs_run"] == 2
    assert "fine-tuned on this run's windows" in prov["i3d"]["variant_description"]
    base = load_i3d_checkpoint(kinetics_ckpt, in_channels=1)
    assert ft["base_state_sha256"] == state_digest(base) != prov["i3d"]["state_sha256"] == state_digest(b.i3d)
    tuned, orig = b.i3d.state_dict(), base.state_dict()
    top = ("Mixed_5b.", "Mixed_5c.")
    assert all(torch.equal(tuned[k], orig[k]) for k in orig if not k.startswith(top))  # the frozen part is the base
    assert any(not torch.equal(tuned[k], orig[k]) for k in orig if k.startswith(top))
    assert "Trained end to end: I3D Mixed_5b..Mixed_5c" in (run / "summary.md").read_text()
    assert report["windows_per_second_trained"] > 0


def test_the_finetuned_bundle_verifies_on_every_cpu_backend_and_scores_unlike_the_frozen_i3d(ft_run, kinetics_ckpt,
                                                                                             tmp_path):
    from semiostream.dali_pipes.reference import preprocess
    from semiostream.engines.registry import BACKENDS
    from semiostream.models.bundle import load_bundle, save_bundle
    from semiostream.models.classifier import pad_features
    from semiostream.models.weights import load_i3d_checkpoint
    from semiostream.trt_build.verify import verify_bundle

    data, run, _ = ft_run
    b = load_bundle(run / "bundle")
    wins = _windows(data)
    cpu = [n for n, info in BACKENDS.items() if info.device == "cpu"]
    rep = verify_bundle(b, cpu, frames=(9,), batch=1, windows=wins, n_random_features=16, record=False,
                        engine_options={"torch-cpu-fp32": {"compile": False}})
    print(rep.table())
    assert rep.passed, rep.table()
    ran = {r.backend for r in rep.results if r.available}
    assert {"torch-cpu-fp32", "onnxruntime-cpu-fp32"} <= ran  # the ONNX export of the fine-tuned I3D included
    onnx_err = rep.result("onnxruntime-cpu-fp32").metrics["e2e_prob_max_abs"]

    # the same classifier behind the base (frozen Kinetics) I3D scores the same windows differently
    frozen = load_bundle(save_bundle(tmp_path / "frozen", load_i3d_checkpoint(kinetics_ckpt, in_channels=1),
                                     b.classifier, b.spec))
    assert frozen.bundle_id != b.bundle_id
    x = torch.stack([preprocess(w, None, b.spec) for w in wins])
    with torch.no_grad():
        f_tuned, f_frozen = b.i3d.extract_features(x), frozen.i3d.extract_features(x)
        p_tuned = b.classifier(pad_features(f_tuned))
        p_frozen = frozen.classifier(pad_features(f_frozen))
    rel = float((f_tuned - f_frozen).abs().max() / f_frozen.abs().max())
    assert rel > 1e-3, rel
    assert float((p_tuned - p_frozen).abs().max()) > 100 * max(onnx_err, 1e-7)


def test_a_killed_run_resumes_onto_the_same_trajectory(ft_run, kinetics_ckpt, tmp_path):
    data, _, report = ft_run
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "semiostream.cli", *_args(data, kinetics_ckpt, out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    ck = out / "finetune" / "checkpoint.pt"
    try:
        wait_until(lambda: ck.is_file() or proc.poll() is not None, timeout=300, what="the run's first checkpoint")
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)  # mid-run: after its first checkpoint (step 1 of epoch 1)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        proc.stderr.close()
    from semiostream.trainer import checkpoint as ckpt

    assert ckpt.load(ck)["state"]["epoch"] < 2
    assert main([*_args(data, kinetics_ckpt, out), "--resume"]) == 0
    resumed = json.loads((out / "finetune.json").read_text())
    for key in ("train_loss", "train_data_loss", "val_loss", "val_f1", "state_sha256", "step_loss"):
        assert resumed["history"][key] == report["history"][key], key
    assert resumed["i3d_state_sha256"] == report["i3d_state_sha256"]
    a = json.loads((out / "bundle" / "bundle.json").read_text())
    b = json.loads((ft_run[1] / "bundle" / "bundle.json").read_text())
    assert a["bundle_id"] == b["bundle_id"]  # the same weights, bit for bit
