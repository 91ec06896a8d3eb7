"""Soak benchmark: a real scorer process for minutes to hours, with the traffic of a ward, watched for growth.

``semiostream bench soak --beds N --minutes M`` starts ``semiostream serve`` as a subprocess (exactly what
runs on a ward), with a results database whose retention is accelerated by configuration
(``store.retention_days`` = ``--retention-s``, ``store.prune_every_s`` = ``--prune-every-s``), and drives it
with:

* N synthetic cameras (SYNTHETIC frames, not patient data) of ``--width`` x ``--height`` uint16 at ``--fps``:
  N - 1 in one publisher process (:mod:`.loadgen`), evenly out of phase over one hop, and one, in this
  process, that restarts every ``--restart-every-s`` (a new connection whose sequence starts again at 0,
  after 2 s of silence, as a rebooted camera);
* an operator client that opens an event on one bed every ``--event-every-s`` and closes it
  ``--event-length-s`` later (round robin over the beds);
* a viewer that disconnects and reconnects every ``--viewer-cycle-s``.

Every ``--sample-s`` seconds it records the scorer process's RSS, open file descriptors, threads and CPU,
the results database's size and WAL size and window rows, the scorer's queue depths (windows pending
scoring, windows queued, frame bytes held), latency p50/p99 of the windows received since the last sample
(capture of a window's last frame -> result published, from the results) and the scorer's drops by reason.

It fits a least-squares line to each series after ``--warmup-s`` (the database series after the first
retention pass) and reports the slopes (MB/h, ms/h, fds/h, threads/h) with their standard error. A series
is **growing** when its slope exceeds its floor (RSS 10 MB/h, latency p99 100 ms/h, fds and threads 10/h,
database + WAL 10 MB/h) by more than twice its standard error; the verdict is ``flat`` when none is.
JSON and PNG plots (RSS, latency, database size over time) go to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from semiostream.core.batching import LIVE_MAX_BATCH_CPU

from . import common

NAME = "soak"

#: slope above which a series counts as growing (per hour), when also beyond twice its standard error
FLOORS = {"rss_mib": 10.0, "latency_p99_ms": 100.0, "fds": 10.0, "threads": 10.0, "db_total_mib": 10.0}
UNITS = {"rss_mib": "MB/h", "latency_p99_ms": "ms/h", "fds": "fds/h", "threads": "threads/h",
         "db_total_mib": "MB/h"}


# ------------------------------------------------------------------------------------------ analysis
def trend(t_s: list[float] | np.ndarray, y: list[float] | np.ndarray, floor_per_h: float) -> dict:
    """Least-squares slope of ``y`` over ``t_s`` (seconds), per hour, with its standard error.

    Returns ``{"slope_per_h", "stderr_per_h", "n", "growing"}``: ``growing`` when
    ``slope - 2 * stderr > floor_per_h`` (a rise beyond both noise and the floor). NaN values are skipped;
    fewer than 3 points give ``growing: False`` and a None slope.
    """
    t = np.asarray(t_s, dtype=np.float64) / 3600.0
    v = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    if t.size < 3 or np.ptp(t) == 0:
        return {"slope_per_h": None, "stderr_per_h": None, "n": int(t.size), "growing": False}
    tc = t - t.mean()
    sxx = float(np.sum(tc * tc))
    slope = float(np.sum(tc * (v - v.mean())) / sxx)
    resid = v - v.mean() - slope * tc
    se = float(math.sqrt(float(np.sum(resid * resid)) / (t.size - 2) / sxx))
    return {"slope_per_h": slope, "stderr_per_h": se, "n": int(t.size), "growing": slope - 2 * se > floor_per_h}


def analyse(samples: list[dict], warmup_s: float, db_steady_s: float) -> dict:
    """Trends of every watched series (see :data:`FLOORS`) and the verdict (``flat`` or ``growing: ...``)."""
    trends = {}
    for key, floor in FLOORS.items():
        start = db_steady_s if key == "db_total_mib" else warmup_s
        pts = [(s["t"], s.get(key)) for s in samples if s["t"] >= start and s.get(key) is not None]
        trends[key] = {**trend([p[0] for p in pts], [p[1] for p in pts], floor), "floor_per_h": floor,
                       "unit": UNITS[key], "from_s": start}
    growing = [k for k, v in trends.items() if v["growing"]]
    return {"trends": trends, "verdict": "flat" if not growing else "growing: " + ", ".join(growing)}


# ------------------------------------------------------------------------------------------ probes
def proc_facts(pid: int) -> dict:
    """RSS (MiB), threads and open file descriptors of process ``pid`` (Linux /proc)."""
    out = {"rss_mib": None, "threads": None, "fds": None}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mib"] = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def db_facts(path: Path) -> dict:
    """Sizes (MiB) of the results database and its WAL, and its window rows (a read-only snapshot)."""
    size = lambda p: p.stat().st_size / 2**20 if p.exists() else 0.0  # noqa: E731
    out = {"db_mib": size(path), "wal_mib": size(Path(f"{path}-wal")), "db_windows": None}
    out["db_total_mib"] = out["db_mib"] + out["wal_mib"]
    if path.exists():
        try:
            with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5) as c:
                out["db_windows"] = c.execute("SELECT count(*) FROM windows").fetchone()[0]
        except sqlite3.Error:
            pass
    return out


# ------------------------------------------------------------------------------------------ actors
class RestartingCamera:
    """One bed's camera that streams for ``period_s``, goes silent 2 s and comes back with a new
    connection whose sequence starts at 0 (a camera reboot), until stopped. Runs in a thread."""

    def __init__(self, endpoint: str, bed: str, fps: float, width: int, height: int, period_s: float) -> None:
        self.endpoint, self.bed, self.fps, self.period_s = endpoint, bed, fps, period_s
        self.size = (width, height)
        self.restarts = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="soak-restarting-camera", daemon=True)

    def _run(self) -> None:
        from semiostream.bus.publisher import Publisher, synthetic_frames

        clip = list(synthetic_frames("FLE", seed=99, width=self.size[0], height=self.size[1], fps=self.fps,
                                     seconds=2.0, loop=False))
        while not self.stop.is_set():
            pub = Publisher(self.endpoint, self.bed, fps=self.fps)
            try:
                pub.run((clip[i % len(clip)] for i in range(10**9)), stop=self.stop,
                        max_frames=max(1, round(self.period_s * self.fps)))
            finally:
                pub.close(flush_s=0.5)
            if self.stop.wait(2.0):
                break
            self.restarts += 1

    def start(self) -> RestartingCamera:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def write_config(workdir: Path, bundle_dir: Path, backend: str | None, endpoints: dict, *, fps: float, hop: int,
                 retention_s: float, prune_every_s: float, max_batch: int) -> tuple[Path, Path]:
    """The scorer's YAML config (and its results database path) for a soak in ``workdir``."""
    import yaml

    db = workdir / "results.sqlite"
    cfg = {"bundle": str(bundle_dir), "endpoints": endpoints, "fps": fps, "windows": {"hop": hop},
           "batching": {"max_batch": max_batch},
           "store": {"path": str(db), "retention_days": retention_s / 86400.0, "prune_every_s": prune_every_s}}
    if backend:
        cfg["backend"] = backend
    path = workdir / "scorer.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path, db


