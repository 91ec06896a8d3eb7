"""HTJ2K archives never rot silently: the encoder's first use on several threads in fresh processes writes
frames that a second, independent decoder (pydicom + OpenJPEG) reads bit-exactly; flipped bytes in any frame
become an error naming the file and that frame (CPU reader, DALI graph and ``semiostream score``); codec
errors raise instead of reaching only stderr; converting real third-party DICOM files (``pydicom-data``)
keeps what they state (Bits Stored, timing, lossy history) and invents nothing.

The full figures (200 fresh-process converts, 200 flip trials) come from ``stress_htj2k.py`` in this folder.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pydicom
import pytest
from independent_decode import assert_pydicom_reads, pydicom_frames
from stress_htj2k import convert_trials, flip_trials, thread_trials

from semiostream.sources import frame_checksum, htj2k_codec
from semiostream.sources.read_dicom import DicomSource
from semiostream.sources.readers import open_source
from semiostream.sources.source import SourceError
from semiostream.sources.write_dicom import convert_to_htj2k, write_htj2k_dicom


def test_first_encodes_on_many_threads_decode_independently_in_fresh_processes(tmp_path):
    """The lean version of ``stress_htj2k.py threads 200``."""
    assert thread_trials(6, tmp_path) == {"processes": 6, "bad": 0}


def test_convert_in_fresh_processes_writes_archives_pydicom_reads(tmp_path):
    """The lean version of ``stress_htj2k.py convert 200`` (with and without --no-verify)."""
    assert convert_trials(4, [], tmp_path, seed=7) == {"runs": 4, "failed": 0, "undecodable": 0, "different": 0}
    assert convert_trials(4, ["--no-verify"], tmp_path, seed=8) == {
        "runs": 4, "failed": 0, "undecodable": 0, "different": 0}


def test_flipped_bytes_in_any_frame_name_that_frame(tmp_path):
    """The lean version of ``stress_htj2k.py flip 200``: every trial is an error naming the damaged frame."""
    assert flip_trials(40, tmp_path) == {"trials": 40, "named": 40, "other_error": 0, "silent": 0}


def _damaged(tmp_path, frame=3):
    frames = np.random.default_rng(5).integers(0, 4096, (8, 40, 56), dtype=np.uint16)
    path = write_htj2k_dicom(tmp_path / "a.dcm", frames, 30.0)
    assert_pydicom_reads(path, frames)
    with DicomSource(path) as src:
        assert src.header.checksummed
        a, b = int(src._starts[frame]) + 8, int(src._stops[frame])
    data = bytearray(path.read_bytes())
    data[(a + b) // 2] ^= 0x10  # one bit
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(bytes(data))
    return frames, bad


def test_a_damaged_frame_is_an_error_in_every_reader_and_the_others_still_read(tmp_path):
    from semiostream.core.preprocess_spec import PreprocessSpec
    from semiostream.dali_pipes.pipeline_htj2k import Htj2kWindowPreprocessor

    frames, bad = _damaged(tmp_path)
    with open_source(bad) as src:
        assert np.array_equal(src.read(0, 3), frames[:3]) and np.array_equal(src.read(4, 8), frames[4:])
        with pytest.raises(SourceError, match=r"bad\.dcm: frame 3 is damaged"):
            src.read(2, 5)
        with pytest.raises(SourceError, match="frame 3 is damaged"):
            src.codestreams(3, 4)
        pre = Htj2kWindowPreprocessor(PreprocessSpec(intensity_mode="fixed", intensity_lo=0.0, intensity_hi=4095.0),
                                      device="cpu", max_frames=8)
        with pytest.raises(SourceError, match="frame 3 is damaged"):
            pre(src, 0, 8, None)
        assert pre(src, 4, 8, None).shape[1] == 4


@pytest.mark.slow
def test_score_gives_an_error_row_naming_the_damaged_frame(tmp_path, kinetics_ckpt, capsys):
    from random_bundle import make_random_bundle

    from semiostream.archive.output import inputs_path, read_table
    from semiostream.cli import main
    from semiostream.core.preprocess_spec import PreprocessSpec

    bundle = make_random_bundle(tmp_path / "bundle", kinetics_ckpt, 3, PreprocessSpec(window=16, fps=15, min_frames=9))
    frames = np.random.default_rng(2).integers(0, 4096, (40, 72, 96), dtype=np.uint16)
    (tmp_path / "in").mkdir()
    good = write_htj2k_dicom(tmp_path / "in" / "good.dcm", frames, 15.0)
    with DicomSource(good) as src:
        a, b = int(src._starts[20]) + 8, int(src._stops[20])
    data = bytearray(good.read_bytes())
    stop = min(a + 430, b)
    data[a + 30 : stop] = bytes(stop - a - 30)  # 400 bytes of frame 20 zeroed
    (tmp_path / "in" / "bad.dcm").write_bytes(bytes(data))
    out = tmp_path / "out.parquet"
    rc = main(["score", str(tmp_path / "in"), "--bundle", str(bundle), "--out", str(out), "--backend",
               "torch-cpu-fp32", "--no-compile", "--preprocessing", "reference", "--quiet"])
    capsys.readouterr()
    rows = {r["input_id"].rsplit("/", 1)[-1]: r for r in read_table(inputs_path(out))}
    assert rows["good.dcm"]["error"] in (None, "")
    assert "frame 20 is damaged" in rows["bad.dcm"]["error"]  # the row of the file, naming the frame
    assert rc != 0


def test_codec_errors_raise_and_do_not_reach_only_stderr(tmp_path, capfd):
    """An HTJ2K file without checksums (as other writers make them): OpenJPH's error for a damaged
    codestream, which imagecodecs only prints, is an error naming the frame."""
    frames = np.random.default_rng(0).integers(0, 4096, (3, 120, 160), dtype=np.uint16)
    data = htj2k_codec.encode(frames[1])
    rng, hits = np.random.default_rng(1), 0
    for _ in range(30):
        bad = bytearray(data)
        for p in rng.integers(100, len(bad), 8):
            bad[p] ^= 0xFF
        try:
            htj2k_codec.decode(bytes(bad))
        except htj2k_codec.Htj2kDecodeError:
            hits += 1
    assert hits >= 5  # the decoder notices some damage (the checksum finds the rest)
    err = capfd.readouterr().err
    assert "Exception ignored" not in err and "ojph error" not in err
    # the same through the reader, on a file without our checksum element
    path = write_htj2k_dicom(tmp_path / "x.dcm", frames, 30.0)
    ds = pydicom.dcmread(path)
    del ds[frame_checksum.checksum_tag(ds)]
    del ds[frame_checksum.CREATOR_TAGS[0]]
    with DicomSource(path) as src:
        streams = src.codestreams(0, 3)
    for seed in range(50):
        bad = bytearray(streams[1])
        for p in np.random.default_rng(seed).integers(100, len(bad), 8):
            bad[p] ^= 0xFF
        try:
            htj2k_codec.decode(bytes(bad))
        except htj2k_codec.Htj2kDecodeError:
            break
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([streams[0], bytes(bad), streams[2]])
    for key in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        del ds[key]
    ds.save_as(tmp_path / "other.dcm", enforce_file_format=True)
    with DicomSource(tmp_path / "other.dcm") as src:
        assert not src.header.checksummed
        with pytest.raises(SourceError, match=r"cannot decode frame 1 \(HTJ2K Lossless: Htj2kDecodeError"):
            src.read(0, 3)
    assert "Exception ignored" not in capfd.readouterr().err


def _testdata(name):
    from pydicom.data import get_testdata_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_testdata_file(name)


# real DICOM files of other people (pydicom-data): 12-bit multi-frame in five transfer syntaxes, 15- and
# 10-bit single frames (lossless J2K, lossy J2K), an 8-bit image, lossy 12-bit JPEG
CASES = {
    "emri_small.dcm": (12, "00"), "emri_small_big_endian.dcm": (12, "00"), "emri_small_RLE.dcm": (12, "00"),
    "emri_small_jpeg_2k_lossless.dcm": (12, "00"), "emri_small_jpeg_ls_lossless.dcm": (12, "00"),
    "RG1_J2KR.dcm": (15, "00"), "RG3_J2KI.dcm": (10, "01"), "MR2_UNCI.dcm": (12, "01"), "vlut_04.dcm": (8, "00"),
    "JPGExtended.dcm": (12, "01"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_real_dicom_files_convert_keeping_what_they_state(tmp_path, name):
    bits_stored, lossy = CASES[name]
    path = _testdata(name)
    src_ds = pydicom.dcmread(path)
    with open_source(path) as src:
        ours = src.read(0, src.num_frames)
        out = convert_to_htj2k(src, tmp_path / "copy.dcm")
        fps_from = src.fps_from
    try:  # pydicom's own decode of the source, where it has a plugin for the source's codec
        want = pydicom_frames(path).astype(np.uint16)
        if src_ds.PhotometricInterpretation == "MONOCHROME1":  # read (and archived) in MONOCHROME2 sense
            want = (1 << bits_stored) - 1 - want
        assert np.array_equal(ours, want)
    except RuntimeError as e:
        assert "Unable to" in str(e)  # JPEG-LS / 12-bit JPEG: no pydicom plugin installed; imagecodecs reads it
    assert_pydicom_reads(out, ours)
    with DicomSource(out) as back:
        assert np.array_equal(back.read(0, back.num_frames), ours) and back.header.checksummed
    ds = pydicom.dcmread(out)
    assert (ds.BitsStored, ds.HighBit, ds.LossyImageCompression) == (bits_stored, bits_stored - 1, lossy)
    assert ds.SOPClassUID == ("1.2.840.10008.5.1.4.1.1.7.3" if ds.BitsAllocated == 16 else "1.2.840.10008.5.1.4.1.1.7.2")
    assert ("FrameTime" in ds) == ("FrameTime" in src_ds) and fps_from in ("file", "assumed")
    if "FrameTime" not in src_ds:
        assert "CineRate" not in ds and "FrameIncrementPointer" not in ds  # no rate invented
    if ds.SOPClassUID != src_ds.SOPClassUID:  # another kind of object: a new instance that names its source
        assert ds.SOPInstanceUID != src_ds.SOPInstanceUID
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src_ds.SOPInstanceUID
    assert ds.StudyInstanceUID == src_ds.StudyInstanceUID and ds.PatientID == src_ds.get("PatientID", "")


def test_convert_refuses_colour_and_states_no_rate_it_was_not_given(tmp_path, frames16):
    colour = _testdata("SC_rgb.dcm")
    run = [sys.executable, "-m", "semiostream.cli", "convert"]
    r = subprocess.run([*run, colour, str(tmp_path / "c.dcm")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "colour" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "c.dcm").exists()
    np.save(tmp_path / "in.npy", frames16)
    r = subprocess.run([*run, str(tmp_path / "in.npy"), str(tmp_path / "n.dcm")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and "stores no frame rate" in r.stderr, r.stderr
    ds = pydicom.dcmread(tmp_path / "n.dcm", stop_before_pixels=True)
    assert not {"FrameTime", "FrameTimeVector", "CineRate", "FrameIncrementPointer"} & set(ds.dir())
    with open_source(tmp_path / "n.dcm") as src:
        assert src.fps_from == "assumed" and np.array_equal(src.read(0, 20), frames16)
    assert_pydicom_reads(tmp_path / "n.dcm", frames16)
