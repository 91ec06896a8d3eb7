"""Archive benchmark: windows/s of ``semiostream score`` on a synthetic archive, next to the engine alone.

1. A SYNTHETIC archive (not patient data): ``--clips`` FFV1 ``.mkv`` clips of ``--seconds`` at
   ``--width`` x ``--height`` uint16 with a ``manifest.csv`` (:func:`~semiostream.dali_pipes.synth.generate_dataset`).
2. ``semiostream score MANIFEST --bundle B --out T.parquet`` run in this process through
   :func:`semiostream.archive.run.score_archive` (the command's own code path: decode threads, keys, plans,
   windows of many videos batched, atomic chunks, tables), fresh output each time.
3. Side by side, in the same run: the same bundle and backend scoring the same number of in-memory windows
   through :meth:`Scorer.score_windows` (no decoding, no files), so the ratio says what the archive
   machinery costs on top of the engines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from . import common

NAME = "archive"


def make_archive(folder: Path, clips: int, seconds: float, width: int, height: int) -> Path:
    from semiostream.dali_pipes.synth import SynthConfig, generate_dataset

    patients = max(1, (clips + 1) // 2)
    return generate_dataset(folder, patients=patients, seizures_per_patient=2 if clips > 1 else 1,
                            cfg=SynthConfig(width=width, height=height, fps=30.0, seconds=seconds), fmt="mkv", seed=0)


def run(bundle_dir: Path, manifest: Path, work: Path, backend: str, repeats: int = 1, workers: int = 2,
        max_batch: int = 4, compile: bool | None = None) -> dict:
    import numpy as np

    from semiostream.archive.output import read_table
    from semiostream.archive.run import ScoreConfig, score_archive
    from semiostream.dali_pipes.readers import open_source
    from semiostream.engines.scorer import Scorer

    runs = []
    for i in range(repeats):
        out = work / f"run{i}" / "windows.parquet"
        if out.parent.exists():
            shutil.rmtree(out.parent)
        summary = score_archive(ScoreConfig(inputs=[manifest], bundle=bundle_dir, out=out, backend=backend,
                                            workers=workers, max_batch=max_batch, show_progress=False,
                                            compile=compile if backend.startswith("torch-") else None))
        rows = read_table(summary.out)
        runs.append({"windows_scored": summary.windows_scored, "scoring_s": summary.scoring_s,
                     "windows_per_s": summary.windows_per_s, "steady_windows_per_s": summary.steady_windows_per_s,
                     "first_result_s": summary.first_result_s, "total_s": summary.total_s,
                     "inputs": summary.inputs, "failed": len(summary.failed), "window_rows": len(rows),
                     "batches": summary.batches, "largest_batch": summary.largest_batch})
    # the engines alone on as many in-memory windows (first clip's first window, repeated)
    first = next(p for p in sorted(manifest.parent.rglob("*.mkv")))
    with open_source(first) as src:
        window = np.asarray(src.read(0, 60), dtype=np.uint16)
    n = max(r["windows_scored"] for r in runs) or 1
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
    engine_wps = n / statistics.median(times)
    best = max(runs, key=lambda r: r["windows_per_s"])
    return {"runs": runs, "engine_windows_per_s": engine_wps, "engine_windows": n,
            "archive_windows_per_s": best["windows_per_s"],
            "archive_steady_windows_per_s": best["steady_windows_per_s"],
            "archive_vs_engine": best["windows_per_s"] / engine_wps if engine_wps else None}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--clips", type=int, default=4, help="synthetic clips in the archive (default 4)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each clip (default 10 s = 5 windows)")
    ap.add_argument("--width", type=int, default=512, help="frame width (default 512)")
    ap.add_argument("--height", type=int, default=424, help="frame height (default 424)")
    ap.add_argument("--bundle", help="model bundle (default: Kinetics-400 I3D + random classifier, cached)")
    ap.add_argument("--ckpt", type=Path, help="I3D weights for the default bundle")
    ap.add_argument("--backend", help="engine backend (default: fastest verified; verified first if none is)")
    ap.add_argument("--workers", type=int, default=2, help="decode threads of `semiostream score` (default 2)")
    ap.add_argument("--max-batch", type=int, default=4, help="windows per engine batch (default 4)")
    ap.add_argument("--no-compile", action="store_true", help="torch backends without torch.compile")
    ap.add_argument("--repeats", type=int, default=1, help="scoring runs (default 1; the best is reported)")
    ap.add_argument("--workdir", type=Path, help="where the archive and outputs go (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT, help="folder for JSON")


def run_from_args(args: argparse.Namespace, command: str | None = None) -> dict:
    from semiostream.engines.artifacts import bundle_dir

    from .latency import cached_bundle, fast_backend

    facts = common.machine_facts()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="semiostream-bench-archive-"))
    try:
        t0 = time.perf_counter()
        manifest = make_archive(work / "archive", args.clips, args.seconds, args.width, args.height)
        synth_s = time.perf_counter() - t0
        print(f"synthetic archive: {args.clips} clips x {args.seconds:g} s ({synth_s:.1f} s to write) "
              f"in {manifest.parent}")
        bundle = cached_bundle(args.bundle, args.ckpt)
        backend = fast_backend(bundle, args.backend)
        bdir = bundle_dir(bundle)
        res = run(bdir, manifest, work, backend, args.repeats, args.workers, args.max_batch,
                  compile=False if args.no_compile else None)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    res.update(benchmark=NAME, command=command or common.command_line(), machine=facts,
               loadavg_after=list(os.getloadavg()), backend=backend, clips=args.clips, clip_seconds=args.seconds,
               frame=[args.height, args.width], equivalent_command=(
                   f"semiostream score {manifest} --bundle {bdir} --out OUT.parquet --backend {backend} "
                   f"--workers {args.workers} --max-batch {args.max_batch}"))
    rows = [(f"semiostream score (run {i + 1})", r["windows_scored"], r["windows_per_s"], r["steady_windows_per_s"],
             r["first_result_s"], r["total_s"]) for i, r in enumerate(res["runs"])]
    rows.append(("Scorer.score_windows, in-memory windows", res["engine_windows"], res["engine_windows_per_s"], None,
                 None, None))
    res["markdown"] = common.print_table(
        f"archive scoring, {backend}, {args.clips} clips x {args.seconds:g} s of {args.width}x{args.height}",
        ["what", "windows", "windows/s", "steady windows/s", "start-up s", "total s"], rows)
    print(f"archive / engine alone: {res['archive_vs_engine']:.2f}")
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
