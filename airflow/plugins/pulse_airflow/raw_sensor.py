"""A deferrable sensor for a committed RAW partition (the manifest of a source's ingest date).

While it waits, the task gives its worker slot back: the triggerer polls by running Pulse's probe
(``python -m pulse.dag_tasks.probe``) in Pulse's venv, which reads the manifest from S3 with
Pulse's config. The sensor fails after its timeout (the alert says so) if the partition never comes.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from airflow.sdk import BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

NOT_YET = 3  # pulse.dag_tasks.probe's exit code while the partition is missing


class RawPartitionTrigger(BaseTrigger):
    def __init__(self, source: str, day: str, python: str, poke_seconds: float = 60.0) -> None:
        super().__init__()
        self.source, self.day, self.python, self.poke_seconds = source, day, python, poke_seconds

    def serialize(self):
        return (
            "pulse_airflow.raw_sensor.RawPartitionTrigger",
            {"source": self.source, "day": self.day, "python": self.python, "poke_seconds": self.poke_seconds},
        )

    async def run(self):
        while True:
            proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "pulse.dag_tasks.probe", self.source, self.day,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            if proc.returncode == 0:
                yield TriggerEvent({"status": "ready", "manifest": json.loads(out.decode() or "{}")})
                return
            if proc.returncode != NOT_YET:
                yield TriggerEvent({"status": "error", "message": err.decode(errors="replace")[-2000:]})
                return
            self.log.info("RAW partition %s/ingest_date=%s not committed yet", self.source, self.day)
            await asyncio.sleep(self.poke_seconds)


class RawPartitionSensor(BaseSensorOperator):
    template_fields = ("source", "day")

    def __init__(self, *, source: str, day: str, python: str, poke_seconds: float = 60.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source, self.day, self.python, self.poke_seconds = source, day, python, poke_seconds

    def execute(self, context):
        self.defer(
            trigger=RawPartitionTrigger(self.source, self.day, self.python, self.poke_seconds),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context, event=None):
        if not event or event.get("status") != "ready":
            raise RuntimeError(f"checking RAW partition {self.source}/{self.day} failed: {(event or {}).get('message')}")
        self.log.info("RAW partition committed: %s", event["manifest"])
        return event["manifest"]
