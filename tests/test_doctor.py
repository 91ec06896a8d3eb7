"""``semiostream doctor`` runs here: environment, the CPU checks pass, GPU checks are skipped with the
reason (or run, on a GPU machine), JSON + markdown reports, exit status 1 on a failed check."""

from __future__ import annotations

import json

import pytest
import torch

from semiostream import cli, doctor


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("doctor")
    code = cli.main(["doctor", "--quick", "--out", str(out)])
    return code, out


def test_quick_doctor_reports_environment_and_checks(quick_run, capsys):
    code, out = quick_run
    report = json.loads((out / "doctor.json").read_text())
    assert code == 0 and report["ok"] is True, [c for c in report["checks"] if c["status"] == "fail"]
    env = report["environment"]
    assert env["torch"] == torch.__version__ and env["python"] and "DALI" in env and "TensorRT" in env
    assert env["backends"]["torch-cpu-fp32"] == "available"
    assert env["CPU backend"].startswith("torch-cpu-fp32 (reference)")  # the doctor's random bundle is unverified
    status = {c["name"]: c for c in report["checks"]}
    assert set(status) == {n for n, _ in doctor.CHECKS}
    for name in ("dali-gpu-graph-on-cpu", "dali-cpu", "onnxruntime-cpu", "scorer-cpu"):
        assert status[name]["status"] == "pass", status[name]
    assert status["dali-gpu-graph-on-cpu"]["details"]["max_abs"] < 1e-3
    assert status["scorer-cpu"]["details"]["backend"] == "torch-cpu-fp32"
    gpu_checks = ("dali-gpu", "engines-gpu", "scorer-gpu", "gpu-decoding", "benchmarks-gpu")
    if torch.cuda.is_available():
        assert all(status[n]["status"] == "pass" for n in gpu_checks), [status[n] for n in gpu_checks]
    else:
        for n in gpu_checks:
            assert status[n]["status"] == "skip" and "no CUDA GPU" in status[n]["message"]
    md = (out / "doctor.md").read_text()
    assert "# semiostream doctor" in md and "| scorer-cpu | PASS |" in md and "## Environment" in md


def test_a_failing_check_fails_the_run(tmp_path, monkeypatch, capsys):
    def check_windows_are_never_equal(ctx):
        """A check that finds a real difference (two different windows) and reports it."""
        a, b = ctx.windows[0][:9], ctx.windows[0][:9] + 1
        return doctor._close("window vs window + 1", doctor._max_abs(a, b), 0.5), {}

    monkeypatch.setattr(doctor, "CHECKS", [("always-differs", check_windows_are_never_equal)])
    code = cli.main(["doctor", "--quick", "--out", str(tmp_path)])
    assert code == 1
    report = json.loads((tmp_path / "doctor.json").read_text())
    assert report["ok"] is False and report["checks"][0]["status"] == "fail"
    assert "max abs difference 1.00e+00 > 0.5" in report["checks"][0]["message"]
    assert "FAILED: always-differs" in capsys.readouterr().out


def test_bad_bundle_is_a_user_error(tmp_path, capsys):
    assert cli.main(["doctor", "--bundle", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "is not a model bundle" in capsys.readouterr().err
