"""A damaged JPEG 2000 / HTJ2K header never hangs a reader: OpenJPH (imagecodecs 2026.3.6) loops forever (> 60 s,
``resilient=True`` or not) on a codestream whose SIZ image offset exceeds its width, which one flipped byte
(offset 16) makes; OpenJPEG says "failed to read the header". Every codestream is checked first
(:mod:`semiostream.sources.j2k_header`), so an HTJ2K DICOM file from another writer (no checksum element)
with such a frame is an error row naming the frame, in seconds. Real third-party JPEG 2000 files
(``pydicom-data``, including a JP2-wrapped one) pass the check and still read as pydicom reads them.

The full fuzzing figures come from ``stress_htj2k.py header 2000 [raw]`` in this folder.
"""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from independent_decode import pydicom_frames
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from stress_htj2k import header_trials

from semiostream.sources import frame_checksum, htj2k_codec
from semiostream.sources.j2k_header import CodestreamError, check
from semiostream.sources.read_dicom import DicomSource
from semiostream.sources.readers import open_source
from semiostream.sources.write_dicom import write_htj2k_dicom

#: seconds a read or a scoring run of a few small frames may take here before it counts as a hang
BOUND_S = 240


def _hanging(codestream: bytes) -> bytes:
    """One flipped byte: SIZ's XOsiz (bytes 16-19) 0 -> 0x60000000, beyond the image width."""
    bad = bytearray(codestream)
    bad[16] ^= 0x60
    return bytes(bad)


def _foreign(path, frames, damaged: dict[int, bytes]):
    """An HTJ2K DICOM file as another writer makes it: no checksum element, no Extended Offset Table;
    frame ``i`` replaced by ``damaged[i]``."""
    ours = write_htj2k_dicom(path.with_name("ours.dcm"), frames, 15.0)
    ds = pydicom.dcmread(ours)
    del ds[frame_checksum.checksum_tag(ds)]
    del ds[frame_checksum.CREATOR_TAGS[0]]
    with DicomSource(ours) as src:
        streams = src.codestreams(0, len(frames))
    ds.PixelData = encapsulate([damaged.get(i, s) for i, s in enumerate(streams)])
    for key in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        del ds[key]
    ds.save_as(path, enforce_file_format=True)
    return path


def test_the_check_rejects_what_makes_openjph_hang_or_overallocate_and_passes_good_codestreams():
    frame = np.random.default_rng(0).integers(0, 65536, (424, 512), dtype=np.uint16)
    good = htj2k_codec.encode(frame)
    check(good, (424, 512))
    with pytest.raises(CodestreamError, match="SIZ geometry is impossible"):
        check(_hanging(good))
    wide = bytearray(good)
    wide[8:12] = struct.pack(">I", 1 << 30)  # Xsiz: a 2^30-wide image (an allocation of gigabytes)
    with pytest.raises(CodestreamError, match="SIZ says 1073741824x424, the frame is 512x424"):
        check(bytes(wide), (424, 512))
    with pytest.raises(CodestreamError, match="tile-part at byte .* is malformed"):
        check(good[: len(good) // 2], (424, 512))  # truncated inside the tile-part
    with pytest.raises(CodestreamError, match="does not start with the SOC and SIZ"):
        check(b"\x00" * 100)
    with pytest.raises(htj2k_codec.Htj2kDecodeError, match="SIZ geometry is impossible"):
        htj2k_codec.decode(_hanging(good))  # raised before OpenJPH sees it, in microseconds
    assert np.array_equal(htj2k_codec.decode(good, (424, 512)), frame)


def test_damaged_headers_never_hang_the_decoder():
    """The lean version of ``stress_htj2k.py header 2000``: without the check (``raw``), some of these 200
    trials hang OpenJPH (seed 149 in every run here)."""
    counts = header_trials(200)
    assert counts["trials"] == 200 and counts["hang"] == 0 and counts["crash"] == 0, counts


@pytest.mark.parametrize("name", ["emri_small_jpeg_2k_lossless.dcm", "MR_small_jp2klossless.dcm", "US1_J2KR.dcm", "RG1_J2KR.dcm", "693_J2KI.dcm",
                                  "GDCMJ2K_TextGBR.dcm"])
def test_real_jpeg2000_files_pass_the_check(name):
    ds = pydicom.dcmread(get_testdata_file(name))
    n = int(ds.get("NumberOfFrames", 1) or 1)
    for data in generate_frames(ds.PixelData, number_of_frames=n):
        check(data, (int(ds.Rows), int(ds.Columns)))


def test_a_real_grayscale_jpeg2000_file_still_reads_as_pydicom_reads_it():
    path = get_testdata_file("emri_small_jpeg_2k_lossless.dcm")  # 10 frames, 64x64, unsigned
    with open_source(path) as src:
        assert np.array_equal(src.read(0, src.num_frames), pydicom_frames(path).astype(np.uint16))


def test_a_header_openjph_hangs_on_is_an_error_naming_the_frame_within_seconds(tmp_path):
    frames = np.random.default_rng(2).integers(0, 4096, (6, 72, 96), dtype=np.uint16)
    bad = _hanging(htj2k_codec.encode(frames[4]))
    path = _foreign(tmp_path / "other.dcm", frames, {4: bad})
    probe = ("import sys\nfrom semiostream.sources.readers import open_source\n"
             "from semiostream.sources.source import SourceError\n"
             "src = open_source(sys.argv[1])\nassert not src.header.checksummed\n"
             "print(src.read(0, 4).sum())\n"
             "try:\n    src.read(0, 6)\nexcept SourceError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=BOUND_S)
    assert r.returncode == 0, r.stderr
    total, err = r.stdout.strip().splitlines()
    assert int(total) == int(frames[:4].sum())  # the frames before it read
    assert "other.dcm: frame 4 is not a valid JPEG 2000 codestream (SIZ geometry is impossible" in err


@pytest.mark.slow
def test_score_gives_an_error_row_for_it_and_scores_the_good_file(tmp_path, kinetics_ckpt):
    from random_bundle import make_random_bundle

    from semiostream.archive.output import inputs_path, read_table
    from semiostream.core.preprocess_spec import PreprocessSpec

    bundle = make_random_bundle(tmp_path / "bundle", kinetics_ckpt, 3, PreprocessSpec(window=16, fps=15, min_frames=9))
    frames = np.random.default_rng(3).integers(0, 4096, (40, 72, 96), dtype=np.uint16)
    (tmp_path / "in").mkdir()
    _foreign(tmp_path / "in" / "good.dcm", frames, {})
    _foreign(tmp_path / "in" / "bad.dcm", frames, {20: _hanging(htj2k_codec.encode(frames[20]))})
    (tmp_path / "in" / "ours.dcm").unlink()
    out = tmp_path / "out.parquet"
    r = subprocess.run([sys.executable, "-m", "semiostream.cli", "score", str(tmp_path / "in"), "--bundle",
                        str(bundle), "--out", str(out), "--backend", "torch-cpu-fp32", "--no-compile",
                        "--preprocessing", "reference", "--quiet"], capture_output=True, text=True,
                       timeout=BOUND_S)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    rows = {row["input_id"].rsplit("/", 1)[-1]: row for row in read_table(inputs_path(out))}
    assert rows["good.dcm"]["error"] in (None, "") and rows["good.dcm"]["windows"] >= 1
    assert "frame 20 is not a valid JPEG 2000 codestream" in rows["bad.dcm"]["error"]
