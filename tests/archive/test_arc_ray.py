"""`semiostream score --ray` on a local Ray instance gives the same rows as the single-machine run."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from arc_helpers import FAST, add_bad_inputs, rows_by_key

from semiostream.archive.output import inputs_path, read_table
from semiostream.cli import main
from semiostream.sources.readers import open_source
from semiostream.sources.writers import write_ffv1

ray = pytest.importorskip("ray", reason="needs Ray: pip install 'semiostream[ray]' (part of the dev extra)")


def _compare(got_rows, want_rows, key):
    got, want = rows_by_key(got_rows, key), rows_by_key(want_rows, key)
    assert got.keys() == want.keys()
    for k, row in want.items():
        for col, v in row.items():
            if col in ("p_tle", "p_min", "p_max") and v is not None:
                assert got[k][col] == pytest.approx(v, abs=1e-6), (k, col)
            else:
                assert got[k][col] == v, (k, col)


@pytest.mark.slow
def test_ray_run_equals_the_local_run(arc_clips, arc_bundle, tmp_path, capsys):
    add_bad_inputs(arc_clips)
    clips = sorted(arc_clips.glob("*.mkv"))[:2]
    frames = [open_source(c).read(0, 32) for c in clips]
    write_ffv1(arc_clips / "thirty.mkv", np.concatenate(frames), fps=30)  # resampled to the bundle's 15 fps
    # Same numerics on both paths: one window per engine call (oneDNN's results for a window depend on the
    # batch it sits in, by ~1e-6 with this test classifier's amplified last layer) and one actor with as many
    # threads as this process uses.
    args = ["score", str(arc_clips), str(arc_clips / "manifest.csv"), "--bundle", str(arc_bundle), *FAST,
            "--max-batch", "1"]
    threads = str(min(torch.get_num_threads(), os.cpu_count() or 1))
    local, on_ray = tmp_path / "local" / "res.parquet", tmp_path / "ray" / "res.parquet"
    assert main([*args, "--out", str(local)]) == 2 + 4
    try:
        rc = main([*args, "--out", str(on_ray), "--ray", "--actors", "1", "--cpus-per-actor", threads])
    finally:
        if ray.is_initialized():
            ray.shutdown()
    text = capsys.readouterr().out
    assert rc == 2 + 4, text
    assert text.count("13 scored now, 0 from earlier runs, 4 failed") == 2
    assert not ray.is_initialized()  # the run shut down the instance it started
    _compare(read_table(on_ray), read_table(local), ("input_id", "window"))
    _compare(read_table(inputs_path(on_ray)), read_table(inputs_path(local)), ("input_id",))
    (thirty,) = [v for v in read_table(inputs_path(on_ray)) if v["path"].endswith("thirty.mkv")]
    assert (thirty["fps"], thirty["fps_used"], thirty["windows"]) == (30.0, 15.0, 2)
    assert len(read_table(on_ray)) == 12 + 2 + sum(v["windows"] for v in read_table(inputs_path(local))
                                                   if "@" in v["input_id"])
