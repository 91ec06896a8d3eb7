"""The event review report: one self-contained folder, the real model's view of the event, atomic writes."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from review_helpers import make_evidence

from semiostream.core.evidence import DecisiveWindow, EventEvidence, WindowRecord
from semiostream.review import figures
from semiostream.review.report import DISCLAIMER, report_dir_for, uncertainty, write_event_report

PROBS = [0.7, 0.9, None, 0.15, None, 0.75]
STATUSES = ["scored", "scored", "dropped", "scored", "failed", "scored"]


def local_refs(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=['"]?([^'" >]+)""", html)


def test_report_folder_is_self_contained_and_shows_the_models_view(review_bundle, clip, tmp_path):
    from semiostream.engines.scorer import Scorer

    ev = make_evidence(clip, review_bundle, PROBS, STATUSES)
    out = report_dir_for(tmp_path / "reports", ev.bed, ev.event_id)
    index = write_event_report(ev, review_bundle, out, saliency=True)
    assert index == out / "index.html" and index.is_file()
    html = index.read_text()
    # self-contained: every reference is a file of the folder, nothing external
    assert not re.search(r"(?:https?:)?//", html.replace("http://www.w3.org", "")), "external URL in the report"
    refs = local_refs(html)
    assert {"timeline.png", "first_frame.png", "montage_0.png", "montage_1.png"} <= set(refs)
    for ref in refs:
        img = Image.open(out / ref)
        assert img.format == "PNG" and img.width > 300 and img.height > 150
    assert sorted(p.name for p in out.iterdir()) == sorted({*refs, "index.html", "report.json"})
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary folder left beside it
    # what it says
    assert DISCLAIMER in html and "bed-01" in html and ev.event_id in html
    assert "4 scored, 1 dropped, 1 failed" in html and ev.bundle_id in html
    doc = json.loads((out / "report.json").read_text())
    assert doc["label"] == "TLE" and doc["p_tle"] == pytest.approx(np.mean([0.7, 0.9, 0.15, 0.75]))
    u = doc["uncertainty"]
    assert u["n"] == 4 and u["above"] == 3 and u["below"] == 1 and u["ci95"] is None  # too few for an interval
    assert "no 95% interval: fewer than 5 windows" in html and "95% interval of the mean" not in html
    assert doc["windows"] == {"scored": 4, "dropped": 1, "failed": 1}
    assert [d["first_seq"] for d in doc["decisive"]] == [16, 48]  # |p - 0.5| largest: 0.9 and 0.15
    assert [d["label"] for d in doc["detections"]] == ["person", "bed"]
    # the montage and the maps are computed on exactly what the scorer gives the model: same p(TLE)
    with Scorer(review_bundle, "torch-cpu-fp32", preprocessing="reference") as scorer:
        for d, w in zip(doc["decisive"], ev.decisive, strict=True):
            s = d["saliency"]
            assert s["method"] == "motion occlusion" and s["layer"] == "Mixed_4f"
            expect = float(scorer.score_windows([w.frames], [w.roi])[0])
            assert s["p_tle_recomputed"] == pytest.approx(expect, abs=1e-4)
            assert s["target"] == ("TLE" if expect >= 0.5 else "FLE")
            assert s["seconds"] < 60
    assert "motion occlusion" in html and "Mixed_4f" in html
    assert "differs from the scorer" in html  # the test evidence carries made-up p(TLE) values


def test_a_crash_leaves_the_previous_report_and_no_half_folder(review_bundle, clip, tmp_path, monkeypatch):
    out = tmp_path / "r" / "bed-01" / "ev"
    first = make_evidence(clip, review_bundle, PROBS, STATUSES, event_id="ev")
    write_event_report(first, review_bundle, out, saliency=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*a, **k):
        raise RuntimeError("disk died while drawing")

    monkeypatch.setattr(figures, "montage", broken)
    second = make_evidence(clip, review_bundle, [0.1] * 6, event_id="ev")
    with pytest.raises(RuntimeError, match="disk died"):
        write_event_report(second, review_bundle, out, saliency=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir()] == ["ev"]
    monkeypatch.undo()
    write_event_report(second, review_bundle, out, saliency=False)  # replaces the folder as a whole
    assert json.loads((out / "report.json").read_text())["label"] == "FLE"
    assert [p.name for p in out.parent.iterdir()] == ["ev"]


