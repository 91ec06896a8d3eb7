"""``semiostream score INPUTS... --bundle B --out results.parquet``: offline (re)scoring of recorded video.

Output tables (schemas in :mod:`semiostream.archive.schema`): ``--out`` holds one row per window
(input_id, path, stream, window, first_frame, last_frame, t_first, t_last, p_tle); ``<out stem>.videos.<suffix>``
beside it holds one row per input (aggregated p_tle, label, windows, error, ...). Resumable: the work folder
``<out>.parts/`` keeps one atomic chunk per finished input; run the same command again after a kill and
every row is in the output exactly once. Exit status: 0 all inputs scored, 2 user error (nothing scored),
2 + N when N inputs failed (N capped at 100).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from semiostream.core.batching import SCORER_MAX_BATCH
from semiostream.core.decision import DECISION_THRESHOLD
from semiostream.core.errors import UserError

from ..archive.schema import INPUT_COLUMNS, WINDOW_COLUMNS, describe

ORDER = 45

DESCRIPTION = """\
Score recorded IR video with a model bundle, e.g. every archived seizure again after a model update.
INPUTS are video files, folders (searched recursively for every supported format, including frame folders:
at least 9 numbered PNG/TIFF frames and no videos beside them; other images, such as previews beside
recordings, are skipped and named in the summary) and manifests (.csv/.parquet with path, patient_id,
seizure_id, label and optional onset, offset, roi, stream, fps; each row's onset..offset segment is scored).

Each input is cut into the bundle's windows, defined in time: spec.window frames at the bundle's rate (60 at
30 fps = 2 s), non-overlapping unless --hop, a leftover of at least spec.min_frames kept. A video at another
rate (6, 25, 60 fps, variable) is resampled to the bundle's on its own timestamps, one below a sixth of it
(5 fps) is refused; the inputs table records its fps, where that came from (file, given, assumed) and the
rate used. Each window gets p(TLE), and each input gets the mean p(TLE) and a label. The model learnt seizures
only, so the label is a class decision only for a manifest's seizure (in_segment true): a plain file or folder
is scored whole, with no seizure segment, and the summary says that its p(TLE) and label are no decision.
Decoding threads overlap inference and windows of many videos share batches; --ray runs the same job on a
Ray cluster (Ray Data actors holding one Scorer each: one per GPU, or one per --cpus-per-actor cores).
With --ray, every node must see the videos and the bundle at the same absolute paths (shared file system;
checked on each node first); actors that no node can hold are refused before anything starts, and a run
with no window completed for --ray-stall-s seconds stops with the reason (status 2; finished inputs kept,
the same command resumes).

Only regular files and folders of frames are opened: a FIFO, device, socket or symbolic link loop (also
behind a link with a video suffix) becomes an error row without being read, and so does a video whose
frames are smaller than 32 pixels a side (what the I3D features can use) or larger than 4096x4096. The
bundle is verified first (every weight file listed in its bundle.json, inside the bundle, with its sha256;
the bundle id recomputed from the content); a bundle that fails is a user error.

Resumable and exactly-once: finished inputs are kept as atomic chunks in <out>.parts/ with a completion
manifest; kill the run at any moment and run the same command again: nothing is lost or duplicated. An
input is scored again when its file changes (size, mtime, then sha256 of its content) or when the bundle,
--backend, --hop, --detector, --threshold or --preprocessing change. Failed inputs (unreadable, corrupt,
too short) become rows with an error; they are not retried on resume unless --retry-errors (or unless the
file changed).

Each input's row says what a reader needs to judge its result: its kind of picture (16-bit gray, what the
model is for; 8-bit gray; 8-bit colour, scored through its luma), its frame rate, whether the detector found
a person (with --detector), and the bundle's training data (synthetic or not, from its bundle.json); the
summary printed at the end names them, and --report shows them in every report.

