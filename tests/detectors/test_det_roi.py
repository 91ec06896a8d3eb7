"""Crop: ROI arithmetic, the paper's person+bed rule, detectors (real YOLOX on a real frame), tracking."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from shared_assets import asset

from semiostream.core.errors import UserError
from semiostream.core.preprocess_spec import PreprocessSpec
from semiostream.core.roi import Roi, as_roi
from semiostream.detectors.base import Detection, RoiTracker, StaticRoi, select_roi
from semiostream.detectors.registry import make_detector


def test_roi_expand_clamp_union():
    r = Roi(100, 50, 200, 150)
    assert r.expand(0.2, 640, 480) == Roi(80, 30, 220, 170)
    assert Roi(0, 0, 100, 100).expand(0.2, 110, 640) == Roi(0, 0, 110, 120)  # clamped
    assert Roi.from_box((10.2, 5.7, 20.1, 9.0)) == Roi(10, 5, 21, 9)
    assert Roi(0, 0, 10, 10).union(Roi(5, 20, 30, 25)) == Roi(0, 0, 30, 25)
    with pytest.raises(ValueError, match="lies outside the 512x424 frame"):
        Roi(600, 0, 700, 424).clamp(512, 424)
    with pytest.raises(ValueError, match="empty"):
        Roi(5, 5, 5, 10)
    assert as_roi(None, 64, 48) == Roi(0, 0, 64, 48)


def test_select_roi_best_person_and_bed_union_plus_20_percent():
    dets = [
        Detection((100, 100, 200, 300), 0.9, "person"),
        Detection((0, 0, 50, 50), 0.5, "person"),  # weaker person: ignored
        Detection((80, 150, 400, 350), 0.7, "bed"),
        Detection((300, 0, 600, 100), 0.2, "bed"),  # stronger? no, weaker bed: ignored
    ]
    choice = select_roi(dets, 640, 480, expand=0.2)
    # union (80, 100, 400, 350): 320 x 250 -> +64 / +50 per side
    assert choice.roi == Roi(16, 50, 464, 400)
    assert choice.person.score == 0.9 and choice.bed.score == 0.7 and not choice.fallback
    assert choice.rule == "person+bed"


def test_select_roi_one_box_missing_paper_rule_uses_the_raw_frame(caplog):
    dets = [Detection((10, 10, 110, 60), 0.8, "bed"), Detection((0, 0, 5, 5), 0.1, "person")]
    with caplog.at_level(logging.WARNING):
        choice = select_roi(dets, 640, 480, expand=0.0, min_score=0.3)  # the person is below min_score
    assert choice.roi == Roi(0, 0, 640, 480) and choice.fallback and choice.rule == "full frame"
    assert choice.person is None and choice.bed.score == 0.8
    assert "a bed but no person" in choice.message and "uncropped" in caplog.text
    only_person = select_roi([Detection((100, 100, 200, 300), 0.9, "person")], 640, 480)
    assert only_person.fallback and only_person.roi == Roi(0, 0, 640, 480) and "no bed" in only_person.message


def test_select_roi_single_box_option_crops_to_the_box_found():
    dets = [Detection((10, 10, 110, 60), 0.8, "bed"), Detection((0, 0, 5, 5), 0.1, "person")]
    choice = select_roi(dets, 640, 480, expand=0.0, min_score=0.3, crop_rule="single-box")
    assert choice.roi == Roi(10, 10, 110, 60) and choice.person is None and choice.rule == "bed only"
    person = select_roi([Detection((100, 100, 200, 300), 0.9, "person")], 640, 480, crop_rule="single-box")
    assert person.roi == Roi(80, 60, 220, 340) and person.rule == "person only" and not person.fallback
    both = select_roi([*dets, Detection((100, 100, 200, 300), 0.9, "person")], 640, 480, expand=0.0,
                      crop_rule="single-box")
    assert both.rule == "person+bed" and both.roi == Roi(10, 10, 200, 300)
    none = select_roi([], 64, 48, crop_rule="single-box")
    assert none.fallback and none.roi == Roi(0, 0, 64, 48)
    with pytest.raises(ValueError, match="unknown crop rule 'largest'"):
        select_roi(dets, 640, 480, crop_rule="largest")
    with pytest.raises(ValueError, match="unknown crop rule"):
        make_detector("full", crop_rule="largest")


def test_select_roi_nothing_found_falls_back_with_warning(caplog):
    with caplog.at_level(logging.WARNING):
        choice = select_roi([Detection((0, 0, 5, 5), 0.9, "cat")], 320, 240)
    assert choice.fallback and choice.roi == Roi(0, 0, 320, 240)
    assert "full 320x240 frame" in caplog.text and "no person or bed" in choice.message


def test_static_and_full_detectors():
    frame = np.zeros((240, 320), np.uint16)
    assert make_detector("static", roi=(10, 20, 100, 200)).locate(frame).roi == Roi(10, 20, 100, 200)
    assert make_detector("full").locate(frame).roi == Roi(0, 0, 320, 240)
    with pytest.raises(ValueError, match="outside the 320x240 frame"):
        StaticRoi((0, 0, 400, 240)).locate(frame)
    with pytest.raises(ValueError, match="unknown ROI detector"):
        make_detector("sam")


class _Counting(StaticRoi):
    calls = 0

    def locate(self, frame):
        type(self).calls += 1
        return super().locate(frame)


def test_tracker_detects_once_or_every_n_frames():
    frame = np.zeros((48, 64), np.uint16)
    once = RoiTracker(_Counting((1, 2, 30, 40)))
    for start in range(0, 600, 60):
        assert once.roi_for(frame, start) == Roi(1, 2, 30, 40)
    assert once.detections_run == 1
    live = RoiTracker(_Counting((1, 2, 30, 40)), redetect_every=180)
    for start in range(0, 600, 60):
        live.roi_for(frame, start)
    assert live.detections_run == 4  # at 0, 180, 360, 540


@pytest.fixture(scope="module")
def yolox():
    return make_detector("yolox", weights=asset("yolox_nano.onnx"), spec=PreprocessSpec())


def _demo_frame() -> np.ndarray:
    from semiostream.sources.readers import open_source

    return open_source(asset("mmaction2_demo.mp4")).read(0, 1)[0]  # two people arm wrestling, 340x256


def test_yolox_finds_people_in_a_real_frame(yolox):
    frame = _demo_frame()
    dets = yolox.detect(frame)
    people = [d for d in dets if d.label == "person"]
    assert people and people[0].score > 0.5
    x0, y0, x1, y1 = people[0].box
    assert (x1 - x0) * (y1 - y0) > 0.2 * 340 * 256  # a person, not a speck
    paper = yolox.locate(frame)  # people but no bed (arm wrestling): the paper uses the raw frame
    assert paper.fallback and paper.roi == Roi(0, 0, 340, 256) and "no bed" in paper.message
    single = make_detector("yolox", weights=asset("yolox_nano.onnx"), spec=PreprocessSpec(), crop_rule="single-box")
    choice = single.locate(frame)
    assert not choice.fallback and choice.person is not None and choice.rule == "person only"
    r = choice.roi
    assert r.x0 <= x0 and r.y0 <= y0 and r.x1 >= x1 and r.y1 >= y1  # expanded around the person
    assert r.width < 340  # an actual crop


def test_yolox_on_16bit_ir_like_frame_matches_8bit(yolox):
    frame = _demo_frame()
    ir = frame * 37 + 900  # the same scene as 16-bit sensor values
    single = make_detector("yolox", weights=asset("yolox_nano.onnx"), spec=PreprocessSpec(), crop_rule="single-box")
    a = single.locate(frame).roi
    b = single.locate(ir.astype(np.uint16)).roi
    assert max(abs(u - v) for u, v in zip(a, b, strict=True)) <= 8


def test_yolox_blank_frame_falls_back(yolox):
    choice = yolox.locate(np.full((240, 320), 1000, np.uint16))
    assert choice.fallback and choice.roi == Roi(0, 0, 320, 240)


def test_yolox_missing_model_is_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="not found"):
        make_detector("yolox", weights=tmp_path / "nope.onnx")


def test_maskrcnn_missing_weights_is_user_error_not_download(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*a, **k):
        raise AssertionError("must not download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(UserError, match="does not download") as info:
        make_detector("maskrcnn")
    assert str(tmp_path / "torch_home") in str(info.value)
    with pytest.raises(UserError, match="missing.pth does not exist"):
        make_detector("maskrcnn", weights=tmp_path / "missing.pth")


def test_maskrcnn_corrupt_weights_is_user_error(tmp_path: Path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot load"):
        make_detector("maskrcnn", weights=bad)


def test_maskrcnn_output_to_detections_and_roi():
    from semiostream.detectors.maskrcnn import detections_from_output

    out = {
        "boxes": torch.tensor([[10.0, 20, 60, 90], [0, 0, 300, 200], [50, 40, 250, 180], [5, 5, 9, 9]]),
        "scores": torch.tensor([0.95, 0.9, 0.8, 0.99]),
        "labels": torch.tensor([1, 65, 65, 17]),  # person, bed, bed, cat
    }
    dets = detections_from_output(out)
    assert [d.label for d in dets] == ["person", "bed", "bed"]
    choice = select_roi(dets, 320, 240, expand=0.2)
    assert choice.bed.score == pytest.approx(0.9) and choice.roi == Roi(0, 0, 320, 240)


def test_maskrcnn_loads_a_state_dict_file_and_runs(tmp_path: Path):
    """Loading path with a real torchvision architecture (random weights: no claim about detections)."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    path = tmp_path / "w.pth"
    torch.save(maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(), path)
    det = make_detector("maskrcnn", weights=path, min_score=0.99)
    choice = det.locate(np.random.default_rng(0).integers(0, 4000, (120, 160), dtype=np.uint16))
    assert choice.roi.x1 <= 160 and choice.roi.y1 <= 120
