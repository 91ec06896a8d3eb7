"""`semiostream score` with 2-second windows at any frame rate: clips as recorders write them (B-frame AVI and
MP4 of a real picture source, at 6, 30 and 60 fps), a .npy without a rate, and one far too slow.

Each window's p(TLE) is checked against the Scorer run directly on the frames an independent reference
selects from PyAV's sequential decode of the file (the frame on display at the middle of each 1/30 s)."""

from __future__ import annotations

import numpy as np
import pytest
from arc_helpers import FAST, rows_by_key
from random_bundle import make_random_bundle
from recorder_clips import demo_frames, encode_clip, reference_frames

from semiostream.archive.output import inputs_path, read_table
from semiostream.cli import main
from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.dali_pipes.event_intensity import segment_window
from semiostream.engines.scorer import Scorer

#: the paper's 2-s window: 60 frames at the bundle's 30 fps
SPEC = PreprocessSpec(window=60, min_frames=9)


def shown_at_30fps(n: int, fps: float) -> np.ndarray:
    """Frame on display at the middle of each 1/30 s over n frames at fps (the last one captured before it)."""
    middles = (np.arange(int(round(n / fps * 30))) + 0.5) / 30
    return np.array([max(i for i in range(n) if i / fps <= m - 1e-6) for m in middles])


@pytest.mark.slow
def test_any_rate_scores_2_second_windows(tmp_path, kinetics_ckpt, capsys):
    bundle = make_random_bundle(tmp_path / "bundle", kinetics_ckpt, 7, SPEC, reuse=False)
    folder = tmp_path / "clips"
    folder.mkdir()
    pictures = demo_frames(240, size=(128, 96))
    clips = {
        "six": (encode_clip(folder / "six", "mpeg4-avi", pictures[:24], fps=6), 24, 6.0),  # 4 s
        "thirty": (encode_clip(folder / "thirty", "h264-avi", pictures[:120], fps=30), 120, 30.0),  # 4 s
        "sixty": (encode_clip(folder / "sixty", "h264-mp4", pictures[:240], fps=60), 240, 60.0),  # 4 s
    }
    np.save(folder / "norate.npy", reference_frames(clips["thirty"][0])[:70])
    encode_clip(folder / "four", "mpeg4-avi", pictures[:16], fps=4)
    out = tmp_path / "res.parquet"
    rc = main(["score", str(folder), "--bundle", str(bundle), "--out", str(out), *FAST])
    text = capsys.readouterr().out
    assert rc == 3, text  # one failed input: the 4 fps clip
    assert "2 inputs resampled to the bundle's 30 fps" in text and "six.avi (6 fps)" in text
    assert "1 inputs store no frame rate; 30 fps assumed" in text and "norate.npy" in text
    videos = {v["path"].rsplit("/", 1)[1]: v for v in read_table(inputs_path(out))}
    windows = rows_by_key(read_table(out))
    assert "four.avi" in videos and "4 fps is below 5 fps" in videos["four.avi"]["error"]
    assert (videos["norate.npy"]["fps"], videos["norate.npy"]["fps_from"], videos["norate.npy"]["fps_used"]) \
        == (30.0, "assumed", 30.0)

    with Scorer(bundle, "torch-cpu-fp32", preprocessing="reference", engine_options={"compile": False}) as sc:
        for name, (path, n, fps) in clips.items():
            v = videos[path.name]
            assert (v["error"], v["windows"], v["num_frames"]) == (None, 2, n), name
            assert (v["fps"], v["fps_from"], v["fps_used"]) == (pytest.approx(fps), "file", 30.0), name
            ref = reference_frames(path)
            shown = shown_at_30fps(n, fps)
            assert len(shown) == 120
            held = segment_window(ref[shown[:SPEC.percentile_frames]], None, SPEC)
            expected = sc.score_windows([ref[shown[:60]], ref[shown[60:]]], [None, None], [held, held])
            for w in (0, 1):
                row = windows[(str(path), w)]
                # 2 s of the source per window, whatever its rate: window w starts at w * 2 s and its last
                # frame is one of the source's last two before w * 2 s + 2 s
                assert row["t_first"] == pytest.approx(2.0 * w, abs=1e-6), name
                assert row["t_last"] == pytest.approx(shown[60 * w + 59] / fps, abs=1e-6), name
                assert 0 < 2.0 * w + 2.0 - row["t_last"] <= 2 / fps + 1e-6, name
                assert (row["first_frame"], row["last_frame"]) == (shown[60 * w], shown[60 * w + 59]), name
                assert row["p_tle"] == pytest.approx(float(expected[w]), abs=1e-5), name
        # the 30 fps clip is read frame for frame: windows [0, 60) and [60, 120) as before
        assert [windows[(str(clips["thirty"][0]), w)]["last_frame"] for w in (0, 1)] == [59, 119]
