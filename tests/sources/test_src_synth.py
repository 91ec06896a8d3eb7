"""Synthetic IR generator and the `semiostream synth` / `semiostream convert` commands."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from semiostream.cli import main
from semiostream.sources.readers import open_source
from semiostream.sources.synth import MANIFEST_COLUMNS, SynthConfig, generate_dataset, render_clip

SMALL = SynthConfig(width=160, height=120, fps=15, seconds=4)


def _motion(clip) -> tuple[float, float]:
    """Mean |frame(t+5) - frame(t)| on 4x4-averaged frames: (quiet pre-ictal, ictal)."""
    f = clip.frames.astype(np.float32)
    t_, h, w = f.shape
    f = f[:, : h // 4 * 4, : w // 4 * 4].reshape(t_, h // 4, 4, w // 4, 4).mean((2, 4))
    d = np.abs(f[5:] - f[:-5]).mean((1, 2))
    t = np.arange(len(d)) / clip.fps
    return float(d[t < clip.onset - 0.3].mean()), float(d[(t >= clip.onset + 0.3) & (t < clip.offset - 0.3)].mean())


def test_render_is_deterministic_and_seed_dependent():
    a = render_clip(SMALL, 3, 1, "FLE")
    b = render_clip(SMALL, 3, 1, "FLE")
    c = render_clip(SMALL, 4, 1, "FLE")
    assert a.frames.dtype == np.uint16 and a.frames.shape == (60, 120, 160)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    assert 0 < a.onset < a.offset <= 4.0


def test_looks_like_kinect_ir():
    clip = render_clip(SynthConfig(), 1, 0, "TLE", num_frames=10)
    f = clip.frames
    assert 100 < np.median(f) < 3000 and f.max() < 10000  # IR sensor units, not 8-bit
    assert 0.0002 < (f == 0).mean() < 0.05  # dropouts reported as 0
    assert np.abs(np.diff(f.astype(np.int32), axis=0)).mean() > 3  # sensor noise
    r = clip.roi  # person + bed inside the frame, not the full frame
    assert 0 <= r.x0 < r.x1 <= 320 and 0 <= r.y0 < r.y1 <= 240


def test_classes_have_their_semiology():
    cfg = SynthConfig(seconds=8)
    for seed in (0, 1):
        fle, tle = render_clip(cfg, seed, 0, "FLE"), render_clip(cfg, seed, 0, "TLE")
        q_f, ict_f = _motion(fle)
        q_t, ict_t = _motion(tle)
        assert ict_f > 2.5 * q_f  # hypermotor: large movements
        assert ict_t > 1.15 * q_t  # automatisms: small but present
        assert ict_f > 2 * ict_t  # FLE-like moves much more than TLE-like
        assert (tle.offset - tle.onset) > 1.3 * (fle.offset - fle.onset)  # TLE-like lasts longer


def test_ten_seconds_render_quickly():
    t0 = time.perf_counter()
    clip = render_clip(SynthConfig(width=320, height=240, fps=30, seconds=10), 0, 0, "FLE")
    assert clip.frames.shape == (300, 240, 320)
    assert time.perf_counter() - t0 < 10  # ~1 s on a 2-core CPU


@pytest.mark.parametrize("fmt", ["mkv", "npy", "png"])
def test_dataset_manifest_and_formats(tmp_path: Path, fmt: str):
    manifest = generate_dataset(tmp_path / fmt, patients=2, seizures_per_patient=2, cfg=SMALL, fmt=fmt, seed=5)
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == MANIFEST_COLUMNS
    assert len(rows) == 4 and len({r["patient_id"] for r in rows}) == 2
    assert {r["label"] for r in rows} == {"FLE", "TLE"}
    for pid in {r["patient_id"] for r in rows}:
        assert len({r["label"] for r in rows if r["patient_id"] == pid}) == 1  # one diagnosis per patient
    first = rows[0]
    src = open_source(manifest.parent / first["path"], fps=float(first["fps"]))
    assert (src.num_frames, src.height, src.width, src.bit_depth) == (60, 120, 160, 16)
    clip = render_clip(SMALL, 5 * 100_003 + 0, 0, first["label"])
    np.testing.assert_array_equal(src.read(0, 60), clip.frames)  # lossless and reproducible
    assert float(first["onset"]) == pytest.approx(clip.onset, abs=1e-3)
    assert "SYNTHETIC" in (manifest.parent / "README.txt").read_text()


def test_cli_synth_and_convert(tmp_path: Path, capsys):
    out = tmp_path / "synth"
    rc = main(
        [
            "synth",
            str(out),
            "--patients",
            "2",
            "--seizures-per-patient",
            "1",
            "--seconds",
            "2",
            "--width",
            "96",
            "--height",
            "64",
            "--format",
            "npy",
            "--seed",
            "1",
        ]
    )
    assert rc == 0
    assert "SYNTHETIC" in capsys.readouterr().err
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    npy = out / rows[0]["path"]
    mkv = tmp_path / "a.mkv"
    assert main(["convert", str(npy), str(mkv), "--fps", "30"]) == 0
    np.testing.assert_array_equal(open_source(mkv).read(0, 60), open_source(npy).read(0, 60))
    assert main(["convert", str(npy), str(mkv)]) == 2  # exists, no --force
    assert main(["convert", str(tmp_path / "missing.npy"), str(tmp_path / "b.mkv")]) == 2
    err = capsys.readouterr().err
    assert "missing.npy: no such file" in err and "--force" in err
    assert main(["synth", str(out)]) == 2  # refuses to overwrite a manifest


def test_cli_help_says_synthetic(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert "SYNTHETIC" in capsys.readouterr().out
