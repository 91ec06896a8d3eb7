"""Score planned jobs on a Ray cluster with Ray Data (``semiostream score --ray [ADDRESS]``).

The driver (this process) plans every job and builds a dataset with one item per window: ``seq`` (its
position in the run), the video's path, stream and fps override, the frame range and the crop. Ray Data's
``map_batches`` sends batches of items to a pool of actors (:class:`ScoreActor`), each holding one
:class:`~semiostream.engines.scorer.Scorer`: one actor per GPU (``num_gpus=1``), or on CPU-only clusters one
per ``cpus_per_actor`` cores. **Actors read the frames from the files themselves**: every node must see the
videos and the bundle at the same paths (a shared file system). Results stream back to the driver, which
writes a job's chunk as soon as all its windows are back, so a killed run resumes like the local one.

Never a silent wait:

- the actor size comes from what single nodes have (an actor runs on one node; the cluster's sum of CPUs
  says nothing about where it fits), and a request that no node can hold is refused before anything starts,
  with what the cluster has and what to pass (:func:`actor_shape`);
- one zero-CPU task per node checks that the node sees the bundle and every input (:func:`check_paths`);
- the pool starts only when all its actors are up, and a run in which no window completes for ``stall_s``
  seconds (actors that cannot be placed, a node that died, actors that never start) stops with the reason
  (:func:`stall_reason`); the inputs finished so far are kept, so the same command resumes.

Each result says which node scored it; the driver logs the windows per node (``-v``).

Ray is an optional dependency: ``pip install 'semiostream[ray]'``.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from semiostream.core.batching import SCORER_MAX_BATCH
from semiostream.core.errors import UserError

from .plan import JobPlan
from .runner import OnDone, error_text

log = logging.getLogger(__name__)

OBJECT_STORE_MB = 200
#: default seconds without a completed window before a Ray run stops (``--ray-stall-s``)
STALL_S = 600.0
#: seconds the per-node path check may take before the run goes on without its answer
CHECK_PATHS_S = 120.0


@dataclass(frozen=True)
class NodeInfo:
    """An alive node of the cluster: its id (hex), IP address and total CPUs / GPUs."""

    node_id: str
    ip: str
    cpus: int
    gpus: int

    @property
    def name(self) -> str:
        """``ip/first 8 hex digits of the id`` (nodes on one machine share their IP)."""
        return f"{self.ip}/{self.node_id[:8]}"

    def has(self) -> str:
        return f"{self.name} {self.cpus} CPU" + (f" {self.gpus} GPU" if self.gpus else "")


def alive_nodes() -> list[NodeInfo]:
    """The cluster's alive nodes (``ray.nodes()``)."""
    import ray

    return [NodeInfo(n["NodeID"], str(n.get("NodeManagerAddress", "?")), int(n["Resources"].get("CPU", 0)),
                     int(n["Resources"].get("GPU", 0))) for n in ray.nodes() if n.get("Alive")]


def _cluster(nodes: Sequence[NodeInfo]) -> str:
    return f"{len(nodes)} node(s): " + ", ".join(n.has() for n in nodes)


