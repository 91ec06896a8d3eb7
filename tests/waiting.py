"""Waiting in tests: poll for the condition a test needs, up to a deadline, instead of sleeping a guessed time.

A wait returns as soon as the condition holds (fast on an idle machine) and fails with what it waited for
and the last value seen (clear on a loaded one).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(get: Callable[[], T], timeout: float = 60.0, until: Callable[[T], object] | None = None,
               what: str = "", every: float = 0.05) -> T:
    """Call ``get()`` until its value is truthy (or ``until(value)`` is, when given) and return that value.

    Polls quickly at first (1 ms, doubling up to ``every`` s). After ``timeout`` s the test fails
    (AssertionError) naming ``what`` (default: the condition's source line) and the last value.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        value = get()
        if until(value) if until is not None else value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"waited {timeout:g} s for {what or _source(until or get)}; "
                                 f"last value: {_short(value)}")
        time.sleep(min(pause, every, left))  # the pause between two polls
        pause *= 2


def _source(fn: Callable) -> str:
    try:
        return " ".join(inspect.getsource(fn).split())[:300]
    except (OSError, TypeError):
        return repr(fn)


def _short(value: object, limit: int = 2000) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."
