"""Transport benchmark: many beds of 512x424 uint16 at 30 fps into the scorer service, with no scoring.

What runs: N synthetic cameras (the real :class:`~semiostream.bus.publisher.Publisher`, spread over
``--processes`` publisher processes, :mod:`.loadgen`) -> loopback TCP -> the real
:class:`~semiostream.bus.service.Service` (SUB socket, per-frame header validation, sequence tracking,
window assembly every ``--hop`` frames, results socket).

SCORING IS DELIBERATELY EXCLUDED: this is a benchmark harness of the transport, not a product path. The
service is built with a ``submit`` that returns an already completed future (p = 0.5) instead of the
engines' batcher, so each assembled window costs only its assembly and one result message.

Reported per N: frames sent vs received, frames lost (sequence gaps + frames missing at the end of each
stream + frames the publishers could not queue) as a fraction of the frames due, the receiving process's
CPU% and RSS over time (bounded = RSS grows by less than ``--rss-growth-mib`` over the second half of
the run), the publisher processes' CPU% and schedule lag. "OK" = loss < 1% and bounded RSS; the largest
N of the sweep that is OK (with all smaller N OK) is reported, with what limited it: the publishers (they
fell behind their 30 fps schedule) or the receiver.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from . import common
from .latency import free_endpoints
from .loadgen import CameraFleet

NAME = "bus"


def _done_submit(frames: np.ndarray, roi, intensity=None) -> Future:
    """Stand-in for the engines' batcher: no scoring (transport benchmark only)."""
    f: Future = Future()
    f.set_result(0.5)
    return f


