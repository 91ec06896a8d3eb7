"""``semiostream score`` end to end: inputs -> keys -> plans -> scoring (local or Ray) -> chunks -> tables.

1. expand INPUTS into jobs (:mod:`.inputs`);
2. key each job by its content and the run's settings (:mod:`.identity`); jobs whose chunk is already in the
   work folder ``<out>.parts/`` are done (resumption);
3. plan the remaining jobs in threads (:mod:`.plan`): a job that cannot be opened or is too short becomes an
   error row at once;
4. score the planned windows on this machine (:mod:`.runner`) or on Ray (:mod:`.ray_runner`); each finished job
   is written as one atomic chunk (:mod:`.writer`);
5. assemble both result tables from the chunks of the current inputs (:mod:`.output`).

Inputs whose content cannot even be hashed (missing, unreadable) get an error row in every run and are
never remembered, so they are tried again next time. So do inputs that are not opened at all (FIFOs,
devices, sockets, symbolic link loops: :mod:`.guard`), which are refused before anything reads them.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semiostream.core.batching import SCORER_MAX_BATCH
from semiostream.core.decision import DECISION_THRESHOLD
from semiostream.core.errors import UserError
from semiostream.core.files import sha256_of
from semiostream.core.segment import Segment

from .facts import InputFacts, plan_with_facts
from .guard import InputRefused, check_input
from .identity import ContentHashes, RunSettings, input_key
from .inputs import expand_inputs
from .output import inputs_path, output_format, write_tables
from .plan import JobPlan
from .progress import WindowProgress
from .rows import input_row, window_columns
from .runner import error_text, score_local
from .schema import INPUT_COLUMNS, column_names
from .writer import PartsStore, parts_dir_for

log = logging.getLogger(__name__)

MAX_FAILED_STATUS = 100
INPUT_NAMES = column_names(INPUT_COLUMNS)


@dataclass
class ScoreConfig:
    """Everything ``semiostream score`` needs (see the command's ``--help`` for each option)."""

    inputs: Sequence[str | Path]
    bundle: Path
    out: Path
    backend: str | None = None
    stream: str = "ir"
    fps: float | None = None
    hop: int | None = None
    detector: str = "full"
    detector_weights: Path | None = None
    threshold: float = DECISION_THRESHOLD
    workers: int = 2
    max_batch: int = SCORER_MAX_BATCH
    max_wait_ms: float = 20.0
    compile: bool | None = None  # torch backends: torch.compile (None = the backend's default)
    preprocessing: str = "auto"  # Scorer preprocessing: auto (DALI if installed), dali, reference
    retry_errors: bool = False
    ray: str | None = None  # None = this machine; "" = a local Ray instance; else a cluster address
    actors: int | None = None
    cpus_per_actor: int | None = None
    ray_stall_s: float = 600.0  # a Ray run stops when no window completes for this long
    show_progress: bool = True


@dataclass
class ScoreSummary:
    """What a run did. ``windows_per_s`` = windows scored in this run / seconds of the scoring phase."""

    inputs: int = 0
    reused: int = 0
    scored: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (input_id, reason) over all current inputs
    windows_scored: int = 0
    scoring_s: float = 0.0
    first_result_s: float = 0.0  # from the start of scoring to the first window's result (start-up)
    steady_windows_per_s: float = 0.0  # after the first result
    total_s: float = 0.0
    window_rows: int = 0
    out: Path | None = None
    out_inputs: Path | None = None
    backend: str = ""
    batches: int = 0  # inference batches (this machine only)
    largest_batch: int = 0
    model_start_s: float = 0.0  # loading and warming up the scorer (this machine only)
    bundle_id: str = ""
    training_data: str = ""  # the bundle's TrainingData.text
    #: (input_id, kind or None, person_found or None) of every current input
    judged: list[tuple[str, str | None, bool | None]] = field(default_factory=list)
    #: (input_id, fps of the video, fps_from, fps_used) of every scored current input
    rates: list[tuple[str, float, str, float]] = field(default_factory=list)
    #: input_id of every scored current input that is no seizure segment (a plain file or folder scored whole)
    unsegmented: list[str] = field(default_factory=list)
    #: (folder, reason) of scanned folders of images that are not frame folders (not inputs, not failures)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def windows_per_s(self) -> float:
        return self.windows_scored / self.scoring_s if self.scoring_s > 0 else 0.0

    def exit_status(self) -> int:
        """0 if every input was scored; else 2 + the number of failed inputs, at most 2 + 100 (2 = user error)."""
        return 0 if not self.failed else 2 + min(len(self.failed), MAX_FAILED_STATUS)

    def text(self) -> str:
        s = (f"{self.inputs} inputs: {self.scored} scored now, {self.reused} from earlier runs, "
             f"{len(self.failed)} failed; {self.window_rows} windows in {self.out} (inputs: {self.out_inputs})")
        if self.windows_scored:
            s += (f"\nscored {self.windows_scored} windows in {self.scoring_s:.1f} s = {self.windows_per_s:.2f} "
                  f"windows/s ({self.backend}); total {self.total_s:.1f} s")
            if self.steady_windows_per_s:
                s += (f"; {self.steady_windows_per_s:.2f} windows/s after the first result "
                      f"({self.first_result_s:.1f} s of start-up)")
            if self.batches:
                s += f"; {self.batches} batches, largest {self.largest_batch}"
            if self.model_start_s:
                s += f"; {self.model_start_s:.1f} s loading the model before that"
        s += judged_text(self.bundle_id, self.training_data, self.judged)

        s += rate_text(self.rates)
        s += unsegmented_text(self.unsegmented, self.out_inputs)
        for folder, reason in self.skipped[:5]:
            s += f"\nskipped (not an input): {folder}: not a frame folder: {reason}"
        if len(self.skipped) > 5:
            s += f"\n  ... and {len(self.skipped) - 5} more folders of images skipped"
        for input_id, reason in self.failed[:20]:
            s += f"\n  failed: {input_id}: {reason}"
        if len(self.failed) > 20:
            s += f"\n  ... and {len(self.failed) - 20} more (see the error column of {self.out_inputs})"
        return s


def judged_text(bundle_id: str, training: str, judged: Sequence[tuple[str, str | None, bool | None]],
                show: int = 5) -> str:
    """Summary lines on what a reader of the results must know: the bundle's training data, inputs that are
    not 16-bit gray IR (what the model is for), and inputs where the detector found no person."""
    def names(ids: list[str]) -> str:
        return _file_names(ids, show)

    s = f"\nbundle {bundle_id}: {training}" if training else ""
    kinds: dict[str, list[str]] = {}
    for input_id, kind, _ in judged:
        if kind is not None and kind != "16-bit gray":
            kinds.setdefault(kind, []).append(input_id)
    for kind, ids in sorted(kinds.items()):
        s += (f"\ninput kind: {_inputs(len(ids))} {'is' if len(ids) == 1 else 'are'} {kind} video, not the "
              "16-bit IR the model is made for"
              f"{' (scored through ' + ('its' if len(ids) == 1 else 'their') + ' luma)' if 'colour' in kind else ''}"
              f": {names(ids)}")
    nobody = [i for i, _, found in judged if found is False]
    if nobody:
        s += f"\nperson: the detector found no person in {_inputs(len(nobody))}: {names(nobody)}"
    return s


def unsegmented_text(ids: Sequence[str], out_inputs: Path | None, show: int = 5) -> str:
    """Summary line on inputs scored whole without a seizure segment: their label is no class decision."""
    if not ids:
        return ""
    names = _file_names(list(ids), show)
    return (f"\nno seizure segment: {_inputs(len(ids))} scored whole (plain files or folders, in_segment false in "
            f"{out_inputs}): the model learnt seizures only, so {'its' if len(ids) == 1 else 'their'} p_tle and "
            f"label are no class decision; score seizures through a manifest (onset, offset): {names}")


def _file_names(ids: list[str], show: int) -> str:
    """The file names of up to ``show`` input ids, then how many more."""
    more = f" and {len(ids) - show} more" if len(ids) > show else ""
    return ", ".join(Path(i.split("#")[0].split("@")[0]).name for i in ids[:show]) + more


def _inputs(n: int) -> str:
    return f"{n} input" if n == 1 else f"{n} inputs"


def rate_text(rates: Sequence[tuple[str, float, str, float]], show: int = 5) -> str:
    """Summary lines on frame rates: inputs resampled to the bundle's rate and inputs whose rate was
    assumed (none stored or given), each with up to ``show`` examples; empty when every input was read
    frame for frame at a rate stored in it or given."""
    def names(ids: list[str]) -> str:
        more = f" and {len(ids) - show} more" if len(ids) > show else ""
        return ", ".join(Path(i).name for i in ids[:show]) + more

    s = ""
    resampled = [(i, f, u) for i, f, _, u in rates if f != u]
    if resampled:
        s += (f"\nframe rate: {len(resampled)} inputs resampled to the bundle's {resampled[0][2]:g} fps (windows of "
              f"the same seconds): " + names([f"{i} ({f:g} fps)" for i, f, _ in resampled]))
    assumed = [(i, f) for i, f, src, _ in rates if src == "assumed"]
    if assumed:
        s += (f"\nframe rate: {len(assumed)} inputs store no frame rate; {assumed[0][1]:g} fps assumed (give the "
              f"true one with --fps or a manifest's fps column): " + names([i for i, _ in assumed]))
    return s


def _bundle_meta(path: Path) -> dict[str, Any]:
    """``bundle.json`` with ``"spec"`` added, after every check of the bundle short of loading the weights
    (file names inside the bundle, sha256 of each file, the id of the content)."""
    from semiostream.models.bundle import BundleError, check_bundle

    try:
        meta, spec = check_bundle(path)
    except BundleError as e:
        raise UserError(str(e)) from e
    return {**meta, "spec": spec}


def _detector(cfg: ScoreConfig, spec: Any) -> tuple[Any, str]:
    """(detector or None, its id for the run settings)."""
    if cfg.detector == "full":
        return None, "full"
    from semiostream.detectors.registry import make_detector

    if cfg.detector_weights is not None and not Path(cfg.detector_weights).is_file():
        raise UserError(f"--detector-weights {cfg.detector_weights} does not exist")
    try:
        det = make_detector(cfg.detector, spec=spec, weights=cfg.detector_weights)
    except (ValueError, OSError) as e:
        raise UserError(f"--detector {cfg.detector}: {e}") from e
    wid = sha256_of(cfg.detector_weights)[:16] if cfg.detector_weights else ""
    return det, f"{cfg.detector}:{wid}"


def engine_options(cfg: ScoreConfig) -> dict | None:
    backend = cfg.backend or ""
    if cfg.compile is None or (backend and not backend.startswith("torch-")):
        return None
    return {"compile": cfg.compile}


def score_archive(cfg: ScoreConfig) -> ScoreSummary:
    """Run (or resume) the scoring described by ``cfg``; see the module docstring.

    Raises:
        UserError: bad inputs, bundle, output name or options (nothing is scored).
    """
    t_start = time.perf_counter()
    output_format(cfg.out)
    if cfg.workers < 1 or cfg.max_batch < 1:
        raise UserError("--workers and --max-batch must be at least 1")
    if cfg.hop is not None and cfg.hop < 1:
        raise UserError("--hop must be at least 1 frame")
    meta = _bundle_meta(Path(cfg.bundle))
    spec, labels, bundle_id = meta["spec"], tuple(meta["labels"]), meta["bundle_id"]
    from semiostream.models.bundle import training_data

    trained_on = training_data(meta)
    if cfg.hop is not None and cfg.hop > spec.window:
        raise UserError(f"--hop {cfg.hop} exceeds the bundle's window of {spec.window} frames (frames would be "
                        "skipped); use a hop <= the window")
    skipped: list[tuple[Path, str]] = []
    jobs = expand_inputs(cfg.inputs, cfg.stream, cfg.fps, skipped)
    detector, detector_id = _detector(cfg, spec)
    requested_backend = cfg.backend or "auto"
    settings = RunSettings(bundle_id, requested_backend, cfg.hop, detector_id, cfg.threshold, cfg.preprocessing)
    summary = ScoreSummary(inputs=len(jobs), out=Path(cfg.out), out_inputs=inputs_path(cfg.out),
                           backend=requested_backend, bundle_id=bundle_id, training_data=trained_on.text,
                           skipped=[(str(f), why) for f, why in skipped])
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)

    with PartsStore(parts_dir_for(cfg.out)) as store:
        hashes = ContentHashes(store.root)
        final: list[tuple[dict, str | None]] = []  # (input row, chunk key or None) for every job
        todo: list[tuple[Segment, str, str]] = []

        facts: dict[str, InputFacts] = {}  # input_id -> kind and person, gathered while planning

        def row(job: Segment, **kw) -> dict:
            return input_row(job, bundle_id=bundle_id, backend=requested_backend, labels=labels,
                             threshold=cfg.threshold, training_data=trained_on.kind,
                             facts=facts.get(job.input_id), **kw)

        # 2. keys and what is done already
        with cf.ThreadPoolExecutor(max(1, cfg.workers), thread_name_prefix="archive-hash") as pool, \
                _phase(f"checking {len(jobs)} inputs", len(jobs), cfg.show_progress) as advance:
            futs = [(j, pool.submit(_content_sha256, hashes, j.path)) for j in jobs]
            for n, (job, fut) in enumerate(futs, 1):
                advance(n)
                try:
                    sha = fut.result()
                except InputRefused as e:  # FIFO, device, link loop ...: never opened, never remembered
                    final.append((row(job, error=str(e)), None))
                    continue
                except Exception as e:  # missing / unreadable: an error row in every run, never remembered
                    final.append((row(job, error=f"cannot read {job.path}: {error_text(e)}"), None))
                    continue
                key = input_key(job, sha, settings)
                done = store.is_done(key)
                kept = store.read(key)[0] if done is not None and not (cfg.retry_errors and done.status == "error") \
                    else None
                if kept is not None and list(kept) == INPUT_NAMES:  # a chunk of older columns is scored again
                    kept["training_data"] = trained_on.kind  # bundle.json's provenance is not part of its id
                    final.append((kept, key))
                    summary.reused += 1
                else:
                    todo.append((job, key, sha))
        hashes.save()

        # 3. plan (errors become chunks at once)
        plans: list[JobPlan] = []
        lock = threading.Lock()
        with cf.ThreadPoolExecutor(max(1, cfg.workers), thread_name_prefix="archive-plan") as pool, \
                _phase(f"planning {len(todo)} inputs", len(todo), cfg.show_progress and bool(todo)) as advance:
            futs2 = [(j, k, s, pool.submit(plan_with_facts, j, k, s, spec, cfg.hop, detector, lock))
                     for j, k, s in todo]
            for n, (job, key, sha, fut) in enumerate(futs2, 1):
                advance(n)
                plan, facts[job.input_id], err = fut.result()
                if plan is not None:
                    plans.append(plan)
                else:
                    r = row(job, error=error_text(err), sha256=sha)
                    store.write(key, r, window_columns())
                    final.append((r, key))
        for pl in plans:
            for note in pl.notes:
                log.warning("%s: %s", pl.job.input_id, note)
            kind = facts[pl.job.input_id].kind
            if kind is not None and "colour" in kind:
                log.warning("%s: %s video (%s), not the 16-bit IR the model is made for; scored through its luma",
                            pl.job.input_id, kind, facts[pl.job.input_id].kind_detail)

        # 4. score
        def on_done(plan: JobPlan, probs: np.ndarray | None, error: str | None) -> None:
            if error is None:
                r = row(plan.job, plan=plan, probs=probs)  # with its facts (kind, person)
                store.write(plan.key, r, window_columns(plan, probs))
                summary.scored += 1
                summary.windows_scored += plan.num_windows
            else:
                r = row(plan.job, error=error, sha256=plan.sha256)
                store.write(plan.key, r, window_columns())
            final.append((r, plan.key))

        if plans:
            total = sum(p.num_windows for p in plans)
            window_s = (cfg.hop or spec.window) / float(getattr(spec, "fps", 30.0))  # s of recording per window
            opts = engine_options(cfg)
            if cfg.ray is None:
                t_model = time.perf_counter()
                scorer = _make_scorer(cfg, opts)
                summary.backend, summary.model_start_s = scorer.backend, time.perf_counter() - t_model
                try:
                    with WindowProgress(total, cfg.show_progress, window_s=window_s) as prog:
                        stats = score_local(plans, scorer, on_done, workers=cfg.workers,
                                            max_batch=cfg.max_batch, max_wait_ms=cfg.max_wait_ms, progress=prog)
                    _timing(summary, prog)
                    summary.batches, summary.largest_batch = stats.batches, stats.max_batch_seen
                finally:
                    scorer.close()
            else:
                from .ray_runner import score_ray

                summary.backend = cfg.backend or "auto"
                with WindowProgress(total, cfg.show_progress, label="scoring on Ray", window_s=window_s) as prog:
                    used = score_ray(plans, str(Path(cfg.bundle).resolve()), cfg.backend, on_done,
                                     address=cfg.ray or None, actors=cfg.actors, cpus_per_actor=cfg.cpus_per_actor,
                                     max_batch=cfg.max_batch, engine_options=opts,
                                     preprocessing=cfg.preprocessing, progress=prog, stall_s=cfg.ray_stall_s)
                _timing(summary, prog)
                summary.backend = used or summary.backend

        # 5. the tables
        summary.failed = sorted((r["input_id"], r["error"]) for r, _ in final if r["error"])
        summary.unsegmented = sorted(r["input_id"] for r, _ in final if not r["error"] and not r["in_segment"])
        summary.judged = sorted((r["input_id"], r["kind"], r["person_found"]) for r, _ in final)
        summary.rates = sorted((r["input_id"], r["fps"], r["fps_from"], r["fps_used"]) for r, _ in final
                               if not r["error"] and r.get("fps_used") is not None)
        summary.window_rows, _ = write_tables(
            cfg.out, final, lambda key: store.read(key)[1],
            metadata={"bundle_id": bundle_id, "backend": requested_backend, "labels": ",".join(labels),
                      "training_data": trained_on.text})
    summary.total_s = time.perf_counter() - t_start
    return summary


