"""Every refused message, window or request is counted by reason and logged at a bounded rate.

The count goes to Prometheus (``semiostream_dropped_total{reason}``) and to ``status``; the log gets
the first refusal of each reason at once, then at most one line per reason every ``interval_s`` with
how many were refused since, so a flood of bad messages cannot flood the log.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("semiostream.bus.refused")


class Refusals:
    """Counter + rate-limited log of refusals. Thread-safe (the ZAP thread refuses keys too).

    Args:
        counter: a Prometheus counter with one label, ``reason``.
        interval_s: at most one log line per reason per this many seconds.
    """

    def __init__(self, counter, interval_s: float = 10.0) -> None:
        self.counter = counter
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._last_log: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def __call__(self, reason: str, detail: str = "", n: int = 1) -> None:
        """Count ``n`` refusals for ``reason`` (``detail``: what and whose, for the log line)."""
        self.counter.labels(reason).inc(n)
        now = time.monotonic()
        with self._lock:
            self._since[reason] = self._since.get(reason, 0) + n
            last = self._last_log.get(reason)
            if last is not None and now - last < self.interval_s:
                return
            count, self._since[reason] = self._since[reason], 0
            self._last_log[reason] = now
        if last is None:
            log.warning("refused (%s): %s", reason, detail or "no detail")
        else:
            log.warning("refused (%s): %d in the last %.0f s; latest: %s", reason, count, now - last,
                        detail or "no detail")

    def counts(self) -> dict[str, int]:
        """``{reason: total}`` since the scorer started."""
        out = {}
        for metric in self.counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["reason"]] = int(sample.value)
        return out