def test_reports_of_another_bundle_are_refused(review_bundle, clip, tmp_path):
    ev = make_evidence(clip, review_bundle, PROBS, STATUSES, bundle_id="0123456789abcdef")
    with pytest.raises(ValueError, match="scored by bundle 0123456789abcdef"):
        write_event_report(ev, review_bundle, tmp_path / "x", saliency=False)
    assert list(tmp_path.iterdir()) == []


def test_reports_written_from_several_threads_at_once(review_bundle, clip, tmp_path):
    errors: list[BaseException] = []

    def one(k: int) -> None:
        try:
            ev = make_evidence(clip, review_bundle, [0.1 * (k + 1)] * 6, event_id=f"ev-{k}")
            write_event_report(ev, review_bundle, tmp_path / f"ev-{k}", saliency=False)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for k in range(3):
        doc = json.loads((tmp_path / f"ev-{k}" / "report.json").read_text())
        assert doc["p_tle"] == pytest.approx(0.1 * (k + 1))
        assert Image.open(tmp_path / f"ev-{k}" / "montage_0.png").format == "PNG"


def test_a_report_without_frames_or_models_still_says_what_it_knows(review_bundle, clip, tmp_path):
    ev = make_evidence(clip, review_bundle, PROBS, STATUSES, first_frame=None, roi=None, decisive=False)
    html = write_event_report(ev, review_bundle, tmp_path / "a").read_text()
    assert "first frame was not kept" in html and "No window frames were kept" in html
    ev = make_evidence(clip, review_bundle, PROBS, STATUSES)
    html = write_event_report(ev, review_bundle, tmp_path / "b", device="cuda:7").read_text()
    assert "saliency unavailable" in html  # no such GPU: the maps are missing, and the report says why
    assert (tmp_path / "b" / "montage_0.png").is_file()


def test_evidence_says_what_is_wrong():
    frames = np.zeros((16, 40, 50), np.uint16)
    with pytest.raises(ValueError, match=r"\[T, H, W\] uint16 numpy array, got float32"):
        DecisiveWindow(frames.astype(np.float32), None, 0.9, 0, 0)
    with pytest.raises(ValueError, match="lies outside the 50x40 frame"):
        DecisiveWindow(frames, (0, 0, 60, 40), 0.9, 0, 0)
    with pytest.raises(ValueError, match="needs p"):
        WindowRecord(0, 15, 0, 1, None, "scored")
    with pytest.raises(ValueError, match="not a probability"):
        WindowRecord(0, 15, 0, 1, 1.5, "scored")
    with pytest.raises(ValueError, match="names the report's folder"):
        EventEvidence("../etc", "e", 0, 1, [], None, None, "b")
    with pytest.raises(ValueError, match="names the report's folder"):
        report_dir_for("/tmp", "bed-01", "a/b")
    assert report_dir_for(Path("/r"), "bed-01", "e1") == Path("/r/bed-01/e1")


def test_uncertainty_over_windows():
    u = uncertainty(np.array([0.9, 0.8, 0.85, 0.1, 0.7]))
    assert u["n"] == 5 and u["above"] == 4 and u["below"] == 1
    assert u["min"] == 0.1 and u["max"] == 0.9 and 0.1 <= u["ci95"][0] < u["mean"] < u["ci95"][1] <= 0.9
    # an independent reference: percentile bootstrap of the mean (numpy's own resampling of the same draws)
    rng = np.random.default_rng(0)
    p = np.array([0.9, 0.8, 0.85, 0.1, 0.7])
    ref = np.quantile(p[rng.integers(0, 5, size=(2000, 5))].mean(axis=1), [0.025, 0.975])
    assert u["ci95"] == pytest.approx(ref.tolist())
    # fewer than 5 windows: no interval (a bootstrap over 1-4 values is no measure of anything)
    for n in (1, 2, 4):
        assert uncertainty(p[:n])["ci95"] is None and uncertainty(p[:n])["n"] == n
    assert uncertainty(np.array([]))["n"] == 0
