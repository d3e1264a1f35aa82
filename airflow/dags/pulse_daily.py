"""Pulse's DAGs (Airflow 3): ``pulse_daily`` runs the platform for one day, ``pulse_bi_refresh`` refreshes
the dashboards whenever new ML output lands (data-aware: scheduled on the ``ml_output`` asset).

pulse_daily, for day D (the day before the run's logical date, or ``params.day``):
  wait_for_raw (deferrable: D's RAW partition committed) → clean (Spark: RAW → Postgres staging)
  → build_marts (dbt build + tests, published only when all pass; asset ``marts``)
  → forecast ∥ segment (ML as of D) → ml_output (D's forecasts, scores, segments, forecast check)
  → data_alert (D's actual DAU/revenue outside the forecast's interval → alert; asset ``ml_output``, whose
  event names the source)
pulse_bi_refresh: which_source (the triggering event's source) → refresh_bi (the memo, dashboards deployed
  if changed, every chart's cache refreshed).

Every Pulse step runs in Pulse's own venv through ``@task.external_python`` and calls ``pulse.pipeline``
(via ``pulse.dag_tasks``): Airflow's venv never imports pyspark, dbt or scikit-learn. Each task is
idempotent for its day (a full refresh of the source, dbt's write–audit–publish, ML rows keyed by the day's
run id, ml_output rows replaced per day), so re-running a day gives the same state.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, Asset, Param, task
from airflow.timetables.trigger import CronTriggerTimetable
from pulse_airflow.alerts import on_dag_failure, on_task_failure, send
from pulse_airflow.raw_sensor import RawPartitionSensor


def pulse_setting(name: str) -> str:
    """One of Pulse's settings, as Pulse's Airflow service passes them (pulse.services.airflow.dag_environment):
    the configuration has one home, pulse/config.py, and this file keeps no copy of its defaults."""
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(f"{name} is not set: run Airflow through `pulse services up airflow`, or set it as "
                           "pulse.services.airflow.dag_environment() does") from None  # fmt: skip


PYTHON = pulse_setting("PULSE_PYTHON")  # Pulse's venv
SOURCE = pulse_setting("PULSE_AIRFLOW_SOURCE")
SCHEDULE = pulse_setting("PULSE_AIRFLOW_SCHEDULE")
RETRIES = int(pulse_setting("PULSE_AIRFLOW_RETRIES"))
RAW_WAIT = timedelta(hours=float(pulse_setting("PULSE_AIRFLOW_RAW_WAIT_HOURS")))

MARTS = Asset(name="pulse_marts", uri="pulse://clickhouse/marts")
ML_OUTPUT = Asset(name="pulse_ml_output", uri="pulse://clickhouse/ml_output")

SRC = "{{ params.source }}"
DAY = "{{ params.day or macros.ds_add(ds, -1) }}"  # Airflow 3 dates a run by when it is due: D's run is due on D+1

default_args = {
    "owner": "pulse",
    "retries": RETRIES,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=1),
    "on_failure_callback": on_task_failure,
}

# Pulse's steps run in Pulse's venv, a fresh interpreter per try: @task.external_python(python=PYTHON, …)
# (spelled out on each task: Airflow strips only its own decorators from the source it ships to that venv)

with DAG(
    dag_id="pulse_daily",
    description="RAW partition → staging → marts → forecasts and segments → ml_output → data alert",
    doc_md=__doc__,
    # no start date: the first scheduled run is the next one due, never a past day the moment it is unpaused
    schedule=CronTriggerTimetable(SCHEDULE, timezone="UTC", run_immediately=False),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=4),
    default_args=default_args,
    on_failure_callback=on_dag_failure,
    params={
        "source": Param(SOURCE, type="string", pattern="^[a-z][a-z0-9_]{0,39}$"),
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="the day to process (default: the day before the logical date)",
        ),
    },
    tags=["pulse", "daily"],
):
    wait_for_raw = RawPartitionSensor(
        task_id="wait_for_raw", source=SRC, day=DAY, python=PYTHON, poke_seconds=60, timeout=RAW_WAIT.total_seconds(), retries=0
    )

    @task.external_python(task_id="clean", python=PYTHON, expect_airflow=False)
    def clean(source: str, day: str) -> dict:
        from pulse import dag_tasks as tasks

        return tasks.clean(source, day)

    @task.external_python(task_id="build_marts", python=PYTHON, expect_airflow=False, outlets=[MARTS])
    def build_marts(source: str) -> dict:
        from pulse import dag_tasks as tasks

        return tasks.build_marts(source)

    @task.external_python(task_id="forecast", python=PYTHON, expect_airflow=False)
    def forecast(source: str, day: str) -> dict:
        from pulse import dag_tasks as tasks

        return tasks.forecast(source, day)

    @task.external_python(task_id="segment", python=PYTHON, expect_airflow=False)
    def segment(source: str, day: str) -> dict:
        from pulse import dag_tasks as tasks

        return tasks.segment(source, day)

    @task.external_python(task_id="ml_output", python=PYTHON, expect_airflow=False)
    def ml_output(source: str, day: str, dag_run_id: str) -> dict:
        from pulse import dag_tasks as tasks

        return tasks.ml_output(source, day, dag_run_id)

    @task(task_id="data_alert", outlets=[ML_OUTPUT])
    def data_alert(output: dict, **context) -> dict:
        """A real anomaly alert: the day's actual DAU or revenue outside the forecast's 80 % interval.
        Then the day's ml_output is final: its asset event names the source and day (the BI refresh follows it)."""
        context["outlet_events"][ML_OUTPUT].extra = {"source": context["params"]["source"], "table": output["table"]}
        outside = [c for c in output["checks"] if c["outside"]]
        if not output["checks"]:
            return {"checked": 0, "outside": [], "sent": {}}
        sent = {}
        if outside:
            day = outside[0]["day"]
            text = "\n".join(c["text"] for c in outside)
            text += f"\nDAG: {context['dag'].dag_id}\nrun: {context['run_id']}\nml_output: {output['table']}"
            sent = send(
                f"[Pulse] data alert: {', '.join(c['metric'] for c in outside)} outside the forecast on {day}", text, context
            )
        return {"checked": len(output["checks"]), "outside": [c["metric"] for c in outside], "sent": sent}

    cleaned = clean(SRC, DAY)
    marts = build_marts(SRC)
    output = ml_output(SRC, DAY, "{{ run_id }}")
    wait_for_raw >> cleaned >> marts >> [forecast(SRC, DAY), segment(SRC, DAY)] >> output
    data_alert(output)


with DAG(
    dag_id="pulse_bi_refresh",
    description="the memo and the dashboards refreshed whenever new ML output lands",
    doc_md=__doc__,
    schedule=[ML_OUTPUT],
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    on_failure_callback=on_dag_failure,
    params={"source": Param(SOURCE, type="string", pattern="^[a-z][a-z0-9_]{0,39}$")},
    tags=["pulse", "bi"],
):

    @task(task_id="which_source")
    def which_source(**context) -> str:
        """The source whose ml_output set this run off (from the asset event), else ``params.source``."""
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in reversed(list(events)):
                if (event.extra or {}).get("source"):
                    return event.extra["source"]
        return context["params"]["source"]

    @task.external_python(task_id="refresh_bi", python=PYTHON, expect_airflow=False)
    def refresh_bi(source: str) -> dict:
        from pulse import dag_tasks as tasks

        return tasks.refresh_bi(source)

    refresh_bi(which_source())
