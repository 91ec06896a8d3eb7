"""Progress display for long trainer work: a rich bar on a terminal, sparse log lines otherwise."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Protocol


class Advance(Protocol):
    def __call__(self, n: int = 1, description: str | None = None) -> None: ...


@contextlib.contextmanager
def progress(description: str, total: int | None, enabled: bool = True) -> Iterator[Advance]:
    """Yield ``advance(n=1, description=None)``.

    On a terminal a rich progress bar with elapsed and remaining time; otherwise one line at the start,
    a line at most every 30 s, and one at the end (on stderr). ``enabled=False`` prints nothing.
    """
    if not enabled:
        yield lambda n=1, description=None: None
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TimeRemainingColumn())
        with Progress(*cols, console=Console(stderr=True), transient=False) as bar:
            task = bar.add_task(description, total=total)

            def advance(n: int = 1, description: str | None = None) -> None:
                bar.update(task, advance=n, **({"description": description} if description else {}))

            yield advance
        return
    state = {"done": 0, "last": time.monotonic()}
    print(f"{description} (0/{total if total is not None else '?'})", file=sys.stderr, flush=True)

    def advance(n: int = 1, description: str | None = None) -> None:
        state["done"] += n
        now = time.monotonic()
        if now - state["last"] >= 30:
            state["last"] = now
            print(f"  {description or ''} {state['done']}/{total if total is not None else '?'}".rstrip(),
                  file=sys.stderr, flush=True)

    yield advance
    print(f"{description}: done ({state['done']}/{total if total is not None else '?'})", file=sys.stderr,
          flush=True)