def run_point(beds: int, *, fps: float = 30.0, seconds: float = 10.0, width: int = 512, height: int = 424,
              hop: int = 60, processes: int = 4, queue_seconds: float = 2.0, rss_growth_mib: float = 64.0,
              max_loss: float = 0.01) -> dict:
    from semiostream.bus.config import ServiceConfig
    from semiostream.bus.service import Service
    from semiostream.bus.watch import ControlClient
    from semiostream.core.preprocess_spec import PreprocessSpec

    endpoints = free_endpoints()
    cfg = ServiceConfig.model_validate({"bundle": "unused-transport-benchmark", "endpoints": endpoints,
                                        "windows": {"hop": hop}, "fps": fps, "queue_seconds": queue_seconds})
    service = Service(cfg, _done_submit, PreprocessSpec(), ("FLE", "TLE"), "transport-benchmark").start()
    bed_ids = [f"bus-{i:03d}" for i in range(beds)]
    fleet = CameraFleet(endpoints["frames"], bed_ids, fps, seconds, width, height, processes=processes,
                        queue_seconds=queue_seconds)
    ctl = ControlClient(endpoints["control"], timeout_s=10)
    me = common.ProcessSampler()
    samples: list[dict] = []
    pub_cpu: list[float] = []
    try:
        fleet.start()
        pubs = [common.ProcessSampler(pid) for pid in fleet.pids]
        me.sample()
        t_go = time.monotonic()
        fleet.go()
        while time.monotonic() - t_go < seconds + 0.5:
            time.sleep(1.0)
            samples.append({"t": time.monotonic() - t_go, **me.sample()})
            try:
                pub_cpu.append(sum(p.sample()["cpu_percent"] for p in pubs))
            except OSError:  # a publisher process already exited
                pass
        load = fleet.join()
        time.sleep(0.5)  # the receiver drains what is still queued
        status = ctl.status().get("status", {})
    finally:
        fleet.stop()
        ctl.close()
        service.stop()
    bed_status = status.get("beds", {})
    due = round(seconds * fps) * beds
    received = sum(bed_status.get(b, {}).get("frames", 0) for b in bed_ids)
    gaps = sum(bed_status.get(b, {}).get("gaps", 0) for b in bed_ids)
    tail = sum(max(0, load.beds.get(b, {}).get("last_seq", -1) - bed_status.get(b, {}).get("last_seq", -1))
               for b in bed_ids)
    not_sent = due - load.sent - load.dropped  # publishers that fell behind and ended before their schedule
    lost = due - received
    loss = lost / due if due else 0.0
    rss = [s["rss_mib"] for s in samples]
    half = rss[len(rss) // 2:] if rss else []
    growth = (max(half) - half[0]) if half else None
    bounded = growth is not None and growth < rss_growth_mib
    late = load.late_ticks / load.ticks if load.ticks else 0.0
    ok = loss < max_loss and bounded and not load.errors
    return {
        "beds": beds, "seconds": seconds, "fps": fps, "frame": [height, width], "processes": load.processes,
        "offered_mb_per_s": beds * fps * width * height * 2 / 1e6,
        "frames_due": due, "frames_sent": load.sent, "frames_received": received, "frames_lost": lost,
        "loss_fraction": loss, "sequence_gaps": gaps, "lost_at_stream_end": tail,
        "dropped_at_publishers": load.dropped, "not_sent_behind_schedule": max(0, not_sent),
        "windows_assembled": sum(bed_status.get(b, {}).get("windows_scored", 0) for b in bed_ids),
        "other_drops": status.get("dropped", {}),
        "receiver_cpu_percent": {"mean": float(np.mean([s["cpu_percent"] for s in samples])) if samples else None,
                                 "max": max((s["cpu_percent"] for s in samples), default=None)},
        "receiver_rss_mib": {"start": rss[0] if rss else None, "max": max(rss) if rss else None,
                             "end": rss[-1] if rss else None, "second_half_growth": growth},
        "publisher_cpu_percent": float(np.mean(pub_cpu)) if pub_cpu else None,
        "publisher_late_tick_fraction": late, "publisher_max_lag_s": load.max_lag_s,
        "bounded_rss": bounded, "ok": ok, "limited_by": _limit(ok, late, loss),
        "samples": samples, "publisher_errors": load.errors,
    }


def _limit(ok: bool, late: float, loss: float) -> str | None:
    if ok:
        return None
    if late > 0.05:
        return "publishers (fell behind their 30 fps schedule)"
    return "receiver (frames lost while the publishers kept their schedule)" if loss >= 0.01 else "memory"


def plot(points: list[dict], path: Path, title: str) -> str:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [p["beds"] for p in points]
    ax.plot(xs, [100 * p["loss_fraction"] for p in points], "o-", label="frames lost %")
    ax.axhline(1.0, color="r", ls="--", lw=1, label="1% limit")
    ax.set_xlabel("beds (512x424 uint16 at 30 fps each)")
    ax.set_ylabel("frames lost (%)")
    ax2 = ax.twinx()
    ax2.plot(xs, [p["receiver_cpu_percent"]["mean"] or 0 for p in points], "s--", color="gray", label="receiver CPU %")
    ax2.set_ylabel("receiver CPU % (100 = one core)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--beds", type=int, nargs="+", default=[8, 16, 32, 64, 96],
                    help="bed counts to sweep (default 8 16 32 64 96)")
    ap.add_argument("--fps", type=float, default=30.0, help="frames per second per bed (default 30)")
    ap.add_argument("--seconds", type=float, default=10.0, help="streaming time per point (default 10)")
    ap.add_argument("--width", type=int, default=512, help="frame width (default 512)")
    ap.add_argument("--height", type=int, default=424, help="frame height (default 424)")
    ap.add_argument("--hop", type=int, default=60, help="frames between assembled windows (default 60)")
    ap.add_argument("--processes", type=int, default=max(2, os.cpu_count() or 2),
                    help="publisher processes (default: number of cores, at least 2)")
    ap.add_argument("--rss-growth-mib", type=float, default=64.0,
                    help="largest RSS growth over the second half that still counts as bounded (default 64)")
    ap.add_argument("--out", type=Path, default=common.DEFAULT_OUT, help="folder for JSON and PNG")
    ap.add_argument("--no-plot", action="store_true", help="write no PNG")


def run_from_args(args: argparse.Namespace, command: str | None = None) -> dict:
    facts = common.machine_facts()
    points = []
    for n in args.beds:
        print(f"{n} beds x {args.fps:g} fps of {args.width}x{args.height} uint16 for {args.seconds:g} s "
              f"({n * args.fps * args.width * args.height * 2 / 1e6:.0f} MB/s) ...", flush=True)
        p = run_point(n, fps=args.fps, seconds=args.seconds, width=args.width, height=args.height, hop=args.hop,
                      processes=args.processes, rss_growth_mib=args.rss_growth_mib)
        print(f"  lost {100 * p['loss_fraction']:.2f}%, receiver CPU {p['receiver_cpu_percent']['mean']:.0f}%, "
              f"RSS max {p['receiver_rss_mib']['max']:.0f} MiB, publishers late "
              f"{100 * p['publisher_late_tick_fraction']:.1f}% of ticks -> {'OK' if p['ok'] else 'NOT OK'}",
              flush=True)
        points.append(p)
    largest = None
    for p in sorted(points, key=lambda p: p["beds"]):
        if not p["ok"]:
            break
        largest = p["beds"]
    first_bad = next((p for p in sorted(points, key=lambda p: p["beds"]) if not p["ok"]), None)
    result = {"benchmark": NAME, "command": command or common.command_line(), "machine": facts,
              "loadavg_after": list(os.getloadavg()), "scoring": "excluded (completed-future submit)",
              "points": points, "largest_ok_beds": largest,
              "limited_by": first_bad["limited_by"] if first_bad else "not reached within the sweep"}
    rows = [(p["beds"], p["offered_mb_per_s"], p["frames_due"], p["frames_received"], 100 * p["loss_fraction"],
             p["receiver_cpu_percent"]["mean"], p["receiver_rss_mib"]["max"],
             p["receiver_rss_mib"]["second_half_growth"],
             p["publisher_cpu_percent"], 100 * p["publisher_late_tick_fraction"], p["ok"]) for p in points]
    result["markdown"] = common.print_table(
        f"transport only (no scoring), {args.width}x{args.height} uint16 @ {args.fps:g} fps, "
        f"{args.processes} publisher processes",
        ["beds", "MB/s", "frames due", "received", "lost %", "receiver CPU %", "RSS max MiB", "RSS growth MiB",
         "publishers CPU %", "late ticks %", "OK"], rows)
    print(f"largest bed count with < 1% loss and bounded memory: {largest}; limit: {result['limited_by']}")
    if not args.no_plot and points:
        result["plot"] = plot(points, common.plot_path(args.out, NAME, "loss"),
                              f"transport only, {facts['cpu']} ({facts['cpu_count']} cores)")
    result["json"] = str(common.write_result(NAME, result, args.out))
    print(f"wrote {result['json']}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m semiostream.bench.bus", description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    run_from_args(args, "python -m semiostream.bench.bus " + " ".join(argv or []))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
