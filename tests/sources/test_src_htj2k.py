"""HTJ2K Lossless DICOM archives: bit-exact round trips (real Azure Kinect IR, synthetic clips, extreme
values, odd sizes, 8-bit), a file other DICOM readers understand (pydicom + its offset table), timing in the
standard attributes, and ``semiostream convert IN OUT.dcm``."""

from __future__ import annotations

import subprocess
import sys

import imagecodecs
import numpy as np
import pydicom
import pytest
from independent_decode import assert_pydicom_reads
from pydicom.encaps import get_frame
from shared_assets import asset

from semiostream.sources.read_dicom import HTJ2K_LOSSLESS, DicomSource
from semiostream.sources.readers import open_source
from semiostream.sources.write_dicom import convert_to_htj2k, write_htj2k_dicom
from semiostream.sources.writers import write_ffv1


def roundtrip(tmp_path, frames, **kw):
    path = write_htj2k_dicom(tmp_path / "a.dcm", frames, **kw)
    assert_pydicom_reads(path, frames)  # a second, independent decoder reads every archive written here
    with open_source(path) as src:
        return path, src.read(0, src.num_frames), src


def test_real_kinect_ir_recording_round_trips_bit_exact(tmp_path):
    mkv = asset("pyk4a_recording.mkv")
    for stream in ("ir", "depth"):
        with open_source(mkv, stream=stream) as src:
            out = convert_to_htj2k(src, tmp_path / f"{stream}.dcm")
            want, times = src.read(0, src.num_frames), src.frame_times(0, src.num_frames)
        assert_pydicom_reads(out, want)
        with open_source(out) as got:
            assert got.num_frames == len(want) and got.fps == pytest.approx(src.fps)
            assert np.array_equal(got.read(0, got.num_frames), want)
            assert np.allclose(got.frame_times(0, got.num_frames), times, atol=1e-6)
    ir0 = np.load(asset("pyk4a_ir_frame0_uint16.npy"))
    with open_source(tmp_path / "ir.dcm") as got:
        assert np.array_equal(got.read(0, 1)[0], ir0)


def test_synthetic_clip_through_ffv1_and_htj2k(tmp_path):
    from semiostream.sources.synth import SynthConfig, render_clip

    clip = render_clip(SynthConfig(width=160, height=120, fps=30.0, seconds=2.0), 0, 0, "TLE")
    frames = np.asarray(clip.frames, np.uint16)
    mkv = write_ffv1(tmp_path / "c.mkv", frames, 30.0)
    with open_source(mkv) as src:
        dcm = convert_to_htj2k(src, tmp_path / "c.dcm", chunk=17)
    assert_pydicom_reads(dcm, frames)
    with open_source(dcm) as got:
        assert (got.num_frames, got.fps) == (len(frames), 30.0)
        assert np.array_equal(got.read(0, got.num_frames), frames)
        assert np.array_equal(got.read(31, 47), frames[31:47])  # random access by window
    assert dcm.stat().st_size < 0.8 * frames.nbytes  # it compresses (noisy synthetic frames: ~1.9:1)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (3, 5), (37, 51), (424, 513)])
def test_extreme_values_and_odd_sizes(tmp_path, shape):
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    frames = np.stack([
        np.zeros(shape, np.uint16),
        np.full(shape, 65535, np.uint16),
        (np.indices(shape).sum(0) % 2 * 65535).astype(np.uint16),  # 0/65535 checkerboard
        rng.integers(0, 65536, shape, dtype=np.uint16),
        rng.integers(65000, 65536, shape, dtype=np.uint16),
    ])
    _, got, src = roundtrip(tmp_path, frames, fps=30.0)
    assert (src.height, src.width) == (h, w) and np.array_equal(got, frames)


def test_8bit_round_trip(tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (5, 31, 33), dtype=np.uint8)
    path, got, src = roundtrip(tmp_path, frames.astype(np.uint16), fps=25.0, bit_depth=8)
    assert src.bit_depth == 8 and np.array_equal(got, frames)
    assert pydicom.dcmread(path, stop_before_pixels=True).BitsAllocated == 8


