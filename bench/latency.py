"""Live latency benchmark: real publishers, a real scorer, loopback ZeroMQ, swept over the number of beds.

For each N in ``--beds`` (e.g. ``1 2 4 6``): a :class:`~semiostream.bus.runtime.ScorerRuntime` (the
service as ``semiostream serve`` runs it: Scorer + dynamic batcher + Service) binds loopback endpoints,
N synthetic cameras (separate processes, :mod:`.loadgen`) publish ``--width`` x ``--height`` uint16 at
``--fps`` for ``--seconds`` (evenly out of phase over one hop, as independent cameras are;
``--synchronized`` for the worst case where every bed's window completes at the same moment), and a
results subscriber collects every ``score/<bed>`` message. Reported per N: latency p50/p95/p99/max from
the results' ``latency_ms`` (capture of the window's last frame -> result sent, i.e. latency beyond
window fill), windows scored vs expected, drops (windows dropped for backlog, frames missing from
sequences, frames dropped at publishers), the scorer process's CPU% (100 = one core)
and RSS. "Real-time" = no backlog drops, no sequence gaps, and p99 <= ``--p99-limit`` (1.5 s). With
``--frames-endpoint``/``--results-endpoint`` it measures an external scorer instead (``--scorer-pid`` for
its CPU and RSS).

The engine backend is ``--backend``, else the fastest one verified for the bundle on this machine; if none
is verified, the fast candidates (OpenVINO where installed and torch-cpu-bf16, or the CUDA ones on a GPU) are
verified first, as ``semiostream verify`` would. Plots: latency CDF per N, latency percentiles vs N.
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from pathlib import Path

import numpy as np

from semiostream.core.batching import SCORER_MAX_BATCH

from . import common
from .loadgen import CameraFleet

NAME = "latency"


def free_endpoints() -> dict[str, str]:
    out = {}
    for k in ("frames", "results", "control"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            out[k] = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    return out


def fast_backend(bundle, requested: str | None = None, progress=print) -> str:
    """``requested``, else the fastest verified backend, else verify the fast candidates once and pick."""
    from semiostream.engines.registry import usable_backends
    from semiostream.engines.select import select_backend, verified_backends

    if requested:
        return select_backend(bundle, requested)
    ranked = verified_backends(bundle)
    if ranked:
        return ranked[0][0]
    from semiostream.trt_build.verify import verify_bundle

    usable = usable_backends()
    gpu = [n for n in ("tensorrt-fp16", "torch-cuda-fp16") if n in usable]
    candidates = gpu or [n for n in ("openvino-cpu-bf16", "openvino-cpu-fp32", "torch-cpu-bf16") if n in usable]
    if "tensorrt-fp16" in candidates:
        from semiostream.trt_build.build import build_bundle_engines

        progress("building the TensorRT fp16 engines for this GPU (once per bundle) ...")
        try:
            build_bundle_engines(bundle, "fp16")
        except Exception as e:  # verification then covers the torch CUDA backend only
            progress(f"TensorRT build failed ({e}); verifying the torch CUDA backend only")
            candidates.remove("tensorrt-fp16")
    if candidates:
        progress(f"no verified backend for this bundle here; verifying {', '.join(candidates)} once ...")
        report = verify_bundle(bundle, candidates, batch=1, n_random_features=16)
        progress(report.table())
    ranked = verified_backends(bundle)
    return ranked[0][0] if ranked else select_backend(bundle, None)  # the reference when nothing passed


def run_point(beds: int, *, bundle=None, scorer=None, fps: float = 30.0, seconds: float = 20.0, hop: int = 60,
              width: int = 512, height: int = 424, max_batch: int = SCORER_MAX_BATCH, max_wait_ms: float = 50.0,
              endpoints: dict[str, str] | None = None, scorer_pid: int | None = None,
              processes: int | None = None, drain_s: float = 10.0, p99_limit_ms: float = 1500.0,
              synchronized: bool = False) -> dict:
    """One point of the sweep: ``beds`` cameras for ``seconds``; returns its measurements.

    With ``scorer`` (a :class:`~semiostream.engines.scorer.Scorer`, shared across points so it compiles
    once) a runtime is started on loopback; with ``endpoints`` an external scorer is measured.
    """
    from semiostream.bus.protocol import ScoreResult
    from semiostream.bus.watch import ControlClient, ResultsSubscriber

    runtime = None
    external = endpoints is not None
    if not external:
        from semiostream.bus.config import ServiceConfig
        from semiostream.bus.runtime import ScorerRuntime
        from semiostream.engines.artifacts import bundle_dir

        endpoints = free_endpoints()
        cfg = ServiceConfig.model_validate({
            "bundle": str(bundle_dir(scorer.bundle)), "backend": scorer.backend,
            "endpoints": endpoints, "windows": {"hop": hop}, "fps": fps,
            "batching": {"max_batch": max_batch, "max_wait_ms": max_wait_ms},
            "store": {"path": None},  # transport and inference only
        })
        runtime = ScorerRuntime(cfg, scorer=scorer, warmup=False).start()
    sampler = common.ProcessSampler(scorer_pid or "self") if (scorer_pid or not external) else None
    bed_ids = [f"bench-{i:03d}" for i in range(beds)]
    sub = ResultsSubscriber(endpoints["results"])
    ctl = ControlClient(endpoints["control"], timeout_s=5) if endpoints.get("control") else None
    stagger = 0.0 if synchronized else hop / fps
    fleet = CameraFleet(endpoints["frames"], bed_ids, fps, seconds, width, height, processes=processes,
                        stagger_s=stagger)
    results: list[ScoreResult] = []
    samples: list[dict] = []
    try:
        fleet.start()
        time.sleep(0.3)
        if sampler:
            sampler.sample()
        t_go = time.monotonic()
        fleet.go()
        next_sample = t_go + 1.0
        expected_per_bed = max(0, (round(seconds * fps) - 60) // hop + 1) if round(seconds * fps) >= 60 else 0
        while True:
            got = sub.poll(100)
            results += [r for r in got if isinstance(r, ScoreResult) and r.bed in bed_ids]
            now = time.monotonic()
            if sampler and now >= next_sample:
                samples.append({"t": now - t_go, **sampler.sample()})
                next_sample = now + 1.0
            end = seconds + stagger
            if now - t_go > end + 1 and (len(results) >= expected_per_bed * beds or now - t_go > end + drain_s):
                break
        load = fleet.join()
        status = ctl.status().get("status", {}) if ctl else {}
    finally:
        fleet.stop()
        sub.close()
        if ctl:
            ctl.close()
        if runtime is not None:  # the scorer is shared across points: close only the service and batcher
            runtime.service.stop()
            runtime.batcher.close(timeout=30)
    lat = [r.latency_ms for r in results]
    dropped = status.get("dropped", {})
    bed_status = {b: s for b, s in status.get("beds", {}).items() if b in bed_ids}
    gaps = sum(s.get("gaps", 0) for s in bed_status.values())
    frames_received = sum(s.get("frames", 0) for s in bed_status.values())
    backlog = int(dropped.get("backlog", 0))
    pct = common.percentiles(lat)
    cpu = [s["cpu_percent"] for s in samples]
    rss = [s["rss_mib"] for s in samples]
    realtime = (backlog == 0 and gaps == 0 and load.dropped == 0 and pct["p99"] is not None
                and pct["p99"] <= p99_limit_ms and len(results) >= expected_per_bed * beds)
    return {
        "beds": beds, "seconds": seconds, "fps": fps, "hop": hop, "frame": [height, width],
        "windows_scored": len(results), "windows_expected": expected_per_bed * beds,
        "latency_ms": pct, "latency_ms_all": lat,
        "backlog_dropped_windows": backlog, "sequence_gaps": gaps, "frames_received": frames_received,
        "frames_sent": load.sent, "dropped_at_publishers": load.dropped, "other_drops": {
            k: v for k, v in dropped.items() if k != "backlog"},
        "publishers": load.to_dict(),
        "scorer_cpu_percent": {"mean": float(np.mean(cpu)) if cpu else None, "max": max(cpu) if cpu else None},
        "scorer_rss_mib": {"start": rss[0] if rss else None, "max": max(rss) if rss else None,
                           "end": rss[-1] if rss else None},
        "samples": samples, "realtime": realtime, "bed_phase_stagger_s": stagger,
    }


def sweep(beds_list: list[int], progress=print, **kw) -> list[dict]:
    points = []
    for n in beds_list:
        progress(f"{n} bed(s) x {kw.get('fps', 30.0):g} fps for {kw.get('seconds', 20.0):g} s ...")
        p = run_point(n, **kw)
        lp = p["latency_ms"]
        progress(f"  {p['windows_scored']}/{p['windows_expected']} windows, p50 {_ms(lp['p50'])} p99 "
                 f"{_ms(lp['p99'])}, backlog drops {p['backlog_dropped_windows']}, gaps {p['sequence_gaps']}, "
                 f"CPU {_num(p['scorer_cpu_percent']['mean'])}% -> {'real-time' if p['realtime'] else 'NOT real-time'}")
        points.append(p)
    return points


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def plot(points: list[dict], out_dir: Path, p99_limit_ms: float, title: str, name: str = NAME) -> list[str]:
    plt = common.pyplot()
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for p in points:
        v = np.sort(np.asarray(p["latency_ms_all"], dtype=float)) / 1e3
        if v.size:
            ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=f"{p['beds']} bed(s)")
    ax.axvline(p99_limit_ms / 1e3, color="r", ls="--", lw=1, label=f"p99 limit {p99_limit_ms / 1e3:g} s")
    ax.set_xlabel("latency: capture of a window's last frame -> result (s)")
    ax.set_ylabel("fraction of windows")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(common.plot_path(out_dir, name, "cdf"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [p["beds"] for p in points]
    for q, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        ax.plot(xs, [(p["latency_ms"][q] or np.nan) / 1e3 for p in points], style, label=q)
    for p in points:
        if p["backlog_dropped_windows"] or p["sequence_gaps"]:
            ax.annotate("drops", (p["beds"], (p["latency_ms"]["p99"] or 0) / 1e3), fontsize=8, color="r")
    ax.axhline(p99_limit_ms / 1e3, color="r", ls="--", lw=1, label="p99 limit")
    ax.set_xlabel("beds (cameras at 30 fps)")
    ax.set_ylabel("latency (s)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(common.plot_path(out_dir, name, "vs_beds"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return [str(p) for p in paths]


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--beds", type=int, nargs="+", default=[1, 2, 4, 6], help="bed counts to sweep (default 1 2 4 6)")
    ap.add_argument("--fps", type=float, default=30.0, help="frames per second per bed (default 30)")
    ap.add_argument("--seconds", type=float, default=30.0, help="streaming time per point (default 30)")
    ap.add_argument("--hop", type=int, default=60, help="frames between scores of one bed (default 60 = 2 s)")
    ap.add_argument("--width", type=int, default=512, help="frame width (default 512)")
    ap.add_argument("--height", type=int, default=424, help="frame height (default 424)")
    ap.add_argument("--bundle", help="model bundle (default: Kinetics-400 I3D + random classifier, cached)")
    ap.add_argument("--ckpt", type=Path, help="I3D weights for the default bundle")
    ap.add_argument("--backend", help="engine backend (default: fastest verified; verified first if none is)")
    ap.add_argument("--no-compile", action="store_true", help="torch backends without torch.compile")
    ap.add_argument("--max-batch", type=int, default=SCORER_MAX_BATCH,
                    help=f"scorer batch size (default {SCORER_MAX_BATCH})")
    ap.add_argument("--max-wait-ms", type=float, default=50.0, help="batcher wait (default 50 ms)")
    ap.add_argument("--synchronized", action="store_true",
                    help="start every camera at the same instant (worst case: all windows complete together); "
                         "default: cameras evenly out of phase over one hop, as independent cameras are")
    ap.add_argument("--p99-limit", type=float, default=1.5, help="real-time p99 limit in seconds (default 1.5)")
    ap.add_argument("--frames-endpoint", help="measure an external scorer: its frame endpoint")
    ap.add_argument("--results-endpoint", help="... its results endpoint")
    ap.add_argument("--control-endpoint", help="... its control endpoint (for drop counters)")
    ap.add_argument("--scorer-pid", type=int, help="... its process id (for CPU and RSS)")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT, help="folder for JSON and PNG")
    ap.add_argument("--no-plot", action="store_true", help="write no PNG")


def cached_bundle(bundle: str | None, ckpt: Path | None):
    """``bundle``, or the default benchmark bundle kept in the user cache (so verdicts and compiled
    graphs are reused by later runs)."""
    if bundle:
        return common.bench_bundle(bundle)
    from semiostream.models.bundle import BundleError, load_bundle
    from semiostream.models.fetch import cache_dir

    work = cache_dir() / "bench"
    try:
        return load_bundle(work / "bundle")
    except BundleError:
        return common.bench_bundle(None, ckpt, work)


def run_from_args(args: argparse.Namespace, command: str | None = None) -> dict:
    from semiostream.core.errors import UserError

    name = NAME + ("_synchronized" if args.synchronized else "")
    facts = common.machine_facts()
    kw = dict(fps=args.fps, seconds=args.seconds, hop=args.hop, width=args.width, height=args.height,
              p99_limit_ms=args.p99_limit * 1e3, synchronized=args.synchronized)
    scorer = None
    if args.frames_endpoint or args.results_endpoint:
        if not (args.frames_endpoint and args.results_endpoint):
            raise UserError("an external scorer needs both --frames-endpoint and --results-endpoint")
        kw.update(endpoints={"frames": args.frames_endpoint, "results": args.results_endpoint,
                             "control": args.control_endpoint}, scorer_pid=args.scorer_pid)
        backend = "external"
    else:
        from semiostream.engines.scorer import Scorer

        bundle = cached_bundle(args.bundle, args.ckpt)
        backend = fast_backend(bundle, args.backend)
        print(f"scorer backend: {backend}")
        opts = {"compile": False} if args.no_compile and backend.startswith("torch-") else None
        scorer = Scorer(bundle, backend, max_batch=args.max_batch, engine_options=opts)
        t0 = time.perf_counter()
        scorer.warmup()
        print(f"warm-up {time.perf_counter() - t0:.1f} s")
        kw.update(bundle=bundle, scorer=scorer, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms)
    try:
        points = sweep(args.beds, **kw)
    finally:
        if scorer is not None:
            scorer.close()
    ok = [p["beds"] for p in points if p["realtime"]]
    largest = None
    for p in sorted(points, key=lambda p: p["beds"]):  # the largest N with every smaller N real-time too
        if not p["realtime"]:
            break
        largest = p["beds"]
    result = {"benchmark": name, "command": command or common.command_line(), "machine": facts,
              "loadavg_after": list(os.getloadavg()), "backend": backend, "p99_limit_s": args.p99_limit,
              "points": points, "realtime_beds": ok, "largest_realtime_beds": largest,
              "preprocessing": getattr(scorer, "preprocessing", None)}
    rows = [(p["beds"], p["windows_scored"], p["windows_expected"], p["latency_ms"]["p50"], p["latency_ms"]["p95"],
             p["latency_ms"]["p99"], p["latency_ms"]["max"], p["backlog_dropped_windows"], p["sequence_gaps"],
             p["scorer_cpu_percent"]["mean"], p["scorer_rss_mib"]["max"], p["realtime"]) for p in points]
    result["markdown"] = common.print_table(
        f"live latency, {backend}, hop {args.hop} frames, {args.width}x{args.height} @ {args.fps:g} fps",
        ["beds", "windows", "expected", "p50 ms", "p95 ms", "p99 ms", "max ms", "backlog drops", "seq gaps",
         "scorer CPU %", "RSS MiB", "real-time"], rows)
    print(f"largest real-time bed count: {largest}")
    if not args.no_plot and points:
        result["plots"] = plot(points, args.out, args.p99_limit * 1e3,
                               f"{backend}, hop {args.hop}, {'synchronized' if args.synchronized else 'staggered'} "
                               f"cameras, {facts['cpu']} ({facts['cpu_count']} cores)", name)
    result["json"] = str(common.write_result(name, result, args.out))
    print(f"wrote {result['json']}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.latency", description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    run_from_args(args, "python -m semiostream.bench.latency " + " ".join(argv or []))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
