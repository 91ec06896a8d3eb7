"""Progress of a scoring run in windows: a rich bar on a terminal, plain lines otherwise.

Windows finish in bursts (a whole inference batch at once, after a start-up that loads the model and
fills the first batch), so an instantaneous or since-the-start rate says little: the rate shown is the
**steady rate**, windows finished after the first burst divided by the time since it, and the ETA comes
from it. Before it can be measured the line says what it is waiting for. With the seconds of recording
each window moves on (``window_s``: hop / fps) the rate is also given as seconds of recording scored per
second (1.0 = real time).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

#: windows finished within this many seconds of the first one belong to the first burst (the first batch)
BURST_S = 0.5


def _eta(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class WindowProgress:
    """Thread-safe counter of scored windows with a display.

    Args:
        total: windows to score in this run.
        enabled: False for no output at all.
        interval_s: seconds between plain progress lines (when stderr is not a terminal).
        label: the line's first word(s).
        window_s: seconds of recording each window moves on (``hop / spec.fps``), or None.
        clock: seconds, monotonic (``time.perf_counter``; a test may pass its own).
    """

    def __init__(self, total: int, enabled: bool = True, interval_s: float = 10.0, label: str = "scoring",
                 window_s: float | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.total, self.enabled, self.interval_s, self.label = int(total), enabled, interval_s, label
        self.window_s = window_s
        self._clock = clock
        self.done = 0
        self.t0 = self._clock()
        self.t_first: float | None = None  # when the first window finished (startup excluded from steady_rate)
        self.first_done = 0  # windows of the first burst
        self._lock = threading.Lock()
        self._last_line = self.t0
        self._bar = self._task = None

    def rate(self) -> float:
        """Windows per second since the start (start-up included)."""
        dt = self._clock() - self.t0
        return self.done / dt if dt > 0 else 0.0

    def steady_rate(self) -> float:
        """Windows per second after the first burst (excludes model loading, actor start-up and the first
        batch); 0.0 until a window has finished after it."""
        if self.t_first is None or self.done <= self.first_done:
            return 0.0
        dt = self._clock() - self.t_first
        return (self.done - self.first_done) / dt if dt > 0 else 0.0

    def rate_text(self) -> str:
        """The rate and ETA part of the line (see the module docstring)."""
        now = self._clock()
        if self.t_first is None:
            return f"waiting for the first result ({now - self.t0:.0f} s: model start-up and first batch)"
        r = self.steady_rate()
        if r <= 0:
            return f"first results after {self.t_first - self.t0:.1f} s; measuring the rate"
        text = f"{r:.2f} windows/s"
        if self.window_s:
            text += f" ({r * self.window_s:.2f}x real time)"
        return text + f", ETA {_eta((self.total - self.done) / r)}"

    def line(self) -> str:
        return f"{self.label}: {self.done}/{self.total} windows, {self.rate_text()}"

    def advance(self, n: int = 1) -> None:
        with self._lock:
            now = self._clock()
            if self.t_first is None:
                self.t_first = now
            self.done += n
            if now - self.t_first <= BURST_S:
                self.first_done = self.done
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done)
            elif self.enabled and now - self._last_line >= self.interval_s:
                self._last_line = now
                print(self.line(), file=sys.stderr, flush=True)

    def __enter__(self) -> WindowProgress:
        self.t0 = self._last_line = self._clock()
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
            from rich.text import Text

            outer = self

            class Rate(ProgressColumn):
                def render(self, task) -> Text:
                    return Text(outer.rate_text())

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                 Rate(), console=Console(stderr=True), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        elif self.enabled:
            print(f"{self.label}: {self.total} windows ...", file=sys.stderr, flush=True)
        return self

    def summary_line(self) -> str:
        """The closing line: windows, time, first result, steady rate."""
        s = f"{self.label}: {self.done}/{self.total} windows in {_eta(self._clock() - self.t0)}"
        if self.t_first is not None:
            s += f" (first results after {self.t_first - self.t0:.1f} s)"
        r = self.steady_rate()
        if r > 0:
            s += f", {r:.2f} windows/s after them"
            if self.window_s:
                s += f" ({r * self.window_s:.2f}x real time: seconds of recording per second)"
        return s

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None
        elif self.enabled:
            print(self.summary_line(), file=sys.stderr, flush=True)