Exit status: 0 = every input scored; 2 = user error (bad arguments, nothing scored);
2 + N = N inputs failed (N capped at 100, so at most 102).
"""


def _epilog() -> str:
    return (f"windows table (--out), one row per window, sorted by input_id, window:\n{describe(WINDOW_COLUMNS)}\n\n"
            f"inputs table (<out stem>.videos.<suffix>), one row per input, sorted by input_id:\n"
            f"{describe(INPUT_COLUMNS)}\n\nCSV: a null is an empty cell. Parquet metadata: bundle_id, backend, labels.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score archived videos / manifests with a bundle (resumable; --ray to scale out)",
                       description=DESCRIPTION, epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders or manifests (.csv/.parquet)")
    p.add_argument("--bundle", type=Path, required=True, metavar="DIR", help="model bundle directory")
    p.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="windows table, .parquet or .csv (the inputs table goes beside it as .videos.<suffix>)")
    p.add_argument("--backend", help="engine backend, e.g. torch-cpu-fp32, tensorrt-fp16 (default: the fastest "
                                     "verified one on each machine)")
    p.add_argument("--stream", choices=("ir", "depth"), default="ir",
                   help="stream of Azure Kinect recordings for plain files and folders (default ir)")
    p.add_argument("--fps", type=float, help="frame rate of inputs that store none (.npy files, frame folders, "
                   "some AVI and DICOM files); default: the bundle's rate, assumed")
    p.add_argument("--hop", type=int, help="frames between window starts (default: the bundle's window, "
                                           "non-overlapping as in the paper)")
    p.add_argument("--detector", choices=("full", "yolox", "maskrcnn"), default="full",
                   help="crop of inputs without a manifest roi: full frame (default) or a person+bed detector")
    p.add_argument("--detector-weights", type=Path, metavar="PATH", help="detector weights (yolox: an .onnx file)")
    p.add_argument("--threshold", type=float, default=DECISION_THRESHOLD,
                   help=f"label TLE when mean p(TLE) >= this (default {DECISION_THRESHOLD:g})")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    p.add_argument("--max-batch", type=int, default=SCORER_MAX_BATCH,
                   help=f"windows per inference batch (default {SCORER_MAX_BATCH})")
    p.add_argument("--max-wait-ms", type=float, default=20.0,
                   help="longest wait for a batch to fill (default 20 ms)")
    p.add_argument("--no-compile", dest="compile", action="store_const", const=False, default=None,
                   help="torch backends: skip torch.compile (starts faster, scores a little slower)")
    p.add_argument("--preprocessing", choices=("auto", "dali", "torch", "reference"), default="auto",
                   help="window preprocessing: DALI when installed, else torch on the GPU (auto, default), "
                        "dali, torch (pinned host buffers, the reference's math on the device), or the "
                        "plain-torch reference")
    p.add_argument("--retry-errors", action="store_true", help="score inputs that failed in an earlier run again")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray (pip install 'semiostream[ray]'): a cluster ADDRESS (e.g. auto, "
                        "ray://head:10001), or no ADDRESS for a local instance; put it after the INPUTS or "
                        "write --ray=ADDRESS")
    p.add_argument("--actors", type=int, help="Ray: scorer actors (default: one per GPU, else as many "
                                              "--cpus-per-actor actors as the nodes hold)")
    p.add_argument("--cpus-per-actor", type=int,
                   help="Ray on CPUs: cores per actor, all on one node (default min(4, CPUs of the largest node)); "
                        "actors that no node can hold are refused before anything starts")
    p.add_argument("--ray-stall-s", type=float, default=600.0, metavar="S",
                   help="Ray: stop, saying why, when no window completes for S seconds (default 600; the first "
                        "one included); finished inputs are kept, so the same command resumes")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="also write an event review report (HTML + PNG, opens from disk) per scored input into DIR, "
                        "with DIR/index.html listing them (kept on resume when unchanged); written on this machine "
                        "after scoring, reading each input's first frame and two most decisive windows again")
    p.add_argument("--no-saliency", dest="saliency", action="store_false",
                   help="--report without the movement maps of the decisive windows (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ..archive.run import ScoreConfig, score_archive

    if not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold {args.threshold} must lie in [0, 1]")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise UserError(f"--fps {args.fps} must be a positive number of frames per second")
    for name in ("actors", "cpus_per_actor"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.ray is None and (args.actors or args.cpus_per_actor):
        raise UserError("--actors and --cpus-per-actor apply to --ray runs only")
    if not args.ray_stall_s > 0:
        raise UserError(f"--ray-stall-s {args.ray_stall_s} must be positive")
    cfg = ScoreConfig(
        inputs=args.inputs, bundle=args.bundle, out=args.out, backend=args.backend, stream=args.stream, fps=args.fps,
        hop=args.hop, detector=args.detector, detector_weights=args.detector_weights, threshold=args.threshold,
        workers=args.workers, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, compile=args.compile,
        preprocessing=args.preprocessing, retry_errors=args.retry_errors, ray=args.ray, actors=args.actors,
        cpus_per_actor=args.cpus_per_actor, ray_stall_s=args.ray_stall_s,
        show_progress=not args.quiet,
    )
    summary = score_archive(cfg)
    print(summary.text())
    if args.report is not None:
        _reports(args, cfg)
    return summary.exit_status()


def _reports(args: argparse.Namespace, cfg) -> None:
    from ..archive.run import _detector
    from ..models.bundle import check_bundle
    from ..review.archive import write_archive_reports

    detector, _ = _detector(cfg, check_bundle(args.bundle)[1])
    say = None if args.quiet else print
    index = write_archive_reports(args.out, args.bundle, args.report, threshold=args.threshold,
                                  saliency=args.saliency, detector=detector, fps=args.fps, hop=args.hop,
                                  progress=say)
    print(f"reports: {index}")
