"""Model bundle: round trip, integrity checks, version checks, PreprocessSpec validation, and verification
(self-contained, content-addressed, every failure a BundleError naming the file)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest
import torch

from semiostream.models.bundle import (
    BundleError,
    PreprocessSpec,
    check_bundle,
    load_bundle,
    read_bundle_json,
    save_bundle,
)
from semiostream.models.classifier import SeizureClassifier, pad_features
from semiostream.models.i3d import InceptionI3d


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return InceptionI3d(in_channels=1).eval(), SeizureClassifier(lstm_units=(32, 16), dense_units=(16, 8)).eval()


def test_round_trip(tmp_path, models):
    i3d, clf = models
    spec = PreprocessSpec(intensity_mode="fixed", intensity_lo=100, intensity_hi=3000)
    root = save_bundle(tmp_path / "b", i3d, clf, spec, provenance={"cv": {"macro_f1": 0.8}})
    b = load_bundle(root)
    assert b.spec == spec
    assert b.labels == ("FLE", "TLE")
    assert b.in_channels == 1
    assert b.meta["provenance"]["cv"]["macro_f1"] == 0.8
    assert len(b.bundle_id) == 16
    x = pad_features(torch.rand(2, 3, 1024))
    with torch.no_grad():
        torch.testing.assert_close(b.classifier(x), clf(x), rtol=0, atol=0)
        frames = torch.rand(1, 1, 9, 224, 224)
        torch.testing.assert_close(b.i3d.extract_features(frames), i3d.extract_features(frames), rtol=0, atol=0)
    # same content -> same id; another spec -> another id
    again = save_bundle(tmp_path / "b2", i3d, clf, spec)
    assert read_bundle_json(again)["bundle_id"] == b.bundle_id
    other = save_bundle(tmp_path / "b3", i3d, clf, PreprocessSpec())
    assert read_bundle_json(other)["bundle_id"] != b.bundle_id


def test_tampered_file_is_detected(tmp_path, models):
    root = save_bundle(tmp_path / "b", *models)
    with open(root / "classifier.pt", "r+b") as f:
        f.seek(200)
        f.write(b"\x00\x01\x02")
    with pytest.raises(BundleError, match="classifier.pt has sha256"):
        load_bundle(root)


def test_missing_file_and_version(tmp_path, models):
    root = save_bundle(tmp_path / "b", *models)
    meta = json.loads((root / "bundle.json").read_text())
    meta["format_version"] = 99
    (root / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="format version 99"):
        load_bundle(root)
    root2 = save_bundle(tmp_path / "c", *models)
    (root2 / "i3d.safetensors").unlink()
    with pytest.raises(BundleError, match="missing i3d.safetensors"):
        load_bundle(root2)
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="bundle.json is missing"):
        load_bundle(tmp_path / "empty")


def test_unknown_spec_field_is_reported(tmp_path, models):
    root = save_bundle(tmp_path / "b", *models)
    meta = json.loads((root / "bundle.json").read_text())
    meta["preprocess"]["gamma_correction"] = 2.2
    meta["bundle_id"] = _content_id(meta)  # as a newer writer would record it
    (root / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="gamma_correction"):
        load_bundle(root)


def test_spec_defaults_are_the_papers():
    s = PreprocessSpec()
    assert (s.window, s.min_frames, s.crop_expand, s.size, s.pad_value) == (60, 9, 0.2, 224, -1.0)
    assert PreprocessSpec.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("kwargs,msg", [
    ({"min_frames": 8}, "below 9"),
    ({"window": 8, "min_frames": 9}, "shorter than min_frames"),
    ({"intensity_mode": "fixed", "intensity_lo": 500, "intensity_hi": 100}, "must exceed"),
    ({"intensity_mode": "gamma"}, "use 'fixed' or 'percentile'"),
    ({"percentile_lo": 50, "percentile_hi": 10}, "0 <= lo < hi <= 100"),
])
def test_spec_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        PreprocessSpec(**kwargs)


# --- verification: self-contained, content-addressed, every failure a BundleError -------------------------

def _content_id(meta):
    """The documented bundle id: sha256 of the files' digests, the spec and the labels (16 hex digits)."""
    blob = json.dumps({"files": meta["files"], "preprocess": meta["preprocess"], "labels": meta["labels"]},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _edit(root, change, rehash=False):
    """Apply ``change(meta, root)`` to bundle.json; with ``rehash``, record the digest of every listed file
    and the id of the content, as a writer that means what it wrote would."""
    meta = json.loads((root / "bundle.json").read_text())
    change(meta, root)
    if rehash:
        meta["files"] = {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in meta["files"]}
        meta["bundle_id"] = _content_id(meta)
    (root / "bundle.json").write_text(json.dumps(meta))
    return meta


def _within(seconds, fn, *args):
    """Run ``fn(*args)`` in a thread; fail (instead of hanging the suite) if it is still running after
    ``seconds``. Returns the exception it raised, or None."""
    box = []

    def target():
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box.append(e)
        else:
            box.append(None)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} still running after {seconds} s (blocked?)"
    return box[0]


