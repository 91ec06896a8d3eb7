"""Progress of a scoring run in windows: a rich bar with windows/s and ETA on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time


def _eta(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class WindowProgress:
    """Thread-safe counter of scored windows with a display.

    Args:
        total: windows to score in this run.
        enabled: False for no output at all.
        interval_s: seconds between plain progress lines (when stderr is not a terminal).
    """

    def __init__(self, total: int, enabled: bool = True, interval_s: float = 10.0, label: str = "scoring") -> None:
        self.total, self.enabled, self.interval_s, self.label = int(total), enabled, interval_s, label
        self.done = 0
        self.t0 = time.perf_counter()
        self.t_first: float | None = None  # when the first window finished (startup excluded from steady_rate)
        self._lock = threading.Lock()
        self._last_line = self.t0
        self._bar = self._task = None

    def rate(self) -> float:
        """Windows per second since the start."""
        dt = time.perf_counter() - self.t0
        return self.done / dt if dt > 0 else 0.0

    def steady_rate(self) -> float:
        """Windows per second after the first result (excludes model loading / actor start-up)."""
        if self.t_first is None or self.done < 2:
            return 0.0
        dt = time.perf_counter() - self.t_first
        return (self.done - 1) / dt if dt > 0 else 0.0

    def line(self) -> str:
        r = self.rate()
        eta = _eta((self.total - self.done) / r) if r > 0 else "?"
        return f"{self.label}: {self.done}/{self.total} windows, {r:.2f} windows/s, ETA {eta}"

    def advance(self, n: int = 1) -> None:
        with self._lock:
            if self.t_first is None:
                self.t_first = time.perf_counter()
            self.done += n
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done)
            elif self.enabled and time.perf_counter() - self._last_line >= self.interval_s:
                self._last_line = time.perf_counter()
                print(self.line(), file=sys.stderr, flush=True)

    def __enter__(self) -> WindowProgress:
        self.t0 = self._last_line = time.perf_counter()
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                ProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.text import Text

            class Rate(ProgressColumn):
                def render(self, task) -> Text:
                    return Text(f"{task.speed or 0:.2f} windows/s")

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                                 TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True),
                                 transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        elif self.enabled:
            print(f"{self.label}: {self.total} windows ...", file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        elif self.enabled:
            print(f"{self.label}: {self.done}/{self.total} windows in {_eta(time.perf_counter() - self.t0)}, "
                  f"{self.rate():.2f} windows/s", file=sys.stderr, flush=True)
