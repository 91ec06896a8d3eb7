"""`semiostream score` on HTJ2K DICOM archives: the same p(TLE) as from the FFV1 sources they were converted
from (real scoring runs of both), DICOM files without a suffix are found, and patient identifiers in DICOM
headers never reach the output, the logs or the error rows. Every archive written here is read bit-exactly
by a second, independent decoder (pydicom + OpenJPEG, :mod:`independent_decode`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from arc_helpers import FAST, rows_by_key
from independent_decode import assert_pydicom_reads

from semiostream.archive.output import inputs_path, read_table
from semiostream.cli import main

NAME, MRN = "Doe^Janet^Q", "MRN-88X3K"


def _score(inputs, bundle, out, *extra):
    return main(["score", *map(str, inputs), "--bundle", str(bundle), "--out", str(out), *FAST, *extra])


def _by_stem(rows):
    return {(Path(r["input_id"]).stem, r["window"]): r for r in rows}


def test_htj2k_archive_scores_like_its_ffv1_source(arc_clips, arc_bundle, tmp_path, capsys):
    dcm = tmp_path / "dcm"
    dcm.mkdir()
    from semiostream.sources.readers import open_source

    for mkv in sorted(arc_clips.glob("*.mkv")):
        assert main(["convert", str(mkv), str(dcm / f"{mkv.stem}.dcm")]) == 0
        with open_source(mkv) as src:  # a second, independent decoder (pydicom + OpenJPEG) reads the archive
            assert_pydicom_reads(dcm / f"{mkv.stem}.dcm", src.read(0, src.num_frames))
    capsys.readouterr()
    a, b = tmp_path / "ffv1.parquet", tmp_path / "htj2k.parquet"
    assert _score([arc_clips], arc_bundle, a) == 0
    assert _score([dcm], arc_bundle, b) == 0
    assert "6 scored now" in capsys.readouterr().out
    wa, wb = _by_stem(read_table(a)), _by_stem(read_table(b))
    assert len(wa) == len(wb) == 12 and set(wa) == set(wb)
    for k, ra in wa.items():
        rb = wb[k]
        assert rb["input_id"].endswith(".dcm")
        assert (rb["first_frame"], rb["last_frame"]) == (ra["first_frame"], ra["last_frame"])
        assert rb["p_tle"] == pytest.approx(ra["p_tle"], abs=1e-5), k  # same frames -> same p(TLE) (float32 batching)
        assert (rb["t_first"], rb["t_last"]) == pytest.approx((ra["t_first"], ra["t_last"]), abs=1e-3)
    va = {Path(r["input_id"]).stem: r for r in read_table(inputs_path(a))}
    vb = {Path(r["input_id"]).stem: r for r in read_table(inputs_path(b))}
    for stem, r in va.items():
        assert vb[stem]["p_tle"] == pytest.approx(r["p_tle"], abs=1e-5) and vb[stem]["label"] == r["label"]


def test_dicom_identifiers_never_reach_logs_or_tables(arc_clips, arc_bundle, tmp_path, capsys, caplog):
    import imagecodecs
    import pydicom

    from semiostream.sources.readers import open_source
    from semiostream.sources.write_dicom import write_htj2k_dicom

    caplog.set_level(logging.DEBUG)
    folder = tmp_path / "pacs"
    folder.mkdir()
    with open_source(sorted(arc_clips.glob("*.mkv"))[0]) as src:
        frames = src.read(0, src.num_frames)
    write_htj2k_dicom(folder / "IM000001", frames, 15.0)  # no suffix, like a PACS export
    assert_pydicom_reads(folder / "IM000001", frames)
    ds = pydicom.dcmread(folder / "IM000001")
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, MRN, "19611231"
    ds.save_as(folder / "IM000001")
    bad = bytearray((folder / "IM000001").read_bytes())
    frame = bytes(imagecodecs.htj2k_encode(frames[20], reversible=True))
    at = bad.index(frame)  # the whole codestream (every frame starts with the same header bytes)
    bad[at + 30 : at + len(frame) - 30] = b"\x07" * (len(frame) - 60)  # frame 20 (window 1) no longer decodes
    (folder / "IM000002").write_bytes(bytes(bad))
    (folder / "IM000003.dcm").write_bytes(bytes(bad[: len(bad) // 2]))  # truncated
    out = tmp_path / "r.parquet"
    rc = _score([folder], arc_bundle, out)
    text = capsys.readouterr()
    videos = {Path(r["input_id"]).name: r for r in read_table(inputs_path(out))}
    assert rc == 2 + 2 and set(videos) == {"IM000001", "IM000002", "IM000003.dcm"}
    assert videos["IM000001"]["error"] is None and videos["IM000001"]["windows"] == 2
    assert videos["IM000002"]["error"].startswith("window 1: frame 20 is damaged")  # its checksum says so
    assert "truncated" in videos["IM000003.dcm"]["error"]
    rows = rows_by_key(read_table(out))
    everything = " ".join([text.out, text.err, caplog.text, *map(str, videos.values()), *map(str, rows.values())])
    for secret in (NAME, "Janet", MRN, "19611231"):
        assert secret not in everything
    np.testing.assert_array_equal(open_source(folder / "IM000001").read(0, 3), frames[:3])


def test_htj2k_windows_decoded_and_preprocessed_in_the_graph_score_like_host_decoding(arc_clips, arc_bundle,
                                                                                          tmp_path):
    """The GPU path of `score` on HTJ2K (decode + preprocess in one DALI graph, the model input submitted
    instead of frames) run with the same graph on the CPU: the same p(TLE) as decoding on the host."""
    from semiostream.archive.plan import plan_job
    from semiostream.archive.runner import score_local
    from semiostream.core.segment import Segment
    from semiostream.engines.scorer import Scorer

    mkv = sorted(arc_clips.glob("*.mkv"))[0]
    dcm = tmp_path / "w.dcm"
    assert main(["convert", str(mkv), str(dcm)]) == 0
    from semiostream.dali_pipes.pipeline_htj2k import decodes_in_graph
    from semiostream.sources.readers import open_source

    with open_source(mkv) as src:
        assert_pydicom_reads(dcm, src.read(0, src.num_frames))
    with open_source(dcm) as src:
        assert decodes_in_graph(src)  # the graph path is taken, not the host fallback
    got = {}
    with Scorer(arc_bundle, "torch-cpu-fp32") as scorer:
        plan = plan_job(Segment(dcm), "k", "sha", scorer.spec)
        for graph in (False, True):
            score_local([plan], scorer, lambda p, probs, err, g=graph: got.__setitem__(g, (probs, err)),
                        graph_decode=graph)
    (host, err_h), (in_graph, err_g) = got[False], got[True]
    assert err_h is None and err_g is None and len(host) == len(in_graph) >= 2
    np.testing.assert_allclose(in_graph, host, atol=2e-3)  # DALI's graph = the reference within its tolerance
