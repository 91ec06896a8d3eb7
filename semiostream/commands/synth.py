"""``semiostream synth``: write SYNTHETIC 16-bit IR seizure clips and a manifest (demos and tests only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semiostream.core.errors import UserError

ORDER = 15

DESCRIPTION = """\
Writes SYNTHETIC infrared videos of a person in a hospital bed, NOT patient recordings, for demos,
tutorials and tests of the whole pipeline when no clinical data are at hand.

Each synthetic patient gets their own camera and bed placement, body size and sensor noise; each clip is
16-bit IR (Azure-Kinect-like intensities, noise and dropouts) with quiet frames before and after one
caricatured seizure:
  FLE-like  short, abrupt, large hypermotor movements of limbs and trunk;
  TLE-like  longer, slower, small automatisms: fumbling hands, chewing, slow head turning.
Patients alternate between the two labels. A model trained on these clips learns these caricatures,
nothing about real seizures.

Output: one file (mkv, npy) or folder (png, tiff) per seizure, manifest.csv with the columns
path, patient_id, seizure_id, label, fps, onset, offset (paths relative to OUT, onset/offset in seconds)
and README.txt saying the data are synthetic. The same --seed always gives the same files.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write SYNTHETIC IR seizure clips + manifest.csv (demos and tests; not patient data)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=Path, help="output folder (created if needed)")
    p.add_argument("--patients", type=int, default=4, help="number of synthetic patients (default 4)")
    p.add_argument("--seizures-per-patient", type=int, default=2, help="clips per patient (default 2)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each clip in seconds (default 10)")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("mkv", "npy", "png", "tiff"),
        default="mkv",
        help="mkv = lossless FFV1 16-bit video (default, recommended); npy = numpy array; "
        "png/tiff = a folder of 16-bit frames per clip",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same data (default 0)")
    p.add_argument("--width", type=int, default=320, help="frame width in pixels (default 320)")
    p.add_argument("--height", type=int, default=240, help="frame height in pixels (default 240)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.patients < 1 or args.seizures_per_patient < 1:
        raise UserError("--patients and --seizures-per-patient must be at least 1")
    if not 0.5 <= args.seconds <= 3600:
        raise UserError(f"--seconds {args.seconds} is out of range; give a clip length between 0.5 and 3600")
    if args.width < 64 or args.height < 48 or args.fps <= 0:
        raise UserError("frames must be at least 64x48 pixels and --fps positive")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"{args.out} exists and is not a folder; choose another output folder")
    if (args.out / "manifest.csv").exists():
        raise UserError(f"{args.out} already holds a manifest.csv; choose an empty folder or delete it")

    from semiostream.core.progress import task_progress
    from semiostream.sources.synth import SYNTHETIC_NOTE, SynthConfig, generate_dataset

    cfg = SynthConfig(width=args.width, height=args.height, fps=args.fps, seconds=args.seconds)
    total = args.patients * args.seizures_per_patient
    with task_progress(f"synthesising {total} clips", total) as advance:
        manifest = generate_dataset(
            args.out,
            args.patients,
            args.seizures_per_patient,
            cfg,
            args.fmt,
            args.seed,
            progress=lambda done, _total: advance(done),
        )
    print(SYNTHETIC_NOTE, file=sys.stderr)
    print(manifest)
    return 0
