"""The console command: version, help, error reporting, weights import end to end."""

from __future__ import annotations

import subprocess
import sys

from semiostream import __version__
from semiostream.cli import main


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "semiostream.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"semiostream {__version__}"
    assert __version__ != "0.0.0+unknown"  # installed, metadata visible
    helptext = subprocess.run([sys.executable, "-m", "semiostream.cli", "--help"], capture_output=True, text=True)
    assert "weights" in helptext.stdout and "FLE" in helptext.stdout


def test_import_is_light():
    code = "import sys, semiostream; bad = [m for m in ('torch','nvidia.dali','tensorrt','zmq') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_weights_import_cli(kinetics_ckpt, tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    assert main(["weights", "import", str(kinetics_ckpt), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.stat().st_size > 40_000_000


def test_user_errors_exit_2_without_traceback(tmp_path, capsys):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a pickle")
    assert main(["weights", "import", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and "Traceback" not in err
    assert main(["weights", "import", str(tmp_path / "absent.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_score_refuses_a_rate_that_is_not_a_positive_number(tmp_path, capsys):
    for fps in ("0", "-3", "nan", "inf"):
        assert main(["score", str(tmp_path), "--bundle", str(tmp_path), "--out", str(tmp_path / "o.parquet"),
                     "--fps", fps]) == 2, fps
        err = capsys.readouterr().err
        assert f"--fps {float(fps)} must be a positive number" in err and "Traceback" not in err