def start_scorer(config: Path, log_path: Path, compile: bool = True, timeout_s: float = 900.0):
    """``semiostream serve CONFIG`` as a subprocess; returns it once its control endpoint answers."""
    env = dict(os.environ)
    if not compile:
        env["TORCHDYNAMO_DISABLE"] = "1"  # torch.compile off: start-up in seconds (tests)
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process by stop_scorer
    proc = subprocess.Popen([sys.executable, "-c", "from semiostream.cli import main; raise SystemExit(main())",
                             "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log_file = log
    return proc


def wait_ready(proc, control: str, timeout_s: float, log_path: Path) -> None:
    from semiostream.bus.watch import ControlClient

    ctl = ControlClient(control, timeout_s=2)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the scorer ended with code {proc.returncode} during start-up:\n{tail}")
            if ctl.request("ping").get("ok"):
                return
            time.sleep(1.0)
    finally:
        ctl.close()
    raise RuntimeError(f"the scorer did not answer within {timeout_s:.0f} s (see {log_path})")


def stop_scorer(proc, timeout_s: float = 60.0) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    proc.log_file.close()
    return proc.returncode


# ------------------------------------------------------------------------------------------ the run
def run(bundle_dir: Path, *, beds: int = 2, minutes: float = 30.0, sample_s: float = 5.0, fps: float = 30.0,
        hop: int = 60, width: int = 512, height: int = 424, backend: str | None = None, compile: bool = True,
        max_batch: int = LIVE_MAX_BATCH_CPU, retention_s: float = 300.0, prune_every_s: float = 60.0,
        event_every_s: float = 60.0,
        event_length_s: float = 20.0, viewer_cycle_s: float = 45.0, restart_every_s: float = 120.0,
        warmup_s: float | None = None, workdir: Path | None = None, progress=print) -> dict:
    """One soak (see the module docstring); returns every sample, the trends and the verdict."""
    from semiostream.bus.protocol import EventResult, ScoreResult
    from semiostream.bus.watch import ControlClient, ResultsSubscriber

    from .latency import free_endpoints
    from .loadgen import CameraFleet

    workdir = Path(workdir or tempfile.mkdtemp(prefix="semiostream-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    endpoints = free_endpoints()
    config, db = write_config(workdir, bundle_dir, backend, endpoints, fps=fps, hop=hop, retention_s=retention_s,
                              prune_every_s=prune_every_s, max_batch=max_batch)
    log_path = workdir / "scorer.log"
    seconds = minutes * 60.0
    warmup = min(120.0, 0.2 * seconds) if warmup_s is None else warmup_s
    db_steady = retention_s + prune_every_s + 2 * sample_s
    restart_bed = "soak-restart"
    steady = [f"soak-{i:03d}" for i in range(beds - 1)]
    bed_ids = [*steady, restart_bed]
    progress(f"scorer: semiostream serve {config} (log {log_path})")
    t_start = time.monotonic()
    proc = start_scorer(config, log_path, compile=compile)
    samples: list[dict] = []
    counts = {"events_opened": 0, "events_closed": 0, "event_summaries": 0, "viewer_reconnects": 0,
              "results": 0, "control_failures": 0}
    fleet = restarter = sub = ctl = None
    final_status: dict = {}
    try:
        wait_ready(proc, endpoints["control"], 900.0, log_path)
        progress(f"scorer ready after {time.monotonic() - t_start:.0f} s; {beds} bed(s) (one restarting) "
                 f"for {minutes:g} min")
        ctl = ControlClient(endpoints["control"], timeout_s=10)
        sub = ResultsSubscriber(endpoints["results"])
        if steady:
            fleet = CameraFleet(endpoints["frames"], steady, fps, seconds + 5, width, height, processes=1,
                                stagger_s=hop / fps)
            fleet.start()
        restarter = RestartingCamera(endpoints["frames"], restart_bed, fps, width, height, restart_every_s).start()
        t0 = time.monotonic()
        if fleet is not None:
            fleet.go()
        sampler = common.ProcessSampler(proc.pid)
        next_sample, next_event, next_cycle = t0 + sample_s, t0 + min(event_every_s, 30.0), t0 + viewer_cycle_s
        open_event: tuple[str, float] | None = None
        event_turn = 0
        lat: list[float] = []
        while time.monotonic() - t0 < seconds:
            if proc.poll() is not None:
                raise RuntimeError(f"the scorer ended with code {proc.returncode} (see {log_path})")
            for r in sub.poll(100):
                if isinstance(r, ScoreResult):
                    lat.append(r.latency_ms)
                    counts["results"] += 1
                elif isinstance(r, EventResult):
                    counts["event_summaries"] += 1
            now = time.monotonic()
            if open_event is not None and now >= open_event[1]:
                ok = ctl.event("stop", open_event[0]).get("ok")
                counts["events_closed" if ok else "control_failures"] += 1
                open_event = None
            if open_event is None and now >= next_event:
                bed = bed_ids[event_turn % len(bed_ids)]
                event_turn += 1
                if ctl.event("start", bed).get("ok"):
                    counts["events_opened"] += 1
                    open_event = (bed, now + event_length_s)
                else:
                    counts["control_failures"] += 1
                next_event = now + event_every_s
            if now >= next_cycle:  # the viewer drops off and comes back
                sub.close()
                sub = ResultsSubscriber(endpoints["results"])
                counts["viewer_reconnects"] += 1
                next_cycle = now + viewer_cycle_s
            if now >= next_sample:
                samples.append(_sample(now - t0, proc.pid, sampler, db, ctl, lat))
                lat = []
                next_sample += sample_s
                if len(samples) % max(1, round(60 / sample_s)) == 0:
                    s = samples[-1]
                    progress(f"  {s['t'] / 60:5.1f} min: RSS {s['rss_mib']:.0f} MiB, fds {s['fds']}, threads "
                             f"{s['threads']}, DB {s['db_total_mib']:.2f} MiB ({s['db_windows']} windows), "
                             f"p99 {_fmt_ms(s['latency_p99_ms'])}, drops {s['dropped']}")
        if open_event is not None:
            counts["events_closed" if ctl.event("stop", open_event[0]).get("ok") else "control_failures"] += 1
        final_status = ctl.status().get("status", {})
    finally:
        for closer in (restarter, sub, ctl):
            if closer is not None:
                closer.close()
        if fleet is not None:
            fleet.stop()
        code = stop_scorer(proc)
    analysis = analyse(samples, warmup, db_steady)
    restarts = restarter.restarts if restarter is not None else 0
    dropped = final_status.get("dropped", {})
    return {
        "beds": beds, "minutes": minutes, "sample_s": sample_s, "fps": fps, "hop": hop, "frame": [height, width],
        "backend": backend or "fastest verified (else the reference)", "compile": compile,
        "retention_s": retention_s, "prune_every_s": prune_every_s, "warmup_s": warmup,
        "db_steady_from_s": db_steady, "actors": {**counts, "camera_restarts": restarts},
        "samples": samples, **analysis, "dropped_final": dropped, "scorer_exit_code": code,
        "workdir": str(workdir), "scorer_log": str(log_path),
        "restart_bed_status": final_status.get("beds", {}).get(restart_bed),
    }


def _sample(t: float, pid: int, sampler, db: Path, ctl, lat: list[float]) -> dict:
    st = ctl.status()
    status = st.get("status", {}) if st.get("ok") else {}
    mem = status.get("memory", {})
    pct = common.percentiles(lat)
    try:
        cpu = sampler.sample()["cpu_percent"]
    except OSError:
        cpu = None
    return {"t": round(t, 2), **proc_facts(pid), "cpu_percent": cpu, **db_facts(db),
            "pending_windows": status.get("pending_windows"), "queued_windows": mem.get("queued_windows"),
            "frame_bytes_held": mem.get("frame_bytes_held"),
            "inflight": sum(b.get("inflight", 0) for b in status.get("beds", {}).values()) if status else None,
            "latency_p50_ms": pct["p50"], "latency_p99_ms": pct["p99"], "windows": pct["n"],
            "dropped": status.get("dropped", {}), "status_ok": bool(st.get("ok"))}


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


# ------------------------------------------------------------------------------------------ output
def plot(result: dict, out_dir: Path, title: str) -> list[str]:
    plt = common.pyplot()
    s = result["samples"]
    t = np.array([x["t"] for x in s]) / 60.0
    paths = []
    panels = (("rss", [("rss_mib", "RSS (MiB)")], "rss_mib"),
              ("latency", [("latency_p50_ms", "p50"), ("latency_p99_ms", "p99")], "latency_p99_ms"),
              ("db", [("db_mib", "database"), ("wal_mib", "WAL"), ("db_total_mib", "database + WAL")],
               "db_total_mib"))
    for what, series, fitted in panels:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for key, label in series:
            ax.plot(t, [np.nan if x.get(key) is None else x[key] for x in s], lw=1.2, label=label)
        tr = result["trends"][fitted]
        if tr["slope_per_h"] is not None:
            ts = np.array([x["t"] for x in s if x["t"] >= tr["from_s"] and x.get(fitted) is not None])
            ys = np.array([x[fitted] for x in s if x["t"] >= tr["from_s"] and x.get(fitted) is not None])
            fit = ys.mean() + tr["slope_per_h"] * (ts - ts.mean()) / 3600.0
            ax.plot(ts / 60.0, fit, "k--", lw=1,
                    label=f"fit {tr['slope_per_h']:+.1f} ± {tr['stderr_per_h']:.1f} {tr['unit']}")
        ax.set_xlabel("minutes")
        ax.set_ylabel({"rss": "MiB", "latency": "latency (ms)", "db": "MiB"}[what])
        ax.set_title(title, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(common.plot_path(out_dir, NAME, what))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return [str(p) for p in paths]


def summary_rows(result: dict) -> list[tuple]:
    rows = []
    for key, tr in result["trends"].items():
        vals = [x[key] for x in result["samples"] if x.get(key) is not None and x["t"] >= tr["from_s"]]
        rows.append((key, vals[0] if vals else None, vals[-1] if vals else None, max(vals) if vals else None,
                     tr["slope_per_h"], tr["stderr_per_h"], tr["floor_per_h"], tr["unit"],
                     "GROWING" if tr["growing"] else "flat"))
    return rows


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--beds", type=int, default=2, help="synthetic cameras, one of them restarting (default 2)")
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the soak (default 30)")
    ap.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples (default 5)")
    ap.add_argument("--fps", type=float, default=30.0, help="frames per second per bed (default 30)")
    ap.add_argument("--hop", type=int, default=60, help="frames between scores of one bed (default 60 = 2 s)")
    ap.add_argument("--width", type=int, default=512, help="frame width (default 512)")
    ap.add_argument("--height", type=int, default=424, help="frame height (default 424)")
    ap.add_argument("--bundle", help="model bundle (default: Kinetics-400 I3D + random classifier, cached)")
    ap.add_argument("--ckpt", type=Path, help="I3D weights for the default bundle")
    ap.add_argument("--backend", help="engine backend of the scorer (default: its own choice, as `serve`)")
    ap.add_argument("--no-compile", action="store_true", help="scorer without torch.compile (faster start)")
    ap.add_argument("--max-batch", type=int, default=LIVE_MAX_BATCH_CPU,
                    help=f"scorer batch size (default {LIVE_MAX_BATCH_CPU}, the CPU default)")
    ap.add_argument("--retention-s", type=float, default=300.0,
                    help="results kept this long (accelerated retention; default 300 s)")
    ap.add_argument("--prune-every-s", type=float, default=60.0, help="retention pass interval (default 60 s)")
    ap.add_argument("--event-every-s", type=float, default=60.0, help="an operator opens an event this often")
    ap.add_argument("--event-length-s", type=float, default=20.0, help="... and closes it after this long")
    ap.add_argument("--viewer-cycle-s", type=float, default=45.0, help="the viewer reconnects this often")
    ap.add_argument("--restart-every-s", type=float, default=120.0, help="the restarting camera's period")
    ap.add_argument("--warmup-s", type=float, help="samples before this are not fitted (default min(120, 20%%))")
    ap.add_argument("--workdir", type=Path, help="scorer config, log and database (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT, help="folder for JSON and PNG")
    ap.add_argument("--no-plot", action="store_true", help="write no PNG")


def run_from_args(args: argparse.Namespace, command: str | None = None) -> dict:
    from semiostream.core.errors import UserError
    from semiostream.engines.artifacts import bundle_dir

    from .latency import cached_bundle

    for name in ("beds", "minutes", "sample_s", "fps", "hop", "retention_s", "prune_every_s"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    facts = common.machine_facts()
    bundle = cached_bundle(args.bundle, args.ckpt)
    result = run(bundle_dir(bundle), beds=args.beds, minutes=args.minutes, sample_s=args.sample_s, fps=args.fps,
                 hop=args.hop, width=args.width, height=args.height, backend=args.backend,
                 compile=not args.no_compile, max_batch=args.max_batch, retention_s=args.retention_s,
                 prune_every_s=args.prune_every_s, event_every_s=args.event_every_s,
                 event_length_s=args.event_length_s, viewer_cycle_s=args.viewer_cycle_s,
                 restart_every_s=args.restart_every_s, warmup_s=args.warmup_s, workdir=args.workdir)
    result.update({"benchmark": NAME, "command": command or common.command_line(), "machine": facts,
                   "loadavg_after": list(os.getloadavg())})
    result["markdown"] = common.print_table(
        f"soak: {args.beds} bed(s) (one restarting), {args.minutes:g} min, verdict {result['verdict']}",
        ["series", "first", "last", "max", "slope /h", "stderr /h", "floor /h", "unit", "trend"],
        summary_rows(result))
    print(f"actors: {result['actors']}\ndrops by reason at the end: {result['dropped_final']}\n"
          f"verdict: {result['verdict']}")
    if not args.no_plot and result["samples"]:
        result["plots"] = plot(result, args.out, f"soak, {args.beds} beds, {facts['cpu']} "
                                                 f"({facts['cpu_count']} cores), load {facts['loadavg'][0]:.1f}")
    result["json"] = str(common.write_result(NAME, result, args.out))
    print(f"wrote {result['json']}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.soak", description=__doc__.splitlines()[0])
    add_arguments(ap)
    run_from_args(ap.parse_args(argv), "python -m semiostream.bench.soak " + " ".join(argv or []))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
