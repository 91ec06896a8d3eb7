"""``semiostream convert``: re-encode any readable IR source losslessly, as HTJ2K DICOM (``.dcm``) or FFV1
16-bit Matroska (``.mkv``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semiostream.core.errors import UserError
from semiostream.core.progress import task_progress

ORDER = 16
OUTPUTS = {".dcm": "HTJ2K Lossless DICOM", ".mkv": "FFV1 Matroska"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an IR recording to a lossless archive format (HTJ2K DICOM .dcm, or FFV1 .mkv)",
        description=(
            "Reads an IR source (Azure Kinect .mkv, .npy array, folder of 16-bit PNG/TIFF frames, FFV1 .mkv, "
            "DICOM, or ordinary 8-bit video) and writes its frames, bit for bit, by the suffix of DST: "
            ".dcm = a multi-frame DICOM file with the HTJ2K Lossless transfer syntax, one codestream per frame "
            "and an offset table (decodes 8-13x faster than FFV1 on a CPU core, see bench/RESULTS.md, and "
            "natively on NVIDIA GPUs; every frame is decoded again and compared before the file is kept, "
            "unless --no-verify; a CRC-32 of every frame is stored with it and checked whenever it is read); "
            ".mkv = lossless FFV1 in Matroska. Nothing is invented: the bit depth and Bits Stored, the frame "
            "rate and capture times are kept as the source states them; a source that stores no rate (.npy, "
            "image folders) gets the --fps given, else a .dcm holds no frame rate and a .mkv is tagged "
            "SEMIOSTREAM_RATE=unknown (Matroska needs timestamps: they step at 30 frames/s, and readers report "
            "that rate as assumed, not stored). A DICOM source's patient, "
            "study and series attributes are kept in a .dcm copy. Colour video is refused."
        ),
    )
    p.add_argument("src", type=Path, help="the recording to convert (file or folder of frames)")
    p.add_argument("dst", type=Path, help="output file: .dcm (HTJ2K DICOM) or .mkv (FFV1)")
    p.add_argument(
        "--stream",
        choices=("ir", "depth"),
        default="ir",
        help="for Azure Kinect recordings: the IR image (default) or the depth map",
    )
    p.add_argument("--fps", type=float,
                   help="frame rate of a source that stores none (.npy, image folders); without it a .dcm copy "
                        "states no rate (readers then assume 30 and say so)")
    p.add_argument("--no-verify", action="store_true",
                   help=".dcm: skip decoding every frame again to prove the copy bit-exact (faster)")
    p.add_argument("--force", action="store_true", help="overwrite DST if it exists")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from semiostream.sources.readers import SourceError, open_source
    from semiostream.sources.write_dicom import convert_to_htj2k
    from semiostream.sources.writers import convert_source

    suffix = args.dst.suffix.lower()
    if suffix not in OUTPUTS:
        raise UserError(f"{args.dst}: the output must be a .dcm (HTJ2K DICOM) or .mkv (FFV1) file")
    if args.dst.exists() and not args.force:
        raise UserError(f"{args.dst} exists; pass --force to overwrite it")
    if args.dst.resolve() == args.src.resolve():
        raise UserError("source and destination are the same file")
    if args.fps is not None and args.fps <= 0:
        raise UserError(f"--fps must be positive, got {args.fps:g}")
    from semiostream.sources.input_kind import path_kind
    from semiostream.sources.write_dicom import LosslessError

    kind = path_kind(args.src)
    if kind is not None and kind.kind.endswith("colour"):
        raise UserError(f"{args.src}: is colour video ({kind.detail}); convert archives grayscale IR recordings "
                        "and would keep only its brightness: pass the IR (grayscale) recording")
    try:
        src = open_source(args.src, stream=args.stream, fps=args.fps)
        with src:
            if getattr(src, "fps_from", "file") == "assumed":
                what = f"none is written to {args.dst.name}" if suffix == ".dcm" else (
                    f"{args.dst.name} is tagged SEMIOSTREAM_RATE=unknown and its timestamps step at {src.fps:g} "
                    "frames/s, which readers report as an assumed rate")
                print(f"note: {args.src.name} stores no frame rate: {what} (pass --fps RATE to state it)",
                      file=sys.stderr)
            with task_progress(f"converting {args.src.name} to {OUTPUTS[suffix]}", src.num_frames) as advance:
                if suffix == ".dcm":
                    convert_to_htj2k(src, args.dst, verify=not args.no_verify, progress=advance)
                else:
                    convert_source(src, args.dst, progress=advance)
    except (SourceError, LosslessError) as e:
        raise UserError(str(e)) from e
    print(args.dst)
    return 0
