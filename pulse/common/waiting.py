"""Waiting for a condition, not for time: poll a predicate until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], *, what: str, timeout: float = 30.0, interval: float = 0.05) -> T:
    """The first truthy value `condition()` returns; TimeoutError saying what was awaited (and the last
    value seen) once `timeout` seconds pass. The interval grows to at most 1 s, so a long wait costs little."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout:g} s waiting for {what} (last seen: {value!r})")
        time.sleep(interval)
        interval = min(interval * 1.5, 1.0)
