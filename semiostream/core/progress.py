"""Progress display helpers (rich), quiet when stderr is not a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """Show a spinner with ``message`` on a terminal; print the message once otherwise."""
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status(message):
            yield
    else:
        print(message, file=sys.stderr, flush=True)
        yield


@contextlib.contextmanager
def task_progress(message: str, total: int) -> Iterator[Callable[[int], None]]:
    """Progress bar on a terminal (rich), a start and end line otherwise; yields ``advance(done)``."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(message, total=total)
            yield lambda done: bar.update(task, completed=done)
    else:
        print(f"{message} ...", file=sys.stderr, flush=True)
        yield lambda done: None
        print(f"{message}: done", file=sys.stderr, flush=True)
