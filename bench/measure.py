"""Peak-memory sampling shared by the benchmarks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path


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


def write_results(kind: str, results: list[dict]) -> Path:
    """bench/results/<kind>-<UTC time>.json; prints where it went."""
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"\nresults: {path}")
    return path