def actor_shape(nodes: Sequence[NodeInfo], actors: int | None = None,
                cpus_per_actor: int | None = None) -> tuple[dict[str, float], int]:
    """``(Ray resources of one actor, actor count)`` that ``nodes`` can hold, chosen per node.

    With GPUs: one actor per GPU (``num_gpus=1``), at most the GPUs of all nodes. CPU only:
    ``cpus_per_actor`` (default ``min(4, CPUs of the largest node)``) must fit on one node, and the count
    (default: as many as fit) is at most ``sum(node CPUs // cpus_per_actor)``.

    Raises:
        UserError: no node can hold one actor, or the nodes cannot hold ``actors`` of them (one line:
            what the cluster has and what to pass).
    """
    if not nodes:
        raise UserError("the Ray cluster has no alive node; start one (ray start) and run again")
    if any(n.gpus for n in nodes):
        fits = sum(n.gpus for n in nodes)
        if actors and actors > fits:
            raise UserError(f"--actors {actors} cannot be placed: an actor takes one GPU and the cluster has "
                            f"{_cluster(nodes)}; pass --actors {fits} or fewer")
        return {"num_gpus": 1}, actors or fits
    largest = max(n.cpus for n in nodes)
    if largest < 1:
        raise UserError(f"no node of the Ray cluster has a CPU ({_cluster(nodes)}); start nodes with "
                        "ray start --num-cpus N")
    cpa = int(cpus_per_actor or min(4, largest))
    if cpa > largest:
        raise UserError(f"--cpus-per-actor {cpa} cannot be placed: an actor runs on one node and no node has {cpa} "
                        f"CPUs ({_cluster(nodes)}); pass --cpus-per-actor {largest} or fewer")
    fits = sum(n.cpus // cpa for n in nodes)
    if actors and actors > fits:
        raise UserError(f"--actors {actors} of {cpa} CPU(s) each cannot be placed: the cluster has "
                        f"{_cluster(nodes)}, room for {fits}; pass --actors {fits} or fewer (or a smaller "
                        "--cpus-per-actor)")
    return {"num_cpus": cpa}, actors or fits


def _unreadable(paths: list[str]) -> list[str]:
    """The ``paths`` this process cannot read (runs on each node)."""
    return [p for p in paths if not os.access(p, os.R_OK)]


def check_paths(nodes: Sequence[NodeInfo], paths: Sequence[str], timeout_s: float = CHECK_PATHS_S) -> None:
    """Refuse the run when a node cannot read one of ``paths`` (one zero-CPU task pinned to each node).

    A node that does not answer within ``timeout_s`` is logged and left to the stall check.

    Raises:
        UserError: naming the node and up to 3 of the paths it cannot read.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(_unreadable)
    refs = {task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False)).remote(
        list(paths)): n for n in nodes}
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    for ref in pending:
        log.warning("node %s did not answer the path check within %.0f s", refs[ref].name, timeout_s)
        ray.cancel(ref, force=True)
    for ref in ready:
        try:
            missing = ray.get(ref)
        except ray.exceptions.RayError as e:
            log.warning("node %s: the path check failed (%s)", refs[ref].name, str(e).splitlines()[0])
            continue
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise UserError(f"node {refs[ref].name} cannot read {', '.join(missing[:3])}{more}: every node must "
                            "see the bundle and the videos at the same absolute paths (a shared file system)")


class ScoreActor:
    """A Ray Data actor: one Scorer; ``__call__`` scores a batch of window items.

    Input batch (numpy columns): ``seq`` int64, ``path`` str, ``stream`` str, ``fps`` float64 (NaN = none),
    ``start``/``stop`` int64, ``roi`` ``[B, 4]`` int64 (-1 = full frame).
    Output: ``seq`` int64, ``p`` float64 (NaN on error), ``error`` str ("" = ok), ``backend`` str, ``node``
    str (the hex id of the node this actor runs on).
    """

    def __init__(self, bundle: str, backend: str | None, max_batch: int, engine_options: dict | None,
                 preprocessing: str = "auto") -> None:
        import ray

        from semiostream.engines.scorer import Scorer

        self.node = ray.get_runtime_context().get_node_id()
        self.scorer = Scorer(bundle, backend, max_batch=max_batch, engine_options=engine_options,
                             preprocessing=preprocessing)
        self.scorer.warmup()
        self._src: tuple[tuple, Any] | None = None

    def _source(self, path: str, stream: str, fps: float, rate: float):
        from semiostream.sources.rate import at_rate
        from semiostream.sources.readers import open_source

        key = (path, stream, fps, rate)
        if self._src is None or self._src[0] != key:
            if self._src is not None:
                self._src[1].close()
            self._src = None
            src = open_source(path, stream=stream, fps=None if math.isnan(fps) else fps)
            self._src = (key, src if math.isnan(rate) else at_rate(src, rate))  # as planned
        return self._src[1]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["seq"])
        p = np.full(n, np.nan)
        err = [""] * n
        frames, rois, held, idx = [], [], [], []
        for i in range(n):
            try:
                src = self._source(str(batch["path"][i]), str(batch["stream"][i]), float(batch["fps"][i]),
                                   float(batch["rate"][i]))
                frames.append(src.read(int(batch["start"][i]), int(batch["stop"][i])))  # [T, H, W] uint16
                roi = [int(v) for v in batch["roi"][i]]
                rois.append(None if roi[0] < 0 else tuple(roi))
                lo, hi = (float(v) for v in batch["intensity"][i])
                held.append(None if np.isnan(lo) else (lo, hi))
                idx.append(i)
            except Exception as e:
                err[i] = error_text(e)
        if idx:
            try:
                p[idx] = self.scorer.score_windows(frames, rois, held)
            except Exception:  # score alone, so that only the bad window fails
                for k, i in enumerate(idx):
                    try:
                        p[i] = self.scorer.score_windows([frames[k]], [rois[k]], [held[k]])[0]
                    except Exception as e:
                        err[i] = error_text(e)
        return {"seq": np.asarray(batch["seq"], np.int64), "p": p, "error": np.array(err, dtype=object),
                "backend": np.array([self.scorer.backend] * n, dtype=object),
                "node": np.array([self.node] * n, dtype=object)}


def _items(plans: Sequence[JobPlan]) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    items, where = [], []
    for j, pl in enumerate(plans):
        roi = list(pl.roi) if pl.roi else [-1, -1, -1, -1]
        fps = float("nan") if pl.job.fps is None else float(pl.job.fps)
        rate = float(pl.rate) if pl.resampled else float("nan")
        held = list(pl.intensity) if pl.intensity else [float("nan"), float("nan")]
        for w, (a, b) in enumerate(pl.ranges()):
            items.append({"seq": len(where), "path": str(pl.job.path), "stream": pl.job.stream, "fps": fps,
                          "rate": rate, "start": a, "stop": b, "roi": roi, "intensity": held})
            where.append((j, w))
    return items, where


def _ray_failure(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:500]
    return (f"the Ray job failed ({type(e).__name__}: {first}); the inputs finished so far are kept: run the "
            "same command again to resume. Check that every node sees the bundle and the videos at the same paths")


def _actor_states() -> Counter:
    """States (ALIVE, PENDING_CREATION, RESTARTING ...) of this job's actors that are not dead."""
    import ray
    from ray._private import state  # the GCS's actor table: needs no dashboard

    job = ray.get_runtime_context().get_job_id()
    return Counter(a["State"] for a in state.actors().values() if a.get("JobID") == job and a["State"] != "DEAD")


def stall_reason(stall_s: float, done: int, total: int, per_actor: dict[str, float], n_actors: int,
                 nodes_at_start: Sequence[NodeInfo]) -> str:
    """One line: no window for ``stall_s`` seconds, why (actor states, dead nodes, free resources), what to do."""
    import ray

    why = []
    try:
        states = _actor_states()
        waiting = sum(v for k, v in states.items() if k != "ALIVE")
        if waiting:
            why.append(f"{waiting} of {n_actors} actors are not running ("
                       + ", ".join(f"{v} {k}" for k, v in sorted(states.items())) + ")")
        elif states:
            why.append(f"all {sum(states.values())} actors are up but returned nothing (still starting? a first "
                       "engine build or torch.compile can take longer)")
        now = {n.node_id: n.name for n in alive_nodes()}
        gone = [n.name for n in nodes_at_start if n.node_id not in now]
        if gone:
            why.append(f"node(s) {', '.join(gone)} died")
        free = ray._private.state.available_resources_per_node()
        key = "GPU" if "num_gpus" in per_actor else "CPU"
        need = per_actor.get("num_gpus", per_actor.get("num_cpus", 1))
        why.append(f"each actor needs {need:g} {key}; free now: " + (", ".join(
            f"{now.get(nid, nid[:8])} {res.get(key, 0):g} {key}" for nid, res in free.items()) or "no node"))
    except Exception as e:  # the diagnosis must never hide the stall itself
        why.append(f"(could not ask the cluster why: {type(e).__name__}: {e})")
    return (f"no window was scored on Ray for {stall_s:g} s ({done}/{total} windows done): {'; '.join(why)}. The "
            "inputs finished so far are kept: run the same command again to resume (with --actors / "
            "--cpus-per-actor that the alive nodes can hold), or pass a longer --ray-stall-s if the actors are "
            "only slow to start")


def _stream(results: Any, stall_s: float) -> Iterator[dict[str, np.ndarray] | None]:
    """Batches of ``results`` as they come, read on a thread; None when none came for ``stall_s`` seconds.

    Raises:
        UserError: the Ray job failed (what Ray said, and how to resume).
    """
    import ray

    q: queue.Queue = queue.Queue()

    def feed() -> None:
        try:
            for out in results:
                q.put(("batch", out))
            q.put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            timeout = isinstance(e, ray.exceptions.GetTimeoutError) or \
                isinstance(e.__cause__, ray.exceptions.GetTimeoutError)  # the pool's actors did not all start
            q.put(("stall" if timeout else "error", e))

    threading.Thread(target=feed, name="ray-results", daemon=True).start()
    while True:
        try:
            kind, value = q.get(timeout=stall_s)
        except queue.Empty:
            yield None
            return
        if kind == "end":
            return
        if kind == "stall":
            yield None
            return
        if kind == "error":
            raise UserError(_ray_failure(value)) from value
        yield value


def init_ray(address: str | None, object_store_mb: int = OBJECT_STORE_MB) -> bool:
    """Connect to the cluster at ``address``, or start a local instance (None / ""). True if this call started it."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'semiostream[ray]' (or pip install 'ray[data]')") from None
    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise UserError(f"cannot connect to the Ray cluster at {address} ({first}); check the address "
                            "(the head's host:port, auto, or ray://host:10001) and that the cluster is up") from e
    else:
        ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=object_store_mb * 1024 * 1024,
                 include_dashboard=False, log_to_driver=False)
    quiet_ray_data()
    return True


def quiet_ray_data() -> None:
    """Keep Ray Data's progress bars and tracebacks off the terminal (unless ``-vv``).

    Every failure of a Ray job reaches the caller as an exception that becomes one line (what Ray said and how to
    resume); Ray Data would also print it with a full traceback first (``ray.data.exceptions``, e.g. when the actor
    pool does not start within ``wait_for_min_actors_s``). Those records go only to Ray Data's log file in the
    session directory; with ``-vv`` (debug) they are printed too.
    """
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts windows
    if log.isEnabledFor(logging.DEBUG):
        return
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    exceptions = logging.getLogger("ray.data.exceptions")
    if _hide_from_console not in exceptions.filters:
        exceptions.addFilter(_hide_from_console)


def _hide_from_console(record: logging.LogRecord) -> bool:
    """Logging filter: mark the record ``hide`` (Ray Data's console handler skips it; its file handler keeps it)."""
    record.hide = True
    return True


def score_ray(plans: Sequence[JobPlan], bundle: str, backend: str | None, on_done: OnDone, *,
              address: str | None = None, actors: int | None = None, cpus_per_actor: int | None = None,
              max_batch: int = SCORER_MAX_BATCH, engine_options: dict | None = None, preprocessing: str = "auto",
              progress: Any = None, stall_s: float = STALL_S) -> str | None:
    """Score every plan on Ray; ``on_done`` as in :func:`~.runner.score_local` (called as jobs complete).

    Args:
        bundle: bundle directory, readable at the same path on every node.
        backend: backend name or None (each actor picks the fastest verified one).
        address: Ray cluster address (``host:port``, ``ray://host:10001``, ``auto``); None/"" = start a
            local instance.
        actors: actor count (default: one per GPU, else as many ``cpus_per_actor`` actors as the nodes hold).
        cpus_per_actor: CPU cores per actor on CPU-only clusters (default ``min(4, CPUs of the largest node)``).
        max_batch: windows per Ray Data batch and per Scorer call.
        engine_options, preprocessing: passed to each Scorer.
        stall_s: seconds, from the actor request on, without a completed window before the run stops.

    Returns:
        The backend the actors used (None if nothing was scored).

    Raises:
        UserError: actors no node can hold, a node that cannot read the inputs, Ray not installed (before
            anything is scored); a stall or a failed Ray job (the finished inputs are kept).
    """
    started = init_ray(address)  # UserError when Ray is not installed
    import ray
    import ray.data

    try:
        nodes = alive_nodes()
        per_actor, n_actors = actor_shape(nodes, actors, cpus_per_actor)
        items, where = _items(plans)
        if not items:
            return None
        check_paths(nodes, sorted({bundle, *(str(pl.job.path) for pl in plans)}))  # absolute paths
        log.info("Ray: %d windows of %d inputs on %d actor(s) with %s each; the cluster has %s", len(items),
                 len(plans), n_actors, per_actor, _cluster(nodes))
        ctx = ray.data.DataContext.get_current()
        ctx.wait_for_min_actors_s = max(1, int(stall_s))  # the pool starts when every actor is up, or fails
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // max_batch, 64)))
        scored = ds.map_batches(
            ScoreActor, fn_constructor_kwargs={"bundle": str(bundle), "backend": backend, "max_batch": max_batch,
                                               "engine_options": engine_options, "preprocessing": preprocessing},
            batch_size=max_batch, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=n_actors),
            **per_actor)
        probs = [np.full(pl.num_windows, np.nan, np.float32) for pl in plans]
        errors: list[str | None] = [None] * len(plans)
        left = [pl.num_windows for pl in plans]
        used = None
        per_node: Counter = Counter()
        names = {n.node_id: n.name for n in nodes}
        try:
            for out in _stream(scored.iter_batches(batch_size=None, batch_format="numpy"), stall_s):
                if out is None:
                    raise UserError(stall_reason(stall_s, len(items) - sum(left), len(items), per_actor, n_actors,
                                                 nodes))
                for seq, p, err, be, node in zip(out["seq"], out["p"], out["error"], out["backend"], out["node"],
                                                 strict=True):
                    j, w = where[int(seq)]
                    used = str(be)
                    per_node[names.get(str(node), str(node)[:8])] += 1
                    if err and errors[j] is None:
                        errors[j] = f"window {w}: {err}"
                    probs[j][w] = p
                    left[j] -= 1
                    if progress is not None:
                        progress.advance(1)
                    if left[j] == 0:
                        on_done(plans[j], None if errors[j] else probs[j], errors[j])
        finally:
            if per_node:
                log.info("Ray: windows scored per node: %s", ", ".join(f"{k} {v}" for k, v in sorted(per_node.items())))
        return used
    finally:
        if started:
            ray.shutdown()
