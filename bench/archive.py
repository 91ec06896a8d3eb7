"""Archive benchmark: decode speed and `semiostream score` windows/s per archive format, next to the engines
alone, side by side in one run.

1. A SYNTHETIC archive (not patient data): ``--clips`` clips of ``--seconds`` at ``--width`` x ``--height``
   uint16 (:func:`~semiostream.sources.synth.generate_dataset`), written as lossless FFV1 ``.mkv`` and
   converted, bit for bit, to HTJ2K Lossless DICOM ``.dcm`` (`semiostream convert`) and to uncompressed
   ``.npy`` (memory-mapped: the no-decoding floor).
2. **Decode**: ms per frame of each format on the same frames, one core (the codec alone: PyAV FFV1
   decoding vs imagecodecs HTJ2K on the file's codestreams, one after the other) and as
   ``Source.read(window)`` does it (HTJ2K frames of a window decoded by one thread per core). Also on a
   real Azure Kinect IR frame with sensor-like noise (60 frames), and the raw Kinect recording's own frame
   read (``K4aSource``: byte swap only).
3. **Scoring**: ``semiostream score FOLDER --bundle B`` for each format through
   :func:`semiostream.archive.run.score_archive` (the command's code path), fresh output each time, and
   the same bundle and backend on as many in-memory windows (:meth:`Scorer.score_windows`: no decoding,
   no files), so each ratio says what the archive costs on top of the engines.
4. **Ray** (``--ray``): the FFV1 folder again through ``score --ray`` on a real multi-node cluster: by
   default a loopback one started here (``--ray-nodes`` nodes of ``--ray-cpus`` CPUs each,
   :class:`~semiostream.bench.ray_cluster.LoopbackCluster`), else the cluster at ADDRESS; windows/s next
   to the local runner's on the same folder, and the windows each node scored.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from semiostream.core.batching import SCORER_MAX_BATCH

from . import common

NAME = "archive"
FORMATS = ("ffv1", "htj2k", "npy")
LABELS = {"ffv1": "FFV1 .mkv", "htj2k": "HTJ2K DICOM .dcm", "npy": "uncompressed .npy"}
KINECT = Path(__file__).resolve().parents[1].parent / "shared" / "assets"


def make_archive(folder: Path, clips: int, seconds: float, width: int, height: int) -> Path:
    """Synthetic FFV1 clips and their ``manifest.csv`` in ``folder``; returns the manifest's path."""
    from semiostream.sources.synth import SynthConfig, generate_dataset

    patients = max(1, (clips + 1) // 2)
    return generate_dataset(folder, patients=patients, seizures_per_patient=2 if clips > 1 else 1,
                            cfg=SynthConfig(width=width, height=height, fps=30.0, seconds=seconds), fmt="mkv", seed=0)


def make_formats(manifest: Path, work: Path) -> dict[str, Path]:
    """The FFV1 clips next to ``manifest``, copied losslessly as HTJ2K DICOM and as ``.npy`` (one folder each)."""
    from semiostream.sources.readers import open_source
    from semiostream.sources.write_dicom import convert_to_htj2k

    folders = {"ffv1": work / "ffv1", "htj2k": work / "htj2k", "npy": work / "npy"}
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    for mkv in sorted(manifest.parent.rglob("*.mkv")):
        shutil.copy2(mkv, folders["ffv1"] / mkv.name)
        with open_source(mkv) as src:
            convert_to_htj2k(src, folders["htj2k"] / f"{mkv.stem}.dcm")
            np.save(folders["npy"] / f"{mkv.stem}.npy", src.read(0, src.num_frames))
    return folders


def _kinect_like(frames: int = 60) -> np.ndarray | None:
    """``[frames, 576, 640]`` uint16: the real Kinect IR frame with sensor-like (shot) noise, or None."""
    p = KINECT / "pyk4a_ir_frame0_uint16.npy"
    if not p.is_file():
        return None
    ir = np.load(p).astype(np.float64)
    rng = np.random.default_rng(0)
    noisy = ir[None] + rng.normal(0.0, 1.0, (frames, *ir.shape)) * np.sqrt(ir + 4.0)
    return np.clip(np.rint(noisy), 0, 65535).astype(np.uint16)


def _timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def decode_rates(ffv1: Path, dcm: Path, repeats: int = 3, window: int = 60) -> dict:
    """ms per frame decoding the same frames from FFV1 and HTJ2K: one core, and as ``Source.read`` does it."""
    import imagecodecs

    from semiostream.sources.readers import open_source

    with open_source(ffv1) as a, open_source(dcm) as b:
        n = min(a.num_frames, window)
        if not np.array_equal(a.read(0, n), b.read(0, n)):
            raise RuntimeError(f"{dcm} does not hold the frames of {ffv1}")
        streams = b.codestreams(0, n)
        ffv1_s = _timed(lambda: a.read(0, n), repeats)  # a seek + decode of the window each time
        one = _timed(lambda: [imagecodecs.htj2k_decode(c) for c in streams], repeats)
        read = _timed(lambda: b.read(0, n), repeats)
        size = f"{a.width}x{a.height}"
        comp = {"ffv1": ffv1.stat().st_size / a.num_frames, "htj2k": dcm.stat().st_size / b.num_frames}
    raw = 2 * a.width * a.height
    return {"frames": n, "size": size, "ffv1_ms": 1e3 * ffv1_s / n, "htj2k_one_core_ms": 1e3 * one / n,
            "htj2k_read_ms": 1e3 * read / n, "decode_threads": _threads(),
            "one_core_speedup": ffv1_s / one, "read_speedup": ffv1_s / read,
            "ratio_ffv1": raw / comp["ffv1"], "ratio_htj2k": raw / comp["htj2k"]}


def _threads() -> int:
    from semiostream.sources.read_dicom import decode_threads

    return decode_threads()


def kinect_decode(work: Path, repeats: int = 3) -> dict | None:
    """:func:`decode_rates` on the real Kinect IR frame with noise, and the raw recording's frame read."""
    from semiostream.sources.readers import open_source
    from semiostream.sources.write_dicom import write_htj2k_dicom
    from semiostream.sources.writers import write_ffv1

    frames = _kinect_like()
    if frames is None:
        return None
    work.mkdir(parents=True, exist_ok=True)
    res = decode_rates(write_ffv1(work / "k.mkv", frames, 30.0), write_htj2k_dicom(work / "k.dcm", frames, 30.0),
                       repeats)
    rec = KINECT / "pyk4a_recording.mkv"
    if rec.is_file():
        with open_source(rec) as src:
            res["raw_kinect_ms"] = 1e3 * _timed(lambda: [src.read(0, 1) for _ in range(20)], repeats) / 20
    return res


def score_runs(bundle_dir: Path, inputs: Path, work: Path, backend: str, repeats: int = 1, workers: int = 2,
               max_batch: int = SCORER_MAX_BATCH, compile: bool | None = None, ray: str | None = None) -> list[dict]:
    """``semiostream score INPUTS`` ``repeats`` times (fresh output each time): one summary dict per run.

    ``ray``: None = this machine, else ``score --ray`` at this address (the run's windows per node in
    ``per_node``)."""
    from semiostream.archive.output import read_table
    from semiostream.archive.run import ScoreConfig, score_archive

    runs = []
    for i in range(repeats):
        out = work / f"run{i}" / "windows.parquet"
        if out.parent.exists():
            shutil.rmtree(out.parent)
        summary = score_archive(ScoreConfig(inputs=[inputs], bundle=bundle_dir, out=out, backend=backend,
                                            workers=workers, max_batch=max_batch, show_progress=False,
                                            compile=compile if backend.startswith("torch-") else None, ray=ray))
        rows = read_table(summary.out)
        runs.append({"windows_scored": summary.windows_scored, "scoring_s": summary.scoring_s,
                     "windows_per_s": summary.windows_per_s, "steady_windows_per_s": summary.steady_windows_per_s,
                     "first_result_s": summary.first_result_s, "total_s": summary.total_s,
                     "inputs": summary.inputs, "failed": len(summary.failed), "window_rows": len(rows),
                     "batches": summary.batches, "largest_batch": summary.largest_batch,
                     "p_tle": [r["p_tle"] for r in sorted(rows, key=lambda r: (r["input_id"], r["window"]))]})
    return runs


class _PerNode(logging.Handler):
    """Keeps the Ray runner's "windows scored per node" line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "windows scored per node" in msg:
            self.lines.append(msg.split(": ", 2)[-1])


def ray_runs(bundle_dir: Path, folder: Path, work: Path, backend: str, address: str | None, nodes: int = 2,
             cpus: int = 1, repeats: int = 1, workers: int = 2, max_batch: int = SCORER_MAX_BATCH,
             compile: bool | None = None) -> dict:
    """:func:`score_runs` of ``folder`` with ``score --ray`` on the cluster at ``address``, or (None) on a
    :class:`~semiostream.bench.ray_cluster.LoopbackCluster` of ``nodes`` x ``cpus`` started and ended here."""
    from semiostream.archive import ray_runner

    from .ray_cluster import LoopbackCluster

    handler, logger = _PerNode(), logging.getLogger(ray_runner.__name__)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        if address:
            runs = score_runs(bundle_dir, folder, work, backend, repeats, workers, max_batch, compile, ray=address)
            what = f"cluster {address}"
        else:
            t0 = time.perf_counter()
            with LoopbackCluster(nodes, cpus) as cluster:
                start_s = time.perf_counter() - t0
                # this process is the cluster's driver: the same auth mode as its nodes
                saved = os.environ.get("RAY_AUTH_MODE")
                os.environ["RAY_AUTH_MODE"] = cluster.env["RAY_AUTH_MODE"]
                try:
                    runs = score_runs(bundle_dir, folder, work, backend, repeats, workers, max_batch, compile,
                                      ray=cluster.address)
                finally:
                    if saved is None:
                        os.environ.pop("RAY_AUTH_MODE", None)
                    else:
                        os.environ["RAY_AUTH_MODE"] = saved
            what = f"{nodes}-node loopback, {cpus} CPU each"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    for r, line in zip(runs, handler.lines, strict=False):
        r["per_node"] = line
    best = max(runs, key=lambda r: r["windows_per_s"])
    return {"cluster": what, "runs": runs, "windows_per_s": best["windows_per_s"],
            "steady_windows_per_s": best["steady_windows_per_s"],
            "cluster_start_s": None if address else start_s}


def engine_rate(bundle_dir: Path, window: np.ndarray, n: int, backend: str, repeats: int, max_batch: int,
                compile: bool | None) -> float:
    """windows/s of the Scorer alone on ``n`` in-memory copies of ``window`` (median of ``repeats``)."""
    from semiostream.engines.scorer import Scorer

    opts = {"compile": compile} if compile is not None and backend.startswith("torch-") else None
    with Scorer(bundle_dir, backend, max_batch=max_batch, engine_options=opts) as s:
        s.warmup()
        s.score_windows([window] * min(n, max_batch))
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            for k in range(0, n, max_batch):
                s.score_windows([window] * min(max_batch, n - k))
            times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def run(bundle_dir: Path, folders: dict[str, Path], work: Path, backend: str, repeats: int = 1, workers: int = 2,
        max_batch: int = SCORER_MAX_BATCH, compile: bool | None = None) -> dict:
    """Score every format's folder, then the engines alone; the formats' ratios to the engines."""
    from semiostream.sources.readers import open_source

    formats = {}
    for name, folder in folders.items():
        runs = score_runs(bundle_dir, folder, work / name, backend, repeats, workers, max_batch, compile)
        best = max(runs, key=lambda r: r["windows_per_s"])
        formats[name] = {"runs": runs, "windows_per_s": best["windows_per_s"],
                         "steady_windows_per_s": best["steady_windows_per_s"]}
    first = sorted(folders["ffv1"].glob("*.mkv"))[0]
    with open_source(first) as src:
        window = src.read(0, min(60, src.num_frames))
    n = max(r["windows_scored"] for f in formats.values() for r in f["runs"]) or 1
    engine_wps = engine_rate(bundle_dir, window, n, backend, repeats, max_batch, compile)
    for f in formats.values():
        f["vs_engine"] = f["windows_per_s"] / engine_wps if engine_wps else None
    p = {k: np.asarray(f["runs"][0]["p_tle"], np.float64) for k, f in formats.items()}
    same = {k: float(np.max(np.abs(v - p["ffv1"]))) if len(v) == len(p["ffv1"]) else None for k, v in p.items()}
    return {"formats": formats, "engine_windows_per_s": engine_wps, "engine_windows": n,
            "max_abs_p_tle_difference_vs_ffv1": same}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--clips", type=int, default=4, help="synthetic clips in the archive (default 4)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each clip (default 10 s = 5 windows)")
    ap.add_argument("--width", type=int, default=512, help="frame width (default 512)")
    ap.add_argument("--height", type=int, default=424, help="frame height (default 424)")
    ap.add_argument("--formats", default=",".join(FORMATS),
                    help=f"archive formats to score, comma-separated (default {','.join(FORMATS)})")
    ap.add_argument("--bundle", help="model bundle (default: Kinetics-400 I3D + random classifier, cached)")
    ap.add_argument("--ckpt", type=Path, help="I3D weights for the default bundle")
    ap.add_argument("--backend", help="engine backend (default: fastest verified; verified first if none is)")
    ap.add_argument("--workers", type=int, default=2, help="decode threads of `semiostream score` (default 2)")
    ap.add_argument("--max-batch", type=int, default=SCORER_MAX_BATCH,
                    help=f"windows per engine batch (default {SCORER_MAX_BATCH})")
    ap.add_argument("--no-compile", action="store_true", help="torch backends without torch.compile")
    ap.add_argument("--repeats", type=int, default=1, help="scoring runs per format (default 1; the best is reported)")
    ap.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                    help="also score the FFV1 folder with score --ray: on the cluster at ADDRESS, or with no ADDRESS "
                         "on a loopback cluster started here (--ray-nodes x --ray-cpus)")
    ap.add_argument("--ray-nodes", type=int, default=2, help="--ray loopback cluster: nodes (default 2)")
    ap.add_argument("--ray-cpus", type=int, default=1, help="--ray loopback cluster: CPUs per node (default 1)")
    ap.add_argument("--workdir", type=Path, help="where the archive and outputs go (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT, help="folder for JSON")


def run_from_args(args: argparse.Namespace, command: str | None = None) -> dict:
    from semiostream.core.errors import UserError
    from semiostream.engines.artifacts import bundle_dir

    from .latency import cached_bundle, fast_backend

    wanted = [f.strip() for f in args.formats.split(",") if f.strip()]
    if not wanted or any(f not in FORMATS for f in wanted) or "ffv1" not in wanted:
        raise UserError(f"--formats {args.formats!r}: choose from {', '.join(FORMATS)} (ffv1 included: the "
                        "decode comparison and the p(TLE) check are against it)")
    facts = common.machine_facts()
    bundle = cached_bundle(args.bundle, args.ckpt)  # fails now, not after the archive is written
    backend = fast_backend(bundle, args.backend)
    bdir = bundle_dir(bundle)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="semiostream-bench-archive-"))
    try:
        t0 = time.perf_counter()
        manifest = make_archive(work / "archive", args.clips, args.seconds, args.width, args.height)
        folders = {k: v for k, v in make_formats(manifest, work / "formats").items() if k in wanted}
        print(f"synthetic archive: {args.clips} clips x {args.seconds:g} s in {', '.join(wanted)} "
              f"({time.perf_counter() - t0:.1f} s to write) in {work}")
        first = sorted(folders["ffv1"].glob("*.mkv"))[0]
        decode = {"synthetic": decode_rates(first, work / "formats" / "htj2k" / f"{first.stem}.dcm")}
        kin = kinect_decode(work / "kinect")
        if kin is not None:
            decode["kinect_ir_noise"] = kin
        res = run(bdir, folders, work / "runs", backend, args.repeats, args.workers, args.max_batch,
                  compile=False if args.no_compile else None)
        if args.ray is not None:
            res["ray"] = ray_runs(bdir, folders["ffv1"], work / "runs" / "ray", backend, args.ray or None,
                                  args.ray_nodes, args.ray_cpus, args.repeats, args.workers, args.max_batch,
                                  compile=False if args.no_compile else None)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    res.update(benchmark=NAME, command=command or common.command_line(), machine=facts, decode=decode,
               loadavg_after=list(os.getloadavg()), backend=backend, clips=args.clips, clip_seconds=args.seconds,
               frame=[args.height, args.width], equivalent_command=(
                   f"semiostream score FOLDER --bundle {bdir} --out OUT.parquet --backend {backend} "
                   f"--workers {args.workers} --max-batch {args.max_batch}"))
    drows = []
    for what, d in decode.items():
        drows.append((f"{what} {d['size']}", f"{d['ffv1_ms']:.2f}", f"{d['htj2k_one_core_ms']:.2f}",
                      f"{d['htj2k_read_ms']:.2f}", f"{d['one_core_speedup']:.1f}x", f"{d['read_speedup']:.1f}x",
                      f"{d['ratio_ffv1']:.2f} / {d['ratio_htj2k']:.2f}",
                      f"{d['raw_kinect_ms']:.2f}" if "raw_kinect_ms" in d else "-"))
    res["decode_markdown"] = common.print_table(
        "decode, ms per frame (same frames)",
        ["frames", "FFV1 (PyAV)", "HTJ2K one core", f"HTJ2K read ({_threads()} threads)", "HTJ2K vs FFV1, one core",
         "HTJ2K read vs FFV1", "compression FFV1 / HTJ2K", "raw Kinect read"], drows)
    rows = []
    for name, f in res["formats"].items():
        for i, r in enumerate(f["runs"]):
            rows.append((f"score {LABELS[name]} (run {i + 1})", r["windows_scored"], f"{r['windows_per_s']:.2f}",
                         f"{r['steady_windows_per_s']:.2f}", f"{r['first_result_s']:.2f}", f"{r['total_s']:.2f}",
                         f"{r['windows_per_s'] / res['engine_windows_per_s']:.2f}x"))
    for i, r in enumerate(res.get("ray", {}).get("runs", [])):
        rows.append((f"score {LABELS['ffv1']} on Ray, {res['ray']['cluster']} (run {i + 1})", r["windows_scored"],
                     f"{r['windows_per_s']:.2f}", f"{r['steady_windows_per_s']:.2f}", f"{r['first_result_s']:.2f}",
                     f"{r['total_s']:.2f}", f"{r['windows_per_s'] / res['engine_windows_per_s']:.2f}x"))
    rows.append(("Scorer.score_windows, in-memory windows", res["engine_windows"],
                 f"{res['engine_windows_per_s']:.2f}", "-", "-", "-", "1.00x"))
    res["markdown"] = common.print_table(
        f"archive scoring, {backend}, {args.clips} clips x {args.seconds:g} s of {args.width}x{args.height}",
        ["what", "windows", "windows/s", "steady windows/s", "start-up s", "total s", "vs engines"], rows)
    for name, f in res["formats"].items():
        print(f"{LABELS[name]} / engines alone: {f['vs_engine']:.2f}; max |p(TLE) - FFV1's| = "
              f"{res['max_abs_p_tle_difference_vs_ffv1'][name]}")
    if "ray" in res:
        ray, local = res["ray"], res["formats"]["ffv1"]
        ray["vs_local"] = ray["windows_per_s"] / local["windows_per_s"] if local["windows_per_s"] else None
        mine, theirs = (np.asarray(x["runs"][0]["p_tle"], np.float64) for x in (ray, local))
        ray["max_abs_p_tle_difference_vs_local"] = float(np.max(np.abs(mine - theirs))) \
            if len(mine) == len(theirs) else None
        ray["steady_vs_local"] = (ray["steady_windows_per_s"] / local["steady_windows_per_s"]
                                  if local["steady_windows_per_s"] else None)
        print(f"Ray ({ray['cluster']}) / local runner on {LABELS['ffv1']}: {ray['vs_local']:.2f} overall, "
              f"{ray['steady_vs_local'] or 0:.2f} after the first result; windows per node: "
              + "; ".join(r.get("per_node", "?") for r in ray["runs"]))
    res["json"] = str(common.write_result(NAME, res, args.out))
    print(f"wrote {res['json']}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.archive", description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    run_from_args(args, "python -m semiostream.bench.archive " + " ".join(argv or []))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
