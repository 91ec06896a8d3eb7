"""bench/gpu_wheelhouse.sh and bench/gpu_session.sh: usage errors, the step plan within the budget, and the
whole session rehearsed on this machine (real wheelhouse from the package index, offline install into a
fresh folder, DALI / PyAV / TensorRT hidden as on the air-gapped host, every step run, at most 8 reports)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SESSION = ROOT / "bench" / "gpu_session.sh"
WHEELHOUSE = ROOT / "bench" / "gpu_wheelhouse.sh"
PARTS = ROOT / "bench" / "gpu_parts.sh"
STEPS = ["env", "install", "doctor", "pytest-gpu", "engines", "scorer", "live", "archive"]
REPORTS = {"SUMMARY.md", "session.log", "env.txt", "doctor.json", "doctor.md", "pytest-gpu.xml", "measure.json"}


def run(script: Path, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def fake_wheelhouse(tmp_path):
    """A folder shaped like a wheelhouse (for the dry run and usage checks, which install nothing)."""
    wh = tmp_path / "wh"
    wh.mkdir()
    (wh / "x-1.0-py3-none-any.whl").write_bytes(b"not installed by a dry run")
    (wh / "SHA256SUMS").write_text("")
    return wh


def test_scripts_parse():
    for script in (SESSION, WHEELHOUSE, PARTS):
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_dry_run_plans_every_step_within_the_budget(tmp_path, fake_wheelhouse):
    r = run(SESSION, "--dry-run", "--wheelhouse", str(fake_wheelhouse), "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("[dry-run]")]
    assert [ln.split()[1] for ln in lines] == STEPS
    limits = [int(ln.split("limit ")[1].split("s")[0]) for ln in lines]
    assert all(0 < lim <= 540 for lim in limits)  # each step fits the default 540 s budget
    assert "doctor_checks" in r.stdout and "visit engines" in r.stdout
    summary = (tmp_path / "out" / "SUMMARY.md").read_text()
    assert "| doctor | 120 | dry-run |" in summary and "overall: OK" in summary
    # a smaller budget shortens the limits: no step may outlast what is left
    r = run(SESSION, "--dry-run", "--budget-s", "100", "--wheelhouse", str(fake_wheelhouse), "--out", str(tmp_path))
    assert all(int(ln.split("limit ")[1].split("s")[0]) <= 100 for ln in r.stdout.splitlines() if "limit" in ln)


def test_out_defaults_to_the_device_output_folder(tmp_path, fake_wheelhouse):
    r = run(SESSION, "--dry-run", "--wheelhouse", str(fake_wheelhouse), env={"OUT": str(tmp_path / "o")})
    assert r.returncode == 0 and (tmp_path / "o" / "SUMMARY.md").is_file()


def test_usage_errors(tmp_path, fake_wheelhouse):
    r = run(SESSION, "--frobnicate")
    assert r.returncode == 2 and "unknown argument '--frobnicate'" in r.stderr
    r = run(SESSION, "--wheelhouse", str(tmp_path / "nope"), "--dry-run")
    assert r.returncode == 2 and "is not a folder" in r.stderr and "gpu_wheelhouse.sh" in r.stderr
    r = run(SESSION, "--wheelhouse", str(fake_wheelhouse), "--parts", str(tmp_path / "none"), "--dry-run")
    assert r.returncode == 2 and "--parts" in r.stderr and "gpu_parts.sh" in r.stderr
    (fake_wheelhouse / "SHA256SUMS").unlink()
    r = run(SESSION, "--wheelhouse", str(fake_wheelhouse), "--dry-run")
    assert r.returncode == 2 and "has no wheels and SHA256SUMS" in r.stderr
    r = run(SESSION, "--budget-s", "ten", "--dry-run")
    assert r.returncode == 2 and "--budget-s 'ten'" in r.stderr
    r = run(WHEELHOUSE, "--python-version", "twelve")
    assert r.returncode == 2 and "must look like 3.12" in r.stderr
    r = run(WHEELHOUSE, "--max-mib", "-1")
    assert r.returncode == 2 and "whole number" in r.stderr


def test_parts_split_join_and_refuse_a_missing_part(tmp_path):
    big = tmp_path / "big-1.0-py3-none-any.whl"
    big.write_bytes(os.urandom(2 * 2**20 + 12345))  # a file of 3 parts at 1 MiB
    r = run(PARTS, "split", str(big), str(tmp_path / "parts"), "--part-mib", "1")
    assert r.returncode == 0 and "3 parts" in r.stdout, r.stderr
    r = run(PARTS, "estimate", str(tmp_path / "parts"), "--s-per-part", "20")
    assert "3 transfers, about 60 s" in r.stdout
    r = run(PARTS, "join", str(tmp_path / "parts"), str(tmp_path / "joined"))
    assert r.returncode == 0 and "sha256 ok" in r.stdout
    assert (tmp_path / "joined" / big.name).read_bytes() == big.read_bytes()
    part = tmp_path / "parts" / f"{big.name}.part001"
    part.write_bytes(part.read_bytes()[:-1] + b"x")  # altered in transit
    r = run(PARTS, "join", str(tmp_path / "parts"), str(tmp_path / "again"))
    assert r.returncode == 1 and f"incomplete or altered parts: {part.name}" in r.stdout
    assert not (tmp_path / "again" / big.name).exists()
    part.unlink()
    r = run(PARTS, "join", str(tmp_path / "parts"), str(tmp_path / "again"))
    assert r.returncode == 1 and part.name in r.stdout
    r = run(PARTS, "split", str(big), str(tmp_path / "p2"), "--part-mib", "0")
    assert r.returncode == 2 and "above 0" in r.stderr


@pytest.mark.slow
def test_rehearsal_runs_every_step_on_the_cpu(tmp_path):
    """The session as on the host, here: wheels for this Python from the package index, installed offline."""
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    wh = tmp_path / "wheelhouse"
    r = run(WHEELHOUSE, "--python-version", pyver, "--dest", str(wh), env={"PYTHON": sys.executable}, timeout=900)
    if r.returncode == 1 and "a download failed" in r.stderr:
        pytest.skip(f"the package index is not reachable: {r.stderr.strip()[-300:]}")
    assert r.returncode == 0, r.stderr[-2000:]
    total = float(r.stdout.split("total: ")[1].split(" MiB")[0])
    assert total <= 40 and "pyzmq-" in r.stdout and "pydantic_core-" in r.stdout and "pydicom-" in r.stdout
    # a wheel carried in parts (as DALI would be), reassembled and installed by the session
    pydicom = next(wh.glob("pydicom-*.whl"))
    assert run(PARTS, "split", str(pydicom), str(tmp_path / "parts"), "--part-mib", "1").returncode == 0
    out = tmp_path / "out"
    r = run(SESSION, "--rehearse", "--wheelhouse", str(wh), "--parts", str(tmp_path / "parts"), "--out", str(out),
            "--budget-s", "2100",
            env={"PYTHON": sys.executable, "SEMIOSTREAM_SITE": str(tmp_path / "site"),
                 "SEMIOSTREAM_VISIT_WORK": str(tmp_path / "work")}, timeout=2300)
    log = (out / "session.log").read_text() if (out / "session.log").is_file() else ""
    assert r.returncode == 0, r.stdout[-3000:] + log[-6000:]
    files = {p.name for p in out.iterdir()}
    assert files == REPORTS and all(p.is_file() for p in out.iterdir())  # 7 files, flat
    summary = (out / "SUMMARY.md").read_text()
    for s in [*STEPS, "parts"]:
        assert f"| {s} | " in summary
    assert f"{pydicom.name}: reassembled from 3 parts, sha256 ok" in log
    assert "overall: OK" in summary and "mode rehearsal" in summary and "TensorRT: not measured" in summary
    # every missing module came from the wheelhouse, and the image's gaps were real in every step
    assert f"zmq            27.3.0 from {tmp_path / 'site'}" in log
    env = (out / "env.txt").read_text()
    assert "module av             absent" in env and "module nvidia.dali    absent" in env
    doctor = json.loads((out / "doctor.json").read_text())
    assert doctor["ok"] and "cpu: preprocessing reference" in doctor["environment"]["stack"]
    assert {c["name"]: c["status"] for c in doctor["checks"]}["dali-cpu"] == "skip"
    m = json.loads((out / "measure.json").read_text())
    assert {(row["graphs"], row["batch"]) for row in m["engines"]["rows"]} == {(False, 1), (True, 1)}
    assert m["scorer"]["windows_per_s"] > 0 and m["scorer"]["preprocessing"] == "torch"
    assert m["live"]["points"][0]["beds"] == 2 and m["live"]["points"][0]["frames_sent"] > 0
    assert set(m["archive"]["formats"]) == {"htj2k-dicom", "npy"} and "PyAV" in m["archive"]["skipped"]["ffv1-mkv"]