def _content_sha256(hashes: ContentHashes, path: Path) -> str:
    """sha256 of a regular file's or a frame folder's content; anything else is refused unopened."""
    check_input(path)
    return hashes.sha256(path)


@contextlib.contextmanager
def _phase(message: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """``advance(done)`` of a progress bar (:func:`semiostream.core.progress.task_progress`), or a no-op."""
    if not enabled:
        yield lambda done: None
        return
    from semiostream.core.progress import task_progress

    with task_progress(message, total) as advance:
        yield advance


def _timing(summary: ScoreSummary, prog: WindowProgress) -> None:
    end = time.perf_counter()
    summary.scoring_s = end - prog.t0
    summary.first_result_s = (prog.t_first - prog.t0) if prog.t_first is not None else 0.0
    summary.steady_windows_per_s = prog.steady_rate()


def _make_scorer(cfg: ScoreConfig, opts: dict | None):
    from semiostream.engines.base import EngineError
    from semiostream.engines.scorer import Scorer

    try:
        scorer = Scorer(cfg.bundle, cfg.backend, max_batch=cfg.max_batch, engine_options=opts,
                        preprocessing=cfg.preprocessing)
    except (EngineError, ValueError) as e:
        raise UserError(f"cannot create the scorer: {e}") from e
    scorer.warmup()
    return scorer
