"""DICOM video as an input: every supported transfer syntax decodes to the frames that were encoded,
frames are found by the offset tables (or fragment walk), bad files raise one SourceError, and patient
identifiers never appear in an error, a repr or a log line.

Files are made here with pydicom (data sets, encapsulation, its RLE encoder) and imagecodecs (the
JPEG-LS / JPEG 2000 / HTJ2K / lossless JPEG codestreams); the oracle is the array that was encoded.
"""

from __future__ import annotations

import logging

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.uid import generate_uid

from semiostream.sources.read_dicom import DicomSource
from semiostream.sources.readers import open_source
from semiostream.sources.source import SourceError

PATIENT_NAME, PATIENT_ID = "Doe^Jane^Secretname", "MRN-7G4Q2Z"

ENCODERS = {
    "1.2.840.10008.1.2.4.80": lambda x: imagecodecs.jpegls_encode(x),
    "1.2.840.10008.1.2.4.90": lambda x: imagecodecs.jpeg2k_encode(x, level=0, codecformat="j2k"),
    "1.2.840.10008.1.2.4.201": lambda x: imagecodecs.htj2k_encode(x, reversible=True),
    "1.2.840.10008.1.2.4.70": lambda x: imagecodecs.ljpeg_encode(x),
}


def dataset(frames: np.ndarray, ts: str, **extra) -> Dataset:
    """A Multi-frame Grayscale Word/Byte SC data set of ``[T, H, W]`` frames, carrying patient identifiers."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3" if frames.dtype == np.uint16 else "1.2.840.10008.5.1.4.1.1.7.2"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, "19700101"
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.NumberOfFrames = len(frames)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    bits = frames.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.FrameTime = "40"
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def save(ds: Dataset, path) -> str:
    ds.save_as(path, enforce_file_format=True)
    return str(path)


@pytest.fixture
def clip() -> np.ndarray:
    """[6, 37, 51] uint16 (odd sizes), full range with 0 and 65535."""
    rng = np.random.default_rng(7)
    fr = rng.integers(0, 65536, (6, 37, 51), dtype=np.uint16)
    fr[0, 0, 0], fr[-1, -1, -1] = 0, 65535
    return fr


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
def test_uncompressed_little_endian(tmp_path, clip, ts):
    ds = dataset(clip, ts)
    ds.PixelData = clip.tobytes()
    path = save(ds, tmp_path / "v.dcm")
    with open_source(path) as src:
        assert isinstance(src, DicomSource) and not src.encapsulated
        assert (src.num_frames, src.height, src.width, src.bit_depth, src.fps) == (6, 37, 51, 16, 25.0)
        assert np.array_equal(src.read(0, 6), clip) and np.array_equal(src.read(2, 4), clip[2:4])
    assert np.array_equal(pydicom.dcmread(path).pixel_array, clip)  # the file itself is what pydicom reads


def test_uncompressed_big_endian(tmp_path, clip):
    ds = dataset(clip, "1.2.840.10008.1.2.2")
    ds.PixelData = clip.astype(">u2").tobytes()
    ds["PixelData"].VR = "OW"
    path = save(ds, tmp_path / "be.dcm")
    with open_source(path) as src:
        assert np.array_equal(src.read(1, 6), clip[1:])


def test_rle_lossless(tmp_path, clip):
    ds = dataset(clip, "1.2.840.10008.1.2.1")
    ds.compress("1.2.840.10008.1.2.5", clip, encoding_plugin="pydicom")
    path = save(ds, tmp_path / "rle.dcm")
    with open_source(path) as src:
        assert src.header.transfer_syntax_name == "RLE Lossless"
        assert np.array_equal(src.read(0, 6), clip)


@pytest.mark.parametrize("ts", sorted(ENCODERS))
@pytest.mark.parametrize("table", ["basic", "extended", "none", "fragments"])
def test_compressed_syntaxes_and_offset_tables(tmp_path, clip, ts, table):
    encoded = [bytes(ENCODERS[ts](f)) for f in clip]
    ds = dataset(clip, ts)
    if table == "basic":
        ds.PixelData = encapsulate(encoded, has_bot=True)
    elif table == "extended":
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(encoded)
    elif table == "none":
        ds.PixelData = encapsulate(encoded, has_bot=False)
    else:  # 3 fragments per frame, no table: frames found by their codestream start markers
        ds.PixelData = encapsulate(encoded, fragments_per_frame=3, has_bot=False)
    ds["PixelData"].VR = "OB"
    path = save(ds, tmp_path / "c.dcm")
    with open_source(path) as src:
        assert src.encapsulated
        assert np.array_equal(src.read(0, 6), clip)
        assert np.array_equal(src.read(3, 5), clip[3:5]) and np.array_equal(src.read(5, 6), clip[5:])
        padded = [e + b"\0" * (len(e) % 2) for e in encoded]  # fragments have even lengths
        assert [bytes(c) for c in src.codestreams(1, 3)] == padded[1:3]


def test_8bit_monochrome1_and_12_bits_stored(tmp_path):
    rng = np.random.default_rng(3)
    eight = rng.integers(0, 256, (4, 16, 18), dtype=np.uint8)
    ds = dataset(eight, "1.2.840.10008.1.2.1")
    ds.PixelData = eight.tobytes()
    with open_source(save(ds, tmp_path / "b.dcm")) as src:
        assert src.bit_depth == 8 and src.read(0, 4).dtype == np.uint16
        assert np.array_equal(src.read(0, 4), eight)
    twelve = rng.integers(0, 4096, (3, 16, 18), dtype=np.uint16)
    ds = dataset(twelve, "1.2.840.10008.1.2.1", BitsStored=12, HighBit=11, PhotometricInterpretation="MONOCHROME1")
    ds.PixelData = (twelve | 0xF000).tobytes()  # garbage in the unused high bits is cleared
    with open_source(save(ds, tmp_path / "m1.dcm")) as src:
        assert np.array_equal(src.read(0, 3), 4095 - twelve)  # MONOCHROME1: bright = low values


def test_frame_rate_and_times_from_the_standard_attributes(tmp_path, clip):
    ds = dataset(clip, "1.2.840.10008.1.2.1")
    del ds.FrameTime
    ds.FrameTimeVector = ["0", "33.3", "33.4", "50", "33.3", "16.6"]
    ds.FrameIncrementPointer = 0x00181065
    ds.PixelData = clip.tobytes()
    with open_source(save(ds, tmp_path / "ftv.dcm")) as src:
        assert np.allclose(src.frame_times(0, 6), np.cumsum([0, 33.3, 33.4, 50, 33.3, 16.6]) / 1000)
        assert src.fps == pytest.approx(5 / 0.1666)
    ds = dataset(clip, "1.2.840.10008.1.2.1")
    del ds.FrameTime
    ds.CineRate = 15
    ds.PixelData = clip.tobytes()
    with open_source(save(ds, tmp_path / "cine.dcm")) as src:
        assert src.fps == 15.0 and np.allclose(src.frame_times(0, 3), [0, 1 / 15, 2 / 15])
    ds = dataset(clip, "1.2.840.10008.1.2.1")
    del ds.FrameTime
    ds.PixelData = clip.tobytes()
    with open_source(save(ds, tmp_path / "none.dcm"), fps=12.5) as src:
        assert src.fps == 12.5


def test_a_dicom_file_without_suffix_is_recognised(tmp_path, clip):
    ds = dataset(clip, "1.2.840.10008.1.2.1")
    ds.PixelData = clip.tobytes()
    path = save(ds, tmp_path / "IM000001")
    with open_source(path) as src:
        assert isinstance(src, DicomSource) and np.array_equal(src.read(0, 2), clip[:2])


def _errors(tmp_path, clip) -> dict[str, str]:
    """One bad file per problem -> the SourceError message each raises (at open or at read)."""
    out = {}

    def expect(name, ds_or_bytes, read=(0, 1)):
        path = tmp_path / f"{name}.dcm"
        if isinstance(ds_or_bytes, bytes):
            path.write_bytes(ds_or_bytes)
        else:
            save(ds_or_bytes, path)
        with pytest.raises(SourceError) as e:  # noqa: PT012 - open or read, whichever notices
            with open_source(path) as src:
                src.read(*read)
        out[name] = str(e.value)

    rgb = dataset(clip, "1.2.840.10008.1.2.1", SamplesPerPixel=3, PhotometricInterpretation="RGB",
                  PlanarConfiguration=0, NumberOfFrames=2)
    rgb.PixelData = clip[:2].tobytes() * 3
    expect("colour", rgb)
    signed = dataset(clip, "1.2.840.10008.1.2.1", PixelRepresentation=1)
    signed.PixelData = clip.tobytes()
    expect("signed", signed)
    video = dataset(clip, "1.2.840.10008.1.2.4.102")  # MPEG-4 AVC/H.264
    video.PixelData = encapsulate([b"\x00\x00\x00\x01" * 10])
    expect("h264", video)
    expect("garbage", b"not a dicom file at all\n" * 20)
    ok = dataset(clip, "1.2.840.10008.1.2.4.201")
    encoded = [bytes(imagecodecs.htj2k_encode(f, reversible=True)) for f in clip]
    ok.PixelData, ok.ExtendedOffsetTable, ok.ExtendedOffsetTableLengths = encapsulate_extended(encoded)
    ok["PixelData"].VR = "OB"
    good = tmp_path / "good.dcm"
    save(ok, good)
    data = good.read_bytes()
    expect("truncated", data[: len(data) - len(encoded[-1]) // 2])
    broken = bytearray(data)
    at = data.index(encoded[2]) + 40
    broken[at : at + 200] = bytes(200)
    expect("corrupt_frame", bytes(broken), read=(2, 3))
    native = dataset(clip, "1.2.840.10008.1.2.1")
    native.PixelData = clip.tobytes()
    save(native, good)
    expect("truncated_native", good.read_bytes()[:-100])
    return out


def test_bad_files_raise_one_source_error_without_identifiers(tmp_path, clip, caplog):
    caplog.set_level(logging.DEBUG)
    msgs = _errors(tmp_path, clip)
    assert "colour" in msgs["colour"] and "signed" in msgs["signed"]
    assert "not supported" in msgs["h264"] and "1.2.840.10008.1.2.4.102" in msgs["h264"]
    assert "not a DICOM file" in msgs["garbage"]
    assert "truncated" in msgs["truncated"] and "truncated" in msgs["truncated_native"]
    assert "frame 2" in msgs["corrupt_frame"]
    for text in [*msgs.values(), caplog.text]:
        assert "\n" not in text.strip() or text is caplog.text
        assert PATIENT_NAME.split("^")[0] not in text and PATIENT_ID not in text and "19700101" not in text


def test_a_corrupt_frame_spoils_only_its_own_window(tmp_path, clip):
    """Frame-exact access: windows around a damaged frame read (they never touch its bytes)."""
    encoded = [bytes(imagecodecs.htj2k_encode(f, reversible=True)) for f in clip]
    ds = dataset(clip, "1.2.840.10008.1.2.4.201")
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(encoded)
    ds["PixelData"].VR = "OB"
    path = save(ds, tmp_path / "v.dcm")
    data = bytearray(open(path, "rb").read())
    at = data.index(encoded[3])
    data[at : at + len(encoded[3])] = b"\xff" * len(encoded[3])
    open(path, "wb").write(bytes(data))
    with open_source(path) as src:
        assert np.array_equal(src.read(0, 3), clip[:3]) and np.array_equal(src.read(4, 6), clip[4:])
        with pytest.raises(SourceError, match="frame 3"):
            src.read(2, 5)
    assert repr(src).count(PATIENT_ID) == 0


def test_publish_streams_a_dicom_video(tmp_path, clip):
    from semiostream.bus.publisher import source_frames

    ds = dataset(clip, "1.2.840.10008.1.2.4.201")
    ds.PixelData = encapsulate([bytes(imagecodecs.htj2k_encode(f, reversible=True)) for f in clip])
    ds["PixelData"].VR = "OB"
    frames = list(source_frames(save(ds, tmp_path / "pub.dcm"), chunk=4))
    assert len(frames) == 6 and np.array_equal(np.stack(frames), clip)