@pytest.fixture(scope="module")
def two_bundles(tmp_path_factory, models):
    """(genuine, other): the same I3D, classifiers with different weights (p(TLE) differs)."""
    base = tmp_path_factory.mktemp("bundles")
    i3d, clf = models
    genuine = save_bundle(base / "genuine", i3d, clf)
    torch.manual_seed(7)
    other = save_bundle(base / "other", i3d, SeizureClassifier(lstm_units=(32, 16), dense_units=(16, 8)).eval())
    return genuine, other


@pytest.fixture
def genuine(two_bundles, tmp_path):
    dst = tmp_path / "genuine"
    shutil.copytree(two_bundles[0], dst)
    return dst


def _point_outside(kind):
    """bundle.json edits of the issue: the classifier weights come from outside the bundle directory."""
    def change(meta, root):
        other = root.parent / "other"
        shutil.copytree(Path(meta["_other"]), other)
        del meta["_other"]
        target = {"absolute": str(other / "classifier.pt"), "dotdot": "../other/classifier.pt"}.get(kind)
        if kind in ("absolute", "dotdot"):
            meta["classifier"]["file"] = target
            meta["files"][target] = hashlib.sha256((other / "classifier.pt").read_bytes()).hexdigest()
            del meta["files"]["classifier.pt"]
        elif kind == "unlisted":
            meta["classifier"]["file"] = "../other/classifier.pt"
            del meta["files"]["classifier.pt"]
        elif kind == "no_files":
            meta["files"] = {}
        elif kind == "symlink":  # classifier.pt is a link to the other bundle's weights
            (root / "classifier.pt").unlink()
            (root / "classifier.pt").symlink_to(other / "classifier.pt")
            meta["files"]["classifier.pt"] = hashlib.sha256((other / "classifier.pt").read_bytes()).hexdigest()
    return change


@pytest.mark.parametrize("kind, message", [
    ("absolute", "must be a path relative to the bundle directory"),
    ("dotdot", "must be a path relative to the bundle directory"),
    ("unlisted", "must be a path relative to the bundle directory"),
    ("no_files", "the i3d weights i3d.safetensors are not listed in 'files'"),
    ("symlink", "classifier.pt is a symbolic link to .*outside the bundle directory"),
])
@pytest.mark.parametrize("claimed_id", ["genuine", "recomputed"])
def test_weights_from_outside_the_bundle_are_refused(genuine, two_bundles, kind, message, claimed_id):
    genuine_id = load_bundle(genuine).bundle_id

    def change(meta, root):
        meta["_other"] = str(two_bundles[1])
        _point_outside(kind)(meta, root)
        if claimed_id == "recomputed":
            meta["bundle_id"] = _content_id(meta)

    meta = _edit(genuine, change)
    assert meta["bundle_id"] == genuine_id or claimed_id == "recomputed"
    with pytest.raises(BundleError, match=message):
        load_bundle(genuine)
    with pytest.raises(BundleError, match=message):
        check_bundle(genuine)


