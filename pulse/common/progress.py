"""Progress lines for long steps: what is happening, how far along, how fast."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import psutil


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tree_rss_mb(pid: int | None = None) -> float:
    """RSS of a process (default: this one) plus its live children, in MiB."""
    proc = psutil.Process(pid)
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:  # a child exited while we walked the tree
        procs = [proc]
    total = 0
    for p in procs:
        with suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


class Step:
    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.rows = 0
        self._last_print = 0.0

    @property
    def seconds(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    def update(self, rows: int, note: str = "", force: bool = False) -> None:
        self.rows += rows
        now = time.perf_counter()
        if not force and now - self._last_print < 2.0:  # at most one line every 2 s
            return
        self._last_print = now
        rate = self.rows / self.seconds if self.seconds > 0 else 0
        say(f"    {self.name}: {self.rows:,} rows, {rate:,.0f} rows/s {note}".rstrip())


@contextmanager
def step(name: str) -> Iterator[Step]:
    say(f"==> {name}")
    s = Step(name)
    yield s
    s.ended = time.perf_counter()
    rate = f", {s.rows / s.seconds:,.0f} rows/s" if s.rows else ""
    say(f"    done in {s.seconds:.1f}s{rate}")


def ticker(label: str, every: float = 2.0) -> Callable[[int, int], None]:
    """``tick(done, total)``: a ``label: done/total, elapsed`` line at most every ``every`` seconds, and at the end."""
    started = time.perf_counter()
    last = [0.0]

    def tick(done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - last[0] < every:
            return
        last[0] = now
        say(f"    {label}: {done}/{total}, {now - started:.0f} s")

    return tick
