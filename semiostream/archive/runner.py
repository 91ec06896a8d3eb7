"""Score planned jobs on this machine: decoding threads overlap inference, windows of many videos share batches.

``workers`` threads each take one job at a time, read its windows in order (sequential decoding) and submit
each ``(frames, roi)`` to the Scorer's :class:`~semiostream.engines.batcher.DynamicBatcher`, whose single
worker runs preprocessing and inference on batches of up to ``max_batch`` windows from whichever jobs
have windows waiting. A semaphore bounds the decoded windows in memory (``prefetch``). When the last window
of a job is back, the job joins a queue; the caller's thread hands each one to ``on_done`` (which writes its
chunk) in completion order, so a long video never holds back the finished short ones.

Decoding never waits for the GIL: PyAV (FFV1) and imagecodecs (HTJ2K, JPEG-LS, JPEG 2000 ... in DICOM files)
release it while they decode, and a DICOM source decodes the frames of one window on one thread per core
(:func:`semiostream.sources.read_dicom.decode_threads`), so threads (not processes) put every core the
engines leave free to work on decoding, and one long recording is not limited to one core.

On a GPU scorer, HTJ2K / JPEG 2000 DICOM archives skip the host entirely: each decoding thread runs the
DALI graph that decodes the window's codestreams on the device (nvJPEG2000) and preprocesses them there
(:class:`~semiostream.dali_pipes.pipeline_htj2k.Htj2kWindowPreprocessor`), and submits the model input
(:class:`~semiostream.engines.scorer.PreparedWindow`) instead of frames (``graph_decode``).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from .plan import JobPlan

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


class _GraphPreparer:
    """One DALI decode + preprocess graph per decoding thread (a DALI pipeline serves one thread)."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self._local = threading.local()

    def takes(self, source: Any) -> bool:
        from semiostream.dali_pipes.pipeline_htj2k import decodes_in_graph

        return decodes_in_graph(source)

    def __call__(self, source: Any, start: int, stop: int, roi: Any, intensity: Any) -> Any:
        """``PreparedWindow`` of frames ``[start, stop)``: ``[1, T, S, S]`` on the scorer's device, ready."""
        import torch

        from semiostream.dali_pipes.pipeline_htj2k import Htj2kWindowPreprocessor
        from semiostream.engines.scorer import PreparedWindow

        pre = getattr(self._local, "pre", None)
        if pre is None:
            pre = self._local.pre = Htj2kWindowPreprocessor(self.scorer.spec, self.scorer.device,
                                                            max_frames=self.scorer.spec.window)
        x = pre(source, start, stop, roi, intensity)
        if self.scorer.device.is_cuda:  # the scorer's stream reads it: finish this thread's work first
            torch.cuda.current_stream(self.scorer.device.torch).synchronize()
        return PreparedWindow(x.float())


def score_local(plans: Sequence[JobPlan], scorer: Any, on_done: OnDone, *, workers: int = 2,
                max_batch: int | None = None, max_wait_ms: float = 20.0, prefetch: int | None = None,
                progress: Any = None, graph_decode: bool | None = None) -> Any:
    """Score every plan's windows with ``scorer`` and call ``on_done`` once per plan, as each one completes.

    Args:
        plans: jobs with their windows (:func:`~.plan.plan_job`).
        scorer: an :class:`~semiostream.engines.scorer.Scorer`.
        on_done: called in this thread with ``(plan, probs [N] float32, None)`` or ``(plan, None, reason)``,
            as soon as all of a plan's windows are back (a long video does not hold back the short ones).
        workers: decoding threads.
        max_batch, max_wait_ms: dynamic batching (default: the scorer's ``max_batch``).
        prefetch: most decoded windows held at once (default ``2 * max_batch + workers``).
        progress: object with ``advance(n)`` (e.g. :class:`~.progress.WindowProgress`), or None.
        graph_decode: decode + preprocess HTJ2K DICOM windows in one DALI graph on the scorer's device
            (default: when the scorer runs on a GPU).

    Returns:
        The batcher's :class:`~semiostream.engines.batcher.BatcherStats` (requests, batches, largest batch).
    """
    batch = int(max_batch or scorer.max_batch)
    slots = threading.Semaphore(prefetch or 2 * batch + workers)
    stop = threading.Event()
    finished: queue.Queue = queue.Queue()  # (plan index, window futures or None, error or None)
    batcher = scorer.batcher(batch, max_wait_ms)
    prepare = _GraphPreparer(scorer) if (scorer.device.is_cuda if graph_decode is None else graph_decode) \
        else None

    def release(_: Future) -> None:
        slots.release()
        if progress is not None:
            progress.advance(1)

    def decode(index: int, plan: JobPlan) -> None:
        futures: list[Future] = []
        try:
            with plan.open() as src:  # at the planned rate
                in_graph = prepare is not None and prepare.takes(src)
                for w, (a, b) in enumerate(plan.ranges()):
                    try:
                        if in_graph:  # the model input, decoded and preprocessed on the device
                            item = (prepare(src, a, b, plan.roi, plan.intensity), None)
                        else:
                            item = (src.read(a, b), plan.roi, plan.intensity)  # [T, H, W] uint16
                    except Exception as e:
                        raise WindowFailed(w, e) from e
                    while not slots.acquire(timeout=0.2):
                        if stop.is_set():
                            raise _Cancelled
                    fut = batcher.submit(item)
                    fut.add_done_callback(release)
                    futures.append(fut)
        except BaseException as e:  # every plan reports exactly once
            finished.put((index, None, e))
            return
        left = [len(futures)]
        lock = threading.Lock()

        def one_done(_: Future) -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                finished.put((index, futures, None))

        for fut in futures:
            fut.add_done_callback(one_done)

    pool = cf.ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix="archive-decode")
    try:
        for i, plan in enumerate(plans):
            pool.submit(decode, i, plan)
        for _ in range(len(plans)):
            index, futures, err = finished.get()
            plan = plans[index]
            try:
                if err is not None:
                    raise err
                probs = np.array([_result(w, f) for w, f in enumerate(futures)], np.float32)
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
