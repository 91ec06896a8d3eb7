"""Score planned jobs on a Ray cluster with Ray Data (``semiostream score --ray [ADDRESS]``).

The driver (this process) plans every job and builds a dataset with one item per window: ``seq`` (its
position in the run), the video's path, stream and fps override, the frame range and the crop. Ray Data's
``map_batches`` sends batches of items to a pool of actors (:class:`ScoreActor`), each holding one
:class:`~semiostream.engines.scorer.Scorer`: one actor per GPU (``num_gpus=1``), or on CPU-only clusters one
per ``cpus_per_actor`` cores. **Actors read the frames from the files themselves**: every node must see the
videos and the bundle at the same paths (a shared file system). Results stream back to the driver, which
writes a job's chunk as soon as all its windows are back, so a killed run resumes like the local one.

Ray is an optional dependency: ``pip install 'semiostream[ray]'``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from semiostream.errors import UserError

from .plan import JobPlan
from .runner import OnDone, error_text

log = logging.getLogger(__name__)

OBJECT_STORE_MB = 200


class ScoreActor:
    """A Ray Data actor: one Scorer; ``__call__`` scores a batch of window items.

    Input batch (numpy columns): ``seq`` int64, ``path`` str, ``stream`` str, ``fps`` float64 (NaN = none),
    ``start``/``stop`` int64, ``roi`` ``[B, 4]`` int64 (-1 = full frame).
    Output: ``seq`` int64, ``p`` float64 (NaN on error), ``error`` str ("" = ok), ``backend`` str.
    """

    def __init__(self, bundle: str, backend: str | None, max_batch: int, engine_options: dict | None,
                 preprocessing: str = "auto") -> None:
        from semiostream.engines.scorer import Scorer

        self.scorer = Scorer(bundle, backend, max_batch=max_batch, engine_options=engine_options,
                             preprocessing=preprocessing)
        self.scorer.warmup()
        self._src: tuple[tuple, Any] | None = None

    def _source(self, path: str, stream: str, fps: float, rate: float):
        from semiostream.dali_pipes.rate import at_rate
        from semiostream.dali_pipes.readers import open_source

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
                "backend": np.array([self.scorer.backend] * n, dtype=object)}


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
    return (f"the Ray job failed ({type(e).__name__}: {str(e)[:2000]}); inputs finished so far are kept: run the "
            "same command again to resume. Check that every node sees the bundle and the videos at the same paths")


def _guarded(results):
    """Iterate ``results``, re-raising Ray's errors with a message saying how to resume."""
    import ray

    batches = iter(results)
    while True:
        try:
            out = next(batches)
        except StopIteration:
            return
        except ray.exceptions.RayError as e:
            raise RuntimeError(_ray_failure(e)) from e
        yield out


def init_ray(address: str | None, object_store_mb: int = OBJECT_STORE_MB) -> bool:
    """Connect to the cluster at ``address``, or start a local instance (None / ""). True if this call started it."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'semiostream[ray]' (or pip install 'ray[data]')") from None
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=object_store_mb * 1024 * 1024,
                 include_dashboard=False, log_to_driver=False)
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False  # ours counts windows
    if not log.isEnabledFor(logging.DEBUG):
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    return True


def score_ray(plans: Sequence[JobPlan], bundle: str, backend: str | None, on_done: OnDone, *,
              address: str | None = None, actors: int | None = None, cpus_per_actor: int | None = None,
              max_batch: int = 4, engine_options: dict | None = None, preprocessing: str = "auto",
              progress: Any = None) -> str | None:
    """Score every plan on Ray; ``on_done`` as in :func:`~.runner.score_local` (called as jobs complete).

    Args:
        bundle: bundle directory, readable at the same path on every node.
        backend: backend name or None (each actor picks the fastest verified one).
        address: Ray cluster address (``ray://host:10001``, ``auto``); None/"" = start a local instance.
        actors: actor count (default: one per GPU, else cluster CPUs // ``cpus_per_actor``).
        cpus_per_actor: CPU cores per actor on CPU-only clusters (default ``min(4, cluster CPUs)``).
        max_batch: windows per Ray Data batch and per Scorer call.
        engine_options, preprocessing: passed to each Scorer.

    Returns:
        The backend the actors used (None if nothing was scored).
    """
    started = init_ray(address)  # UserError when Ray is not installed
    import ray
    import ray.data

    try:
        res = ray.cluster_resources()
        gpus, cpus = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
        if gpus:
            per_actor: dict[str, float] = {"num_gpus": 1}
            n_actors = actors or gpus
        else:
            cpa = int(cpus_per_actor or min(4, cpus))
            if cpa > cpus:
                raise UserError(f"--cpus-per-actor {cpa} exceeds the cluster's {cpus} CPUs; use at most {cpus}")
            per_actor = {"num_cpus": cpa}
            n_actors = actors or max(1, cpus // cpa)
        items, where = _items(plans)
        if not items:
            return None
        log.info("Ray: %d windows of %d inputs on %d actor(s) with %s each", len(items), len(plans), n_actors,
                 per_actor)
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
        for out in _guarded(scored.iter_batches(batch_size=None, batch_format="numpy")):
            for seq, p, err, be in zip(out["seq"], out["p"], out["error"], out["backend"], strict=True):
                j, w = where[int(seq)]
                used = str(be)
                if err and errors[j] is None:
                    errors[j] = f"window {w}: {err}"
                probs[j][w] = p
                left[j] -= 1
                if progress is not None:
                    progress.advance(1)
                if left[j] == 0:
                    on_done(plans[j], None if errors[j] else probs[j], errors[j])
        return used
    finally:
        if started:
            ray.shutdown()
