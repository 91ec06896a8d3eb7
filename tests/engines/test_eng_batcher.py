"""DynamicBatcher under concurrent load: batching, per-request errors, max wait, shutdown."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from semiostream.engines.batcher import BatcherClosed, DynamicBatcher


class Doubler:
    """Batch function: doubles numbers; a negative number makes the whole batch call fail."""

    def __init__(self, delay: float = 0.002) -> None:
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, items):
        self.sizes.append(len(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)  # kept: the batch's compute time, during which the next requests queue up
        bad = [x for x in items if x < 0]
        if bad:
            raise ValueError(f"negative input {bad[0]}")
        return [2 * x for x in items]


def test_concurrent_callers_get_their_own_results_in_batches():
    fn = Doubler()
    with DynamicBatcher(fn, max_batch=8, max_wait_ms=5) as b:
        def client(k: int) -> list[tuple[int, int]]:
            futs = [(v, b.submit(v)) for v in range(k * 100, k * 100 + 25)]
            return [(v, f.result(timeout=10)) for v, f in futs]

        with ThreadPoolExecutor(8) as pool:
            results = [r for rs in pool.map(client, range(8)) for r in rs]
    assert len(results) == 200 and all(out == 2 * v for v, out in results)
    assert max(fn.sizes) <= 8 and max(fn.sizes) > 1  # batching happened, never above max_batch
    assert sum(fn.sizes) == 200 and len(fn.threads) == 1  # one worker thread calls batch_fn


def test_one_bad_request_fails_only_itself_under_load():
    fn = Doubler()
    b = DynamicBatcher(fn, max_batch=16, max_wait_ms=20)
    start = threading.Barrier(6)

    def client(k: int):
        start.wait()
        values = [k * 10 + i for i in range(5)] + ([-1] if k == 3 else [])
        return [(v, b.submit(v)) for v in values]

    with ThreadPoolExecutor(6) as pool:
        futs = [f for fs in pool.map(client, range(6)) for f in fs]
    good = bad = 0
    for v, f in futs:
        if v < 0:
            with pytest.raises(ValueError, match="negative input -1"):
                f.result(timeout=10)
            bad += 1
        else:
            assert f.result(timeout=10) == 2 * v
            good += 1
    b.close()
    assert (good, bad) == (30, 1)
    assert b.stats.failed == 1 and b.stats.retried_batches >= 1


def test_validate_rejects_at_submit_without_touching_the_batch():
    fn = Doubler()

    def validate(x):
        if not isinstance(x, int):
            raise TypeError(f"{x!r} is not an int")

    with DynamicBatcher(fn, max_batch=4, max_wait_ms=1, validate=validate) as b:
        bad = b.submit("seven")
        assert bad.done()
        with pytest.raises(TypeError, match="'seven' is not an int"):
            bad.result()
        assert b(21) == 42
    assert sum(fn.sizes) == 1


def test_a_lone_request_waits_at_most_max_wait():
    fn = Doubler(delay=0.0)
    with DynamicBatcher(fn, max_batch=64, max_wait_ms=50) as b:
        t0 = time.perf_counter()
        assert b.submit(1).result(timeout=5) == 2
        waited = time.perf_counter() - t0
    assert 0.04 <= waited < 0.5


def test_close_finishes_queued_work_then_refuses():
    fn = Doubler(delay=0.01)
    b = DynamicBatcher(fn, max_batch=2, max_wait_ms=0)
    futs = [b.submit(i) for i in range(7)]
    b.close()
    assert [f.result(timeout=0) for f in futs] == [2 * i for i in range(7)]
    with pytest.raises(BatcherClosed):
        b.submit(1)


def test_wrong_result_count_is_an_error_for_the_requests():
    with DynamicBatcher(lambda items: [0], max_batch=4, max_wait_ms=20) as b:
        futs = [b.submit(i) for i in range(3)]
        # alone, each item returns one result: the retry path serves them
        assert [f.result(timeout=5) for f in futs] == [0, 0, 0]
    with DynamicBatcher(lambda items: [], max_batch=4, max_wait_ms=1) as b:
        with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
            b(5, timeout=5)


def test_on_batch_observes_every_batch_size():
    from semiostream.engines.batcher import DynamicBatcher

    sizes: list[int] = []
    with DynamicBatcher(lambda items: [x * 2 for x in items], max_batch=4, max_wait_ms=200,
                        on_batch=sizes.append) as b:
        futures = [b.submit(i) for i in range(10)]
        assert [f.result(5) for f in futures] == [2 * i for i in range(10)]
    assert sum(sizes) == 10 and max(sizes) <= 4 and len(sizes) >= 3