def test_a_symlink_inside_the_bundle_is_followed(genuine):
    (genuine / "weights").mkdir()
    (genuine / "classifier.pt").rename(genuine / "weights" / "classifier.pt")
    (genuine / "classifier.pt").symlink_to(Path("weights") / "classifier.pt")
    assert load_bundle(genuine).bundle_id == json.loads((genuine / "bundle.json").read_text())["bundle_id"]


def test_the_id_is_the_contents(genuine, two_bundles):
    """Other weights (or another spec) under the genuine id are refused; with the id of their content they
    load, and report that id, never the genuine one."""
    genuine_id = load_bundle(genuine).bundle_id
    assert genuine_id == _content_id(json.loads((genuine / "bundle.json").read_text()))
    shutil.copy(two_bundles[1] / "classifier.pt", genuine / "classifier.pt")

    def swap_hash(meta, root):
        meta["files"]["classifier.pt"] = hashlib.sha256((root / "classifier.pt").read_bytes()).hexdigest()

    _edit(genuine, swap_hash)
    with pytest.raises(BundleError, match=f"claims bundle_id '{genuine_id}' but its files, preprocessing and "
                                          "labels give [0-9a-f]{16}; bundle.json was edited by hand"):
        load_bundle(genuine)
    _edit(genuine, lambda meta, root: None, rehash=True)
    b = load_bundle(genuine)
    assert b.bundle_id != genuine_id and b.bundle_id == load_bundle(two_bundles[1]).bundle_id

    def other_spec(meta, root):
        meta["preprocess"]["intensity_mode"] = "fixed"

    _edit(genuine, other_spec)
    with pytest.raises(BundleError, match="claims bundle_id"):
        check_bundle(genuine)


def test_files_lists_exactly_the_weights(genuine):
    def extra(meta, root):
        (root / "notes.txt").write_text("x")
        meta["files"]["notes.txt"] = hashlib.sha256(b"x").hexdigest()

    _edit(genuine, extra, rehash=True)
    with pytest.raises(BundleError, match=r"'files' lists \['notes.txt'\], which no model of the bundle uses"):
        load_bundle(genuine)


def _garbage_pickle(root):
    (root / "classifier.pt").write_bytes(b"\x80\x04garbage, not a pickle" * 50)


