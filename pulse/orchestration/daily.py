"""One day through Airflow, as the CLI and the demo ask for it: trigger ``pulse_daily`` for the day, follow
it to the end, then follow the BI refresh its ``ml_output`` asset set off; return what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pulse.common import pg
from pulse.config import Settings
from pulse.orchestration.airflow_api import BI_DAG, DAILY_DAG, AirflowClient

BI_APPEAR_S = 120  # the asset-triggered BI refresh shows up a scheduler loop after the event


@dataclass
class DayRun:
    day: str
    source: str
    run_id: str
    state: str
    seconds: float | None
    url: str
    tasks: dict[str, tuple[str, float | None]] = field(default_factory=dict)  # task -> (state, seconds)
    ml_output: dict | None = None  # rows per kind, the forecast checks
    data_alert: dict | None = None
    bi: str | None = None  # the asset-triggered BI refresh's outcome


def last_complete_day(settings: Settings, source: str) -> date | None:
    """The newest complete day of the source's last successful cleaning load."""
    with pg.connect(settings.postgres) as conn:
        row = conn.execute(
            "select complete_through from staging.load_runs where source = %s and status = 'succeeded' "
            "order by started_at desc limit 1",
            (source,),
        ).fetchone()
    return row[0] if row else None


def run_day(settings: Settings, day: date, source: str, wait: bool = True, echo=None, timeout: float = 3600) -> DayRun:
    client = AirflowClient(settings.airflow)
    client.wait_for_dag(DAILY_DAG)
    client.set_paused(BI_DAG, False)
    asked = datetime.now(UTC)
    run = client.trigger_day(day, {"source": source})
    url = f"{settings.airflow.base_url}/dags/{DAILY_DAG}/runs/{run.run_id}"
    if not wait:
        return DayRun(day.isoformat(), source, run.run_id, run.state, None, url)
    run = client.wait(DAILY_DAG, run.run_id, timeout=timeout, echo=echo)
    tis = client.task_instances(DAILY_DAG, run.run_id)
    result = DayRun(
        day.isoformat(), source, run.run_id, run.state, run.seconds, url,
        {ti["task_id"]: (ti.get("state") or "none", ti.get("duration")) for ti in tis},
    )  # fmt: skip
    if run.state != "success":
        return result
    result.ml_output = client.xcom(DAILY_DAG, run.run_id, "ml_output")
    result.data_alert = client.xcom(DAILY_DAG, run.run_id, "data_alert")
    bi = client.next_run(BI_DAG, asked, appear_within=BI_APPEAR_S, echo=echo)
    if bi is None:
        result.bi = f"no {BI_DAG} run appeared within {BI_APPEAR_S} s of the ml_output asset's update (is it paused?)"
    else:
        result.bi = f"{bi.state} in {bi.seconds:.0f}s" if bi.seconds is not None else bi.state
        if bi.state == "success":
            refreshed = client.xcom(BI_DAG, bi.run_id, "refresh_bi")
            result.bi += f", {refreshed['charts_refreshed']} chart(s) refreshed, {refreshed['changed']} asset(s) changed"
    return result
