"""Peak-memory sampling and the engine-agreement checks shared by the benchmarks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil


class PeakRss:
    """Peak of ``sample()`` (MiB), taken every 100 ms while the block runs."""

    def __init__(self, sample: Callable[[], float]) -> None:
        self.sample, self.peak, self._stop = sample, 0.0, threading.Event()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.sample())
            except Exception:  # the process went away: keep the peak seen so far
                return
            time.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


DISAGREEMENTS: list[str] = []  # a benchmark is also a large-input test: what two engines did not agree on


def agree(what: str, got, expected) -> bool:
    """Record (and print) whether two computations of the same figure agree; exit_code() turns any
    disagreement into a failing run, so a benchmark never reports speed for a wrong answer."""
    ok = got == expected
    print(f"    {'agree' if ok else 'DISAGREE'}: {what}: {got!r} vs {expected!r}", flush=True)
    if not ok:
        DISAGREEMENTS.append(f"{what}: {got!r} != {expected!r}")
    return ok


def exit_code() -> int:
    for line in DISAGREEMENTS:
        print(f"ENGINES DISAGREE: {line}")
    return 1 if DISAGREEMENTS else 0


def write_results(kind: str, results: list[dict]) -> Path:
    """bench/results/<kind>-<UTC time>.json; prints where it went."""
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {path}")
    return path


class Sampler:
    """CPU (% of one core) and RSS of process trees, sampled every second."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids, self.cpu, self.rss = pids, {k: [] for k in pids}, {k: 0.0 for k in pids}
        self._stop = threading.Event()

    def _procs(self, pid: int) -> list[psutil.Process]:
        try:
            p = psutil.Process(pid)
            return [p, *p.children(recursive=True)]
        except psutil.Error:
            return []

    def _loop(self) -> None:
        last: dict[str, float] = {}
        while not self._stop.wait(1.0):
            for name, pid in self.pids.items():
                procs = self._procs(pid)
                cpu = rss = 0.0
                for p in procs:
                    try:
                        t = p.cpu_times()
                        cpu += t.user + t.system + t.children_user + t.children_system
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                if name in last:
                    self.cpu[name].append(max(0.0, cpu - last[name]) * 100)
                last[name] = cpu
                self.rss[name] = max(self.rss[name], rss / 2**20)

    def __enter__(self) -> Sampler:
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