def test_the_file_is_standard_dicom_other_readers_understand(tmp_path, frames16):
    times = np.arange(len(frames16)) / 30.0
    times[5:] += 0.1  # a dropped frame: irregular capture times
    path = write_htj2k_dicom(tmp_path / "s.dcm", frames16, 30.0, frame_times=times,
                             acquired="20260102030405.123456")
    assert_pydicom_reads(path, frames16)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == HTJ2K_LOSSLESS
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.3"  # Multi-frame Grayscale Word SC
    assert (ds.NumberOfFrames, ds.Rows, ds.Columns, ds.BitsStored, ds.PixelRepresentation) == (20, 48, 64, 16, 0)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.LossyImageCompression == "00"
    assert float(ds.FrameTime) == pytest.approx(1000 / 30) and ds.CineRate == 30
    assert ds.FrameIncrementPointer == 0x00181065 and len(ds.FrameTimeVector) == 20
    assert ds.AcquisitionDateTime == "20260102030405.123456"
    eot = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    for i in (0, 7, 19):  # pydicom's own frame lookup through our Extended Offset Table
        assert np.array_equal(imagecodecs.htj2k_decode(get_frame(ds.PixelData, i, extended_offsets=eot)), frames16[i])
    with open_source(path) as src:
        assert np.allclose(src.frame_times(0, 20), times, atol=1e-6)


def test_a_dicom_source_keeps_its_identity_in_the_htj2k_copy(tmp_path, frames16):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = "1.2.840.10008.5.1.4.1.1.7.3", generate_uid(), "1.2.3.4"
    ds.PatientName, ds.PatientID, ds.AcquisitionDateTime = "Doe^Jane", "MRN-1", "20250101120000"
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.FrameTime = 48, 64, 20, "50"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelData = frames16.tobytes()
    ds.save_as(tmp_path / "raw.dcm", enforce_file_format=True)
    with open_source(tmp_path / "raw.dcm") as src:
        convert_to_htj2k(src, tmp_path / "ht.dcm")
    assert_pydicom_reads(tmp_path / "ht.dcm", frames16)
    out = pydicom.dcmread(tmp_path / "ht.dcm", stop_before_pixels=True)
    assert (out.PatientName, out.PatientID, out.StudyInstanceUID) == ("Doe^Jane", "MRN-1", "1.2.3.4")
    assert out.SOPInstanceUID == ds.SOPInstanceUID and out.AcquisitionDateTime == "20250101120000"
    with open_source(tmp_path / "ht.dcm") as got:
        assert got.fps == 20.0 and np.array_equal(got.read(0, 20), frames16)


def test_an_interrupted_write_leaves_no_file(tmp_path, frames16):
    def chunks():
        yield frames16[:10]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_htj2k_dicom(tmp_path / "x.dcm", chunks(), num_frames=20)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="num_frames=20 but 10"):
        write_htj2k_dicom(tmp_path / "x.dcm", iter([frames16[:10]]), num_frames=20)
    assert list(tmp_path.iterdir()) == []


def test_convert_command_writes_htj2k_dicom(tmp_path, frames16):
    np.save(tmp_path / "in.npy", frames16)
    run = [sys.executable, "-m", "semiostream.cli", "convert", str(tmp_path / "in.npy"), str(tmp_path / "out.dcm"),
           "--fps", "15"]
    r = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert_pydicom_reads(tmp_path / "out.dcm", frames16)
    with open_source(tmp_path / "out.dcm") as src:
        assert isinstance(src, DicomSource) and src.fps == 15.0 and np.array_equal(src.read(0, 20), frames16)
    r = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "exists; pass --force" in r.stderr and "Traceback" not in r.stderr
    bad = [*run[:4], str(tmp_path / "in.npy"), str(tmp_path / "out.mp4")]
    r = subprocess.run(bad, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and ".dcm (HTJ2K DICOM) or .mkv" in r.stderr and "Traceback" not in r.stderr
