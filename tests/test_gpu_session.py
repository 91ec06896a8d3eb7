"""bench/gpu_session.sh: valid bash, a dry run lists every step with its limit and writes the summary
into the one report folder, usage errors exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_session.sh"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_dry_run_lists_the_steps_within_the_lease(tmp_path):
    r = run("--dry-run", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("[dry-run]")]
    steps = [ln.split()[1] for ln in lines[1:]]
    assert steps == ["install", "doctor", "pytest-gpu"]
    limits = [int(ln.split("limit ")[1].split("s")[0]) for ln in lines[1:]]
    assert sum(limits) <= 12 * 60  # a 15-minute lease, start-up included
    assert f"doctor --out {tmp_path}" in r.stdout and '-m gpu or trt' in r.stdout
    assert f"--junitxml={tmp_path}/pytest-gpu.xml" in r.stdout
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "| doctor | 330 | dry-run |" in summary and "overall: OK" in summary
    quick = run("--dry-run", "--quick", "--out", str(tmp_path / "q"))
    assert "doctor --out" in quick.stdout and "--quick" in quick.stdout
    assert sum(int(ln.split("limit ")[1].split("s")[0]) for ln in quick.stdout.splitlines()
               if ln.startswith("[dry-run]") and "limit" in ln) <= 8 * 60


def test_out_defaults_to_the_device_output_folder(tmp_path):
    r = run("--dry-run", env={"OUT": str(tmp_path)})
    assert r.returncode == 0 and (tmp_path / "SUMMARY.md").is_file()


def test_usage_errors(tmp_path):
    r = run("--frobnicate")
    assert r.returncode == 2 and "unknown argument '--frobnicate'" in r.stderr
    r = run("--wheelhouse", str(tmp_path / "nope"), "--dry-run")
    assert r.returncode == 2 and "is not a folder" in r.stderr
