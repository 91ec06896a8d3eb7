"""The tests' wait helper: it returns the first value that meets the condition, and fails saying what it
waited for and what it saw last."""

from __future__ import annotations

import time

import pytest
from waiting import wait_until


def test_returns_the_first_truthy_value_without_waiting_out_the_deadline():
    values = iter([0, None, "", 7, 8])
    t0 = time.monotonic()
    assert wait_until(lambda: next(values), timeout=30) == 7
    assert time.monotonic() - t0 < 5


def test_until_decides_and_falsy_values_can_be_returned():
    values = iter([3, 2, 1, 0, -1])
    assert wait_until(lambda: next(values), timeout=30, until=lambda v: v <= 0) == 0


def test_fails_naming_what_and_the_last_value():
    with pytest.raises(AssertionError, match=r"waited 0.05 s for the answer; last value: 41$"):
        wait_until(lambda: 41, timeout=0.05, until=lambda v: v == 42, what="the answer")


def test_fails_naming_the_condition_by_its_source():
    with pytest.raises(AssertionError, match=r"for wait_until\(lambda: len\(\[\]\) > 0, .*; last value: False"):
        wait_until(lambda: len([]) > 0, timeout=0.01)
