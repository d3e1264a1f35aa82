"""The RAW sensor in Airflow's own venv, with a stand-in for Pulse's probe (an executable that answers as the
probe does): a partition already there is never deferred for; a missing one is, and its trigger waits before
it looks again (a trigger that fires at once races Airflow's scheduler, which then fails the task)."""

from __future__ import annotations

from pathlib import Path

from pulse.services.airflow import PLUGINS_FOLDER

from .airflow_venv import run_json

SCRIPT = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
from airflow.sdk.exceptions import TaskDeferred
from pulse_airflow.raw_sensor import RawPartitionSensor, RawPartitionTrigger

sensor = RawPartitionSensor(task_id="wait_for_raw", source="s", day="2026-11-10", python=sys.argv[2],
                            poke_seconds=float(sys.argv[3]), timeout=60)
out = {}
try:
    out["returned"] = sensor.execute({})
except TaskDeferred as deferred:
    trigger = deferred.trigger
    out["deferred"] = trigger.serialize()[1]
    async def first_event():
        t0 = time.monotonic()
        async for event in trigger.run():
            return event.payload, time.monotonic() - t0
    out["event"], out["waited"] = asyncio.run(first_event())
except RuntimeError as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


def fake_probe(tmp: Path, answers: list[int]) -> Path:
    """An executable that answers the n-th call with answers[n] (exit code; 0 prints a manifest's summary)."""
    probe, calls = tmp / "python", tmp / "calls"
    probe.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {calls} 2>/dev/null || echo 0); echo $((n + 1)) > {calls}\n"
        f"set -- {' '.join(map(str, answers))}; shift $n; code=$1\n"
        '[ "$code" = 0 ] && echo \'{"source": "s", "ingest_date": "2026-11-10", "rows": 7}\'\n'
        '[ "$code" = 1 ] && echo "S3: access denied" >&2\n'
        "exit $code\n"
    )
    probe.chmod(0o755)
    return probe


def run_sensor(probe: Path, poke_seconds: float = 0.5) -> dict:
    args = [str(PLUGINS_FOLDER), str(probe), str(poke_seconds)]
    return run_json(SCRIPT, args, {"AIRFLOW_HOME": str(probe.parent)}, timeout=120)


def calls(probe: Path) -> int:
    return int((probe.parent / "calls").read_text())


def test_a_partition_already_there_is_not_deferred_for(tmp_path):
    probe = fake_probe(tmp_path, [0])
    assert run_sensor(probe) == {"returned": {"source": "s", "ingest_date": "2026-11-10", "rows": 7}}
    assert calls(probe) == 1


def test_a_missing_partition_is_waited_for_and_the_trigger_waits_before_it_looks(tmp_path):
    probe = fake_probe(tmp_path, [3, 3, 0])
    out = run_sensor(probe, poke_seconds=0.5)
    assert out["deferred"] == {"source": "s", "day": "2026-11-10", "python": str(probe), "poke_seconds": 0.5}
    assert out["event"] == {"status": "ready", "manifest": {"source": "s", "ingest_date": "2026-11-10", "rows": 7}}
    assert out["waited"] >= 1.0 and calls(probe) == 3  # two waits: never a look right after the deferral


def test_a_failing_check_fails_the_sensor_with_its_error(tmp_path):
    out = run_sensor(fake_probe(tmp_path, [1]))
    assert "checking RAW partition s/2026-11-10 failed" in out["error"] and "access denied" in out["error"]
