"""Kill `semiostream score` mid-run (SIGKILL, no clean-up), run it again: every row once, none lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from arc_helpers import FAST, add_bad_inputs, rows_by_key
from waiting import wait_until

from semiostream.archive.output import inputs_path, read_table
from semiostream.cli import main


def _done_lines(parts):
    try:
        text = (parts / "done.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(x) for x in text.splitlines() if x.endswith("}")]


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_gives_the_clean_rows_once(arc_clips, arc_bundle, tmp_path, capsys):
    add_bad_inputs(arc_clips)
    args = ["score", str(arc_clips), "--bundle", str(arc_bundle), *FAST, "--max-batch", "1"]

    clean = tmp_path / "clean" / "res.parquet"
    rc_clean = main([*args, "--out", str(clean)])
    assert rc_clean == 2 + 4

    out = tmp_path / "killed" / "res.parquet"
    parts = out.with_name("res.parquet.parts")
    proc = subprocess.Popen([sys.executable, "-m", "semiostream.cli", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: proc.poll() is not None or any(d["status"] == "ok" for d in _done_lines(parts)),
                   timeout=120, what="the first scored input's chunk")
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done_at_kill = _done_lines(parts)
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= sum(d["status"] == "ok" for d in done_at_kill) < 6, "the kill did not land mid-run"
    assert not out.exists()  # the tables are only written at the end

    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == rc_clean
    # the resumed run reused exactly what the killed one had finished, and scored the rest
    n_ok = sum(d["status"] == "ok" for d in done_at_kill)
    assert f"{6 - n_ok} scored now, {len(done_at_kill)} from earlier runs, 4 failed" in capsys.readouterr().out
    for table in (out, inputs_path(out)):
        key = ("input_id", "window") if table == out else ("input_id",)
        got, want = rows_by_key(read_table(table), key), rows_by_key(read_table(clean if table == out else
                                                                                 inputs_path(clean)), key)
        assert got.keys() == want.keys()  # same rows, none lost, none duplicated (rows_by_key checks)
        for k, row in want.items():
            for col, v in row.items():
                if col in ("p_tle", "p_min", "p_max") and v is not None:
                    assert got[k][col] == pytest.approx(v, abs=1e-6), (k, col)
                else:
                    assert got[k][col] == v, (k, col)
    assert {d["key"] for d in done_at_kill} <= {d["key"] for d in _done_lines(parts)}
    assert len(read_table(out)) == 12
