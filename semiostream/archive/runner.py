"""Score planned jobs on this machine: decoding threads overlap inference, windows of many videos share batches.

``workers`` threads each take one job at a time, read its windows in order (sequential decoding) and submit
each ``(frames, roi)`` to the Scorer's :class:`~semiostream.engines.batcher.DynamicBatcher`, whose single
worker runs preprocessing and inference on batches of up to ``max_batch`` windows from whichever jobs
have windows waiting. A semaphore bounds the decoded windows in memory (``prefetch``). The caller's thread
collects each job's probabilities in job order and hands them to ``on_done``, which writes the chunk.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from .plan import JobPlan, open_job

log = logging.getLogger(__name__)

#: ``on_done(plan, probs [N] float32 or None, error str or None)``
OnDone = Callable[[JobPlan, np.ndarray | None, str | None], None]


class _Cancelled(Exception):
    pass


class WindowFailed(Exception):
    """Window ``index`` of a job could not be read or scored (the message is ``window <index>: <reason>``)."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"window {index}: {error_text(cause)}")


def error_text(e: BaseException) -> str:
    """A one-line reason for an error row (SourceError / PlanError / ValueError messages as they are)."""
    plain = type(e).__name__ in ("SourceError", "PlanError", "ValueError", "ExtractError", "WindowFailed")
    text = str(e) if plain else f"{type(e).__name__}: {e}"
    path = getattr(e, "path", None)  # SourceError messages start with the path, which the row already has
    if isinstance(path, str) and text.startswith(path + ": "):
        text = text[len(path) + 2:]
    return text.replace("\n", " ")


def _result(index: int, fut: Future) -> float:
    try:
        return fut.result()
    except Exception as e:
        raise WindowFailed(index, e) from e


def score_local(plans: Sequence[JobPlan], scorer: Any, on_done: OnDone, *, workers: int = 2,
                max_batch: int | None = None, max_wait_ms: float = 20.0, prefetch: int | None = None,
                progress: Any = None) -> Any:
    """Score every plan's windows with ``scorer`` and call ``on_done`` once per plan, in order.

    Args:
        plans: jobs with their windows (:func:`~.plan.plan_job`).
        scorer: an :class:`~semiostream.engines.scorer.Scorer`.
        on_done: called in this thread with ``(plan, probs [N] float32, None)`` or ``(plan, None, reason)``.
        workers: decoding threads.
        max_batch, max_wait_ms: dynamic batching (default: the scorer's ``max_batch``).
        prefetch: most decoded windows held at once (default ``2 * max_batch + workers``).
        progress: object with ``advance(n)`` (e.g. :class:`~.progress.WindowProgress`), or None.

    Returns:
        The batcher's :class:`~semiostream.engines.batcher.BatcherStats` (requests, batches, largest batch).
    """
    batch = int(max_batch or scorer.max_batch)
    slots = threading.Semaphore(prefetch or 2 * batch + workers)
    stop = threading.Event()
    batcher = scorer.batcher(batch, max_wait_ms)

    def release(_: Future) -> None:
        slots.release()
        if progress is not None:
            progress.advance(1)

    def decode(plan: JobPlan) -> list[Future]:
        futures: list[Future] = []
        with open_job(plan.job) as src:
            for w, (a, b) in enumerate(plan.ranges()):
                try:
                    frames = src.read(a, b)  # [T, H, W] uint16
                except Exception as e:
                    raise WindowFailed(w, e) from e
                while not slots.acquire(timeout=0.2):
                    if stop.is_set():
                        raise _Cancelled
                fut = batcher.submit((frames, plan.roi))
                fut.add_done_callback(release)
                futures.append(fut)
        return futures

    pool = cf.ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix="archive-decode")
    try:
        pending = [(plan, pool.submit(decode, plan)) for plan in plans]
        for plan, dfut in pending:
            try:
                probs = np.array([_result(w, f) for w, f in enumerate(dfut.result())], np.float32)
            except Exception as e:
                log.warning("%s: %s", plan.job.input_id, error_text(e))
                on_done(plan, None, error_text(e))
                continue
            on_done(plan, probs, None)
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        batcher.close()
    return batcher.stats
