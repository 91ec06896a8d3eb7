"""Dynamic batching across callers.

Many callers (one per bed, archive workers ...) :meth:`DynamicBatcher.submit` single requests and get a
:class:`concurrent.futures.Future` each. One worker thread collects requests into a batch until it holds
``max_batch`` requests or ``max_wait_ms`` have passed since the batch's first request, then calls
``batch_fn(items) -> results`` once. Errors stay per request:

* ``validate(item)`` (optional) runs in :meth:`submit`'s caller thread; a bad item's future fails at once
  and never joins a batch;
* if ``batch_fn`` raises for a batch of several items, each item is retried alone, so only the items that
  fail on their own get the exception; the others get their results.

Typical use: ``DynamicBatcher(lambda reqs: scorer.score_windows([w for w, _ in reqs], [r for _, r in reqs]),
validate=...)`` (see :meth:`semiostream.engines.scorer.Scorer.batcher`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from semiostream.core.batching import LIVE_MAX_BATCH_GPU

log = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """:meth:`DynamicBatcher.submit` after :meth:`DynamicBatcher.close`."""


@dataclass
class BatcherStats:
    requests: int = 0
    batches: int = 0
    failed: int = 0
    retried_batches: int = 0
    max_batch_seen: int = 0


_STOP = object()


class DynamicBatcher:
    """Thread-safe dynamic batcher.

    Args:
        batch_fn: ``items -> results``, one result per item in order (a sequence, numpy array or tensor of
            length ``len(items)``). Called from the batcher's single worker thread only.
        max_batch: most items per call (default: the live scorer's on a GPU).
        max_wait_ms: longest time the first request of a batch waits for company.
        validate: optional per-item check, raising for a bad item (runs in the submitting thread).
        on_batch: optional observer called with the size of each batch before it runs (e.g. a metrics
            histogram); it must be cheap and must not raise.
        name: worker thread name.
    """

    def __init__(self, batch_fn: Callable[[list[Any]], Sequence[Any]], max_batch: int = LIVE_MAX_BATCH_GPU,
                 max_wait_ms: float = 20.0, validate: Callable[[Any], None] | None = None,
                 name: str = "semiostream-batcher", on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch={max_batch} must be >= 1")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms={max_wait_ms} must be >= 0")
        self.batch_fn = batch_fn
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.validate = validate
        self.on_batch = on_batch
        self.stats = BatcherStats()
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------------------------------------
    def submit(self, item: Any) -> Future:
        """Queue one request; its future resolves to its result or raises its own error."""
        fut: Future = Future()
        if self.validate is not None:
            try:
                self.validate(item)
            except Exception as e:
                fut.set_exception(e)
                with self._close_lock:
                    self.stats.requests += 1
                    self.stats.failed += 1
                return fut
        with self._close_lock:  # no submit may slip in behind the stop marker
            if self._closed:
                raise BatcherClosed("the batcher is closed; create a new one")
            self.stats.requests += 1
            self._queue.put((item, fut))
        return fut

    def __call__(self, item: Any, timeout: float | None = None) -> Any:
        """Submit and wait: the result for ``item`` (or its exception)."""
        return self.submit(item).result(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting requests, finish the queued ones, and join the worker."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    def __enter__(self) -> DynamicBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._run([b for b in batch if b[1].set_running_or_notify_cancel()])

    def _run(self, batch: list[tuple[Any, Future]]) -> None:
        if not batch:
            return
        self.stats.batches += 1
        self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(batch))
        if self.on_batch is not None:
            self.on_batch(len(batch))
        try:
            results = self._call([item for item, _ in batch])
        except Exception as e:
            if len(batch) == 1:
                self.stats.failed += 1
                batch[0][1].set_exception(e)
                return
            # find the culprit(s): every item alone; only those that fail alone get an error
            self.stats.retried_batches += 1
            log.debug("batch of %d failed (%s); retrying items one by one", len(batch), e)
            for item, fut in batch:
                try:
                    fut.set_result(self._call([item])[0])
                except Exception as e1:
                    self.stats.failed += 1
                    fut.set_exception(e1)
            return
        for (_, fut), res in zip(batch, results, strict=True):
            fut.set_result(res)

    def _call(self, items: list[Any]) -> Sequence[Any]:
        results = self.batch_fn(items)
        if len(results) != len(items):
            raise RuntimeError(f"batch_fn returned {len(results)} results for {len(items)} items")
        return results
