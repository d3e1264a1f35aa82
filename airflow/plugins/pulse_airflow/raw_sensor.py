"""A deferrable sensor for a committed RAW partition (the manifest of a source's ingest date).

The sensor checks once in the worker; only a partition not there yet is waited for. While it waits, the
task gives its worker slot back: the triggerer polls by running Pulse's probe (``python -m
pulse.dag_tasks.probe``) in Pulse's venv, which reads the manifest from S3 with Pulse's config. The sensor
fails after its timeout (the alert says so) if the partition never comes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta

from airflow.sdk import BaseSensorOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

NOT_YET = 3  # pulse.dag_tasks.probe's exit code while the partition is missing
PROBE_TIMEOUT_S = 300


def probe_command(python: str, source: str, day: str) -> list[str]:
    return [python, "-m", "pulse.dag_tasks.probe", source, day]


def probe_event(returncode: int, out: str, err: str) -> TriggerEvent | None:
    """The probe's outcome as the trigger's event: ready (with the manifest's summary), error, or None (not yet)."""
    if returncode == 0:
        return TriggerEvent({"status": "ready", "manifest": json.loads(out or "{}")})
    if returncode != NOT_YET:
        return TriggerEvent({"status": "error", "message": err[-2000:]})
    return None


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
            # a wait first: the sensor has just looked. A trigger that fires within seconds of the deferral
            # races the scheduler, which then fails the resumed task (apache/airflow#66374, #67287, #72716)
            await asyncio.sleep(self.poke_seconds)
            proc = await asyncio.create_subprocess_exec(
                *probe_command(self.python, self.source, self.day),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            event = probe_event(proc.returncode, out.decode(), err.decode(errors="replace"))
            if event is not None:
                yield event
                return
            self.log.info("RAW partition %s/ingest_date=%s not committed yet", self.source, self.day)


class RawPartitionSensor(BaseSensorOperator):
    template_fields = ("source", "day")

    def __init__(self, *, source: str, day: str, python: str, poke_seconds: float = 60.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source, self.day, self.python, self.poke_seconds = source, day, python, poke_seconds

    def execute(self, context):
        done = subprocess.run(
            probe_command(self.python, self.source, self.day), capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
        event = probe_event(done.returncode, done.stdout, done.stderr)
        if event is not None:  # there already (the usual case), or the check itself failed: no deferral
            return self.execute_complete(context, event.payload)
        self.log.info("RAW partition %s/ingest_date=%s not committed yet: waiting", self.source, self.day)
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
