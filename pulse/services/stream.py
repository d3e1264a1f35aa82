"""The streaming job as a background service: the Spark Structured Streaming query, run by the
service manager with its own pid and log (``python -m pulse.streaming.job``).

It answers on no port; it is healthy while its process lives and its progress file (written after
every micro-batch and on idle triggers) is fresh.
"""

from __future__ import annotations

import json
import os
import sys
import time

from pulse.services.base import ManagedProcess

STALE_AFTER_S = 60.0


class StreamJob(ManagedProcess):
    name = "stream"
    start_timeout = 120.0  # a JVM, the Kafka source and the first (catch-up) batch

    @property
    def managed(self) -> bool:
        return True  # a job of this installation, reading whichever Kafka and ClickHouse are configured

    @property
    def port(self) -> None:
        return None

    @property
    def endpoint(self) -> str:
        cfg = self.settings
        return f"{cfg.stream.topic} -> {cfg.clickhouse.realtime_database}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "pulse.streaming.job"]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PULSE_HOME": str(self.settings.home)}

    def prepare(self) -> None:
        self.settings.stream_progress_file.unlink(missing_ok=True)  # health is judged on this run's progress

    def healthy(self) -> tuple[bool, str]:
        if self.pid() is None:
            return False, "not running"
        try:
            path = self.settings.stream_progress_file
            age = time.time() - path.stat().st_mtime
            p = json.loads(path.read_text())
        except (OSError, ValueError):
            return False, "starting (no progress yet)"
        detail = (
            f"batch {p['batch_id']} · in {p['input_rate']:,}/s · processed {p['processed_rate']:,}/s · "
            f"batch {p['batch_ms']} ms · behind {p['offsets_behind'] if p['offsets_behind'] is not None else '?'} msgs"
        )
        if age > max(STALE_AFTER_S, 10 * self.settings.stream.trigger_seconds):
            return False, f"no progress for {age:.0f}s; last: {detail}"
        return True, detail