def _truncated_zip(root):
    data = (root / "classifier.pt").read_bytes()
    (root / "classifier.pt").write_bytes(data[:len(data) // 2])  # no zip central directory


def _garbage_safetensors(root):
    (root / "i3d.safetensors").write_bytes(b"\xff" * 8 + b"not a header" * 20)


def _huge_safetensors_header(root):
    (root / "i3d.safetensors").write_bytes((1 << 62).to_bytes(8, "little") + b"{}")


def _list_not_dict(root):
    torch.save([torch.zeros(3)], root / "classifier.pt")


def _non_tensor_values(root):
    torch.save({"fc1.weight": 3, "fc1.bias": "x"}, root / "classifier.pt")


def _missing_keys(root):
    state = torch.load(root / "classifier.pt", weights_only=True)
    del state["fc1.weight"]
    torch.save(state, root / "classifier.pt")


def _wrong_shapes(root):
    from safetensors.torch import load_file, save_file

    state = load_file(root / "i3d.safetensors")
    state["Conv3d_1a_7x7.conv3d.weight"] = torch.zeros(64, 3, 7, 7, 7)  # the RGB stem in a gray bundle
    save_file(state, root / "i3d.safetensors")


@pytest.mark.parametrize("damage, message", [
    (_garbage_pickle, "classifier.pt is not a readable PyTorch state dict"),
    (_truncated_zip, "classifier.pt is not a readable PyTorch state dict"),
    (_list_not_dict, "classifier.pt holds a list, not a state dict of named tensors"),
    (_non_tensor_values, "classifier.pt holds a dict, not a state dict of named tensors"),
    (_missing_keys, r"classifier.pt does not match the classifier config in bundle.json \(missing \['fc1.weight'\]"),
    (_garbage_safetensors, "i3d.safetensors is not a readable safetensors file"),
    (_huge_safetensors_header, "i3d.safetensors is not a readable safetensors file"),
    (_wrong_shapes, r"i3d.safetensors does not match the i3d config .*Conv3d_1a_7x7.conv3d.weight \(64, 3, 7, 7, 7\)"),
])
def test_weights_that_do_not_load_are_bundle_errors(genuine, damage, message):
    """The files' digests and the id are consistent (a writer produced them): the load itself fails."""
    damage(genuine)
    _edit(genuine, lambda meta, root: None, rehash=True)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(genuine)
    assert "\n" not in str(info.value) and re.search("save (it|the bundle) again", str(info.value))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["classifier"].update(lstm_units=[64, 16]), r"classifier.pt does not match .*shapes"),
    (lambda m: m["classifier"].update(lstm_units=[100_000, 64]), r"classifier.pt does not match .*shapes"),
    (lambda m: m["classifier"].update(lstm_units="big"), r"'classifier' config .* does not build the SeizureClassifier"),
    (lambda m: m["i3d"].update(colour="yes"), r"'i3d' config .* does not build the InceptionI3d"),
    (lambda m: m["i3d"].update(file=7), r"'i3d.file' must name the i3d weight file"),
    (lambda m: m.update(labels="FLE,TLE"), "'labels' must be a list of two names"),
    (lambda m: m.update(files=["i3d.safetensors"]), "'files' must map file names to sha256 digests"),
    (lambda m: m["files"].update({"classifier.pt": "abc"}), r"files\['classifier.pt'\] must be a sha256 digest"),
    (lambda m: m.update(preprocess={**m["preprocess"], "window": "sixty"}), "'preprocess' is not a valid spec"),
    (lambda m: m.update(preprocess=[60]), "'preprocess' must be an object"),
])
def test_mistyped_bundle_json_is_a_bundle_error(genuine, change, message):
    _edit(genuine, lambda meta, root: change(meta))
    meta = json.loads((genuine / "bundle.json").read_text())
    if isinstance(meta["files"], dict) and isinstance(meta["preprocess"], dict) and isinstance(meta["labels"], list):
        meta["bundle_id"] = _content_id(meta)  # consistent, so the check under test is the one that fires
        (genuine / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=message):
        load_bundle(genuine)


@pytest.mark.parametrize("content, message", [
    (b'{"format": "semiostream-bundle", "labels": ["FL\xe9", "TLE"]}', "bundle.json: is not UTF-8 text"),
    (b'{"format": "semiostream-bundle",', "bundle.json: is not valid JSON"),
    (b"[" * 100_000, "bundle.json: is not valid JSON"),
    (b'["semiostream-bundle"]', "bundle.json: holds a JSON list, not an object"),
])
def test_malformed_bundle_json_is_a_bundle_error(genuine, content, message):
    (genuine / "bundle.json").write_bytes(content)
    with pytest.raises(BundleError, match=message):
        load_bundle(genuine)


@pytest.mark.parametrize("name", ["bundle.json", "classifier.pt"])
def test_a_fifo_in_the_bundle_is_refused_without_blocking(genuine, name):
    (genuine / name).unlink()
    os.mkfifo(genuine / name)
    err = _within(20, load_bundle, genuine)
    assert isinstance(err, BundleError) and "is a FIFO (named pipe), not a regular file" in str(err)


def test_a_symlink_to_a_device_or_a_loop_is_refused(genuine):
    (genuine / "classifier.pt").unlink()
    (genuine / "classifier.pt").symlink_to("/dev/zero")
    err = _within(20, load_bundle, genuine)
    assert isinstance(err, BundleError) and "classifier.pt is a character device" in str(err)
    (genuine / "classifier.pt").unlink()
    (genuine / "classifier.pt").symlink_to(genuine / "classifier.pt")
    with pytest.raises(BundleError, match="classifier.pt is a symbolic link loop"):
        load_bundle(genuine)
