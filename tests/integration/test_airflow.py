"""Orchestration against real services: Pulse's Airflow (its own venv, four components, metadata in the test
PostgreSQL) runs pulse_daily for one logical date through the REST API on small data; the marts, the
ML tables, ml_output and Superset's chart cache are checked against independent reads; the same day
run again changes nothing; a failure and a data alert reach real SMTP/HTTP receivers on loopback."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from pulse.common.clickhouse import client as ch_client
from pulse.common.waiting import wait_until
from pulse.config import PipelineConfig, load_settings
from pulse.dag_tasks import ml_run_id
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.domain import RAW_COLUMNS
from pulse.lake import raw
from pulse.ml.forecast import HORIZONS, MAX_HORIZON
from pulse.orchestration.airflow_api import BI_DAG, DAILY_DAG, AirflowApiError, AirflowClient
from pulse.services import registry

from .alert_receivers import Receivers
from .browser import ARTEFACTS
from .equality import assert_same, marts_snapshot, staging_snapshot

pytestmark = pytest.mark.integration
SOURCE = "aftest"
BACKFILL_SOURCE = "afbackfill"  # its own source: the other tests count what the daily run loaded into SOURCE
DAY = date(2026, 10, 31)
# the run for DAY loads RAW up to DAY: the newest complete day, the one its forecast starts after and its
# data alert checks, is DAY less the late-arrival window
CHECKED = DAY - timedelta(days=PipelineConfig().late_arrival_days)
MISSING_DAY = date(2026, 11, 20)  # no RAW partition (and in the past: a run due in the future waits): the sensor times out
HTTP_PORT, SMTP_PORT = 28099, 28025


def add_dau_spike(out: Path, day: date, users: int) -> None:
    """``users`` new users who each view once on ``day``, in that day's RAW partition: DAU leaps far above
    any forecast, so the data alert's delivery always runs (not only when the data happens to be unusual)."""
    rows = [",".join(RAW_COLUMNS)]
    for i in range(users):
        values = {
            "event_id": f"spike-{i}",
            "event_time": f"{day}T12:00:00Z",
            "event_type": "view",
            "user_id": str(900_000_000 + i),
        }
        rows.append(",".join(values.get(c, "") for c in RAW_COLUMNS))
    (out / f"ingest_date={day}" / "part-09999.csv.gz").write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))


@pytest.fixture(scope="module")
def airflow(superset, tmp_path_factory):
    smtp_password = secrets.token_urlsafe(12)
    env = {
        "PULSE_AIRFLOW_PORT": "28080",
        "PULSE_AIRFLOW_SOURCE": "demo",  # not the source the test runs: the BI refresh must follow the run's own
        "PULSE_AIRFLOW_RETRIES": "0",  # the failure test needs the first failure to be final
        "PULSE_AIRFLOW_RAW_WAIT_HOURS": "0.005",  # 18 s
        "PULSE_ALERTS_SLACK_WEBHOOK_URL": f"http://127.0.0.1:{HTTP_PORT}/slack/T000/B000/xyz",
        "PULSE_ALERTS_TELEGRAM_TOKEN": "123456:test-token",
        "PULSE_ALERTS_TELEGRAM_CHAT_ID": "4242",
        "PULSE_ALERTS_TELEGRAM_API_URL": f"http://127.0.0.1:{HTTP_PORT}/telegram",
        "PULSE_ALERTS_SMTP_HOST": "127.0.0.1",
        "PULSE_ALERTS_SMTP_PORT": str(SMTP_PORT),
        "PULSE_ALERTS_SMTP_USER": "alerts",
        "PULSE_ALERTS_SMTP_PASSWORD": smtp_password,
        "PULSE_ALERTS_SMTP_STARTTLS": "false",
        "PULSE_ALERTS_EMAIL_TO": "oncall@example.com",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    receivers = Receivers(HTTP_PORT, SMTP_PORT, "alerts", smtp_password).start()
    settings = load_settings()
    out = tmp_path_factory.mktemp("airflow") / SOURCE
    truth = generate_dataset(out, GenParams(n_events=60_000, days=120, end_date=DAY, seed=7), DirtParams(rate=0.02))
    add_dau_spike(out, CHECKED, users=3 * truth["dau_by_date"][CHECKED.isoformat()])
    raw.upload_dataset(settings.s3, out, SOURCE)
    t0 = time.monotonic()
    registry.up(settings, ["airflow"], echo=lambda _m: None)
    started = time.monotonic() - t0
    client = AirflowClient(settings.airflow)
    client.wait_for_dag(DAILY_DAG)
    client.wait_for_dag(BI_DAG)
    client.set_paused(BI_DAG, False)
    try:
        yield settings, client, receivers, started
    finally:
        registry.down(settings, ["airflow"], echo=print)  # how each component stopped, in the test output
        receivers.stop()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def daily(airflow):
    settings, client, receivers, _ = airflow
    before = datetime.now(UTC)
    run = client.trigger_day(DAY, {"source": SOURCE})
    run = client.wait(DAILY_DAG, run.run_id, timeout=1200)
    tis = {ti["task_id"]: ti for ti in client.task_instances(DAILY_DAG, run.run_id)}
    assert run.state == "success", why(settings, run.run_id, {k: v["state"] for k, v in tis.items()})
    return settings, client, receivers, run, tis, before


def backfill_days(out: Path) -> tuple[date, date, date]:
    """A source's RAW for a backfill after ``first``: 100 days of history up to ``first`` (enough for the
    forecast's backtest), no file on the day after it, what arrived between moved onto ``last`` (late events,
    and copies of earlier events that its load must dedup against staging), and a file on ``later``, the day
    after ``last``, which the backfill must not load."""
    first, last = DAY + timedelta(days=10), DAY + timedelta(days=12)
    later = last + timedelta(days=1)
    generate_dataset(out, GenParams(n_events=20_000, days=101, end_date=later, seed=23), DirtParams(rate=0.03))
    folders = {d: out / f"ingest_date={d}" for d in (first, last, later)}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and p.name > folders[first].name):
        if folder not in folders.values():  # between `first` and `later`: onto `last`; after `later`: onto it
            target = folders[last] if folder.name < folders[later].name else folders[later]
            for part in folder.glob("*.csv.gz"):
                part.rename(target / f"{folder.name.removeprefix('ingest_date=')}-{part.name}")
            folder.rmdir()
    after = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name >= f"ingest_date={first}")
    assert after == [p.name for p in folders.values()], after
    return first, last, later


def why(settings, run_id: str, states: dict[str, str]) -> str:
    """A run that did not succeed, for the assertion message: its task states, the end of each failed task's
    logs, and the scheduler's lines about it (CI keeps only the test output; the home is removed after)."""
    logs = settings.home / "logs"
    parts = [f"{run_id}: {states}"]
    run_dir = logs / "airflow-tasks" / f"dag_id={DAILY_DAG}" / f"run_id={run_id}"
    for task, state in states.items():
        if state == "failed":
            for log in sorted((run_dir / f"task_id={task}").glob("attempt=*")):
                parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    scheduler = logs / "airflow-scheduler.log"
    if scheduler.exists():
        lines = [line for line in scheduler.read_text(errors="replace").splitlines() if run_id in line]
        parts.append("--- scheduler\n" + "\n".join(line[:400] for line in lines[-15:]))
    return "\n".join(parts)


def marts(settings):
    return ch_client(settings.clickhouse, database=settings.clickhouse.marts_database(SOURCE))


def test_airflow_runs_on_loopback_with_credentials(airflow):
    settings, _client, _, started = airflow
    import urllib.error
    import urllib.request

    from pulse.services.airflow import AIRFLOW_SERVICES

    for cls in AIRFLOW_SERVICES:
        status = cls(settings).status()
        assert status.up and status.pid, status
        assert status.log.exists()
    with pytest.raises(urllib.error.HTTPError) as err:  # the REST API needs a token
        urllib.request.urlopen(settings.airflow.base_url + "/api/v2/dags", timeout=5)
    assert err.value.code in (401, 403)
    bad = AirflowClient(type(settings.airflow)(**{**settings.airflow.__dict__, "admin_password": "wrong"}))
    with pytest.raises(AirflowApiError, match=r"POST /auth/token: HTTP 401"):
        bad.token()
    secrets_dir = settings.home / "secrets"
    assert (secrets_dir / "airflow_admin_password").stat().st_mode & 0o777 == 0o600
    cfg = (
        (settings.data_dir / "airflow" / "airflow.cfg").read_text()
        if (settings.data_dir / "airflow" / "airflow.cfg").exists()
        else ""
    )
    for secret in (settings.airflow.admin_password, settings.airflow.metadata_password, os.environ["PULSE_ALERTS_SMTP_PASSWORD"]):
        assert secret not in cfg
        for log in settings.logs_dir.rglob("*.log"):
            assert secret not in log.read_text(errors="replace"), log
    print(f"\n  Airflow: 4 components healthy {started:.1f}s after `services up`")


def test_pulse_daily_builds_marts_ml_output_and_refreshes_bi(daily):
    settings, client, receivers, run, tis, before = daily
    assert all(ti["state"] == "success" for ti in tis.values())
    durations = ", ".join(f"{k} {v['duration']:.1f}s" for k, v in tis.items() if v.get("duration"))
    print(f"\n  pulse_daily for {DAY}: {run.seconds:.1f}s ({durations})")
    cleaned = client.xcom(DAILY_DAG, run.run_id, "clean")
    ch = marts(settings)
    # the cleaning job and the marts, read back independently
    from pulse.common import pg

    with pg.connect(settings.postgres) as conn:
        [(kept,)] = conn.execute("select count(*) from staging.events where source = %s", (SOURCE,)).fetchall()
    assert kept > 50_000
    if cleaned["mode"] == "full":  # the day's first run: the source's first load
        assert cleaned["rows_out"] == kept
    else:  # the run was cleared and run again (test_running_the_same_day_again…): nothing new to load
        assert (cleaned["mode_reason"], cleaned["rows_out"]) == ("nothing new in RAW", 0)
    [(dau, complete)] = ch.query(
        "SELECT dau, is_complete FROM user_daily_metrics WHERE metric_date = {d:Date}", parameters={"d": CHECKED}
    ).result_rows
    with pg.connect(settings.postgres) as conn:
        [(users,)] = conn.execute(
            "select count(distinct user_id) from staging.events where source = %s and event_time::date = %s",
            (SOURCE, CHECKED),
        ).fetchall()
    assert dau == users and complete
    [(open_day,)] = ch.query(
        "SELECT is_complete FROM user_daily_metrics WHERE metric_date = {d:Date}", parameters={"d": DAY}
    ).result_rows
    assert not open_day  # its late events are still to come
    # ml_output for the day: 14 days ahead per metric, the chosen models' scores, every segmented user, two checks
    rows = ch.query_df("SELECT * FROM ml_output WHERE logical_date = {d:Date}", parameters={"d": DAY})
    assert set(rows.run_id) == {ml_run_id(SOURCE, DAY.isoformat())} and set(rows.orchestrator_run_id) == {run.run_id}
    ahead = rows[rows.kind == "forecast"]
    for metric in ("dau", "revenue"):  # each day of the next two weeks once, per metric
        days = sorted(ahead[ahead.name == metric].target_date)
        assert days == [pd.Timestamp(CHECKED + timedelta(days=d)) for d in range(1, MAX_HORIZON + 1)], metric
    scores = rows[rows.kind == "backtest"]
    chosen = ch.query_df(
        "SELECT metric, horizon, mase FROM ml_model_metrics WHERE run_id = {r:String} AND is_chosen",
        parameters={"r": ml_run_id(SOURCE, DAY.isoformat())},
    )
    chosen = chosen[chosen.horizon.isin(HORIZONS)]
    assert len(scores) == len(chosen) == 2 * len(HORIZONS)  # the chosen model's MASE per metric and reported horizon
    assert sorted(scores.value.round(9)) == sorted(chosen.mase.round(9))
    [(segmented,)] = ch.query(
        "SELECT count() FROM user_segments WHERE run_id = {r:String}", parameters={"r": ml_run_id(SOURCE, DAY.isoformat())}
    ).result_rows
    assert rows[rows.kind == "segment"].value.sum() == segmented > 0
    checks = rows[rows.kind == "check"].set_index("name")
    assert set(checks.index) == {"dau", "revenue"}
    assert checks.loc["dau", "value"] == dau and set(checks.target_date) == {pd.Timestamp(CHECKED)}
    # the data alert: exactly the metrics outside their interval — DAU always, the dataset has a spike on the
    # checked day — and the alert delivered on every channel (at least once: a re-run of the day sends it again)
    alert = client.xcom(DAILY_DAG, run.run_id, "data_alert")
    outside = sorted(m for m, r in checks.iterrows() if not (r.lower <= r.value <= r.upper))
    assert sorted(alert["outside"]) == outside and "dau" in outside
    assert alert["sent"] == {"slack": "sent", "telegram": "sent", "email": "sent"}
    for channel in ("slack", "telegram", "email"):
        got = [
            m for m in receivers.inbox.of(channel) if "data alert" in (m.get("subject") or m["text"]) and run.run_id in m["text"]
        ]
        assert got and all(f"dau on {CHECKED}: actual {dau:,.2f} is above" in m["text"] for m in got), channel
    # the BI refresh ran because ml_output (an asset) was updated
    bi_run = client.next_run(BI_DAG, after=before, appear_within=300, timeout=300)
    assert bi_run is not None, "no pulse_bi_refresh run after the ml_output asset was updated"
    assert bi_run.state == "success"
    assert client.xcom(BI_DAG, bi_run.run_id, "which_source") == SOURCE  # from the asset event, not the config
    refreshed = client.xcom(BI_DAG, bi_run.run_id, "refresh_bi")
    assert refreshed["charts_refreshed"] > 20
    cache = settings.data_dir / "superset" / "cache" / "data"
    fresh = [p for p in cache.iterdir() if datetime.fromtimestamp(p.stat().st_mtime, UTC) > before]
    assert len(fresh) >= refreshed["charts_refreshed"]
    memo = settings.home / "reports" / SOURCE / "memo.md"
    assert datetime.fromtimestamp(memo.stat().st_mtime, UTC) > before


def test_running_the_same_day_again_changes_nothing(daily):
    settings, client, _, run, _, _ = daily
    ch = marts(settings)
    snapshot_sql = (
        "SELECT kind, name, target_date, model, round(value, 6), round(lower, 6), round(upper, 6), details "
        "FROM ml_output WHERE logical_date = {d:Date} ORDER BY kind, name, target_date"
    )
    counts_sql = (
        "SELECT (SELECT count() FROM user_daily_metrics), (SELECT sum(revenue_usd) FROM revenue_daily), "
        "(SELECT count() FROM ml_output)"
    )
    before = ch.query(snapshot_sql, parameters={"d": DAY}).result_rows, ch.query(counts_sql).result_rows
    again = client.trigger_day(DAY, {"source": SOURCE})
    assert again.run_id == run.run_id  # the day's run, cleared and run again, not a second run
    again = client.wait(DAILY_DAG, again.run_id, timeout=1200)
    assert again.state == "success"
    after = ch.query(snapshot_sql, parameters={"d": DAY}).result_rows, ch.query(counts_sql).result_rows
    assert after == before


def test_a_backfill_loads_a_day_per_run_in_order_and_ends_equal_to_a_full_refresh(daily, spark, tmp_path):
    """pulse airflow backfill through the real DAG, after a history loaded outside Airflow: the day without a
    file is skipped, the run loads the RAW up to its day (never the next day's file, already there) on top of
    what staging holds, and the end state is the one a full refresh of the same RAW up to that day gives, row
    for row. (The order of several days is the unit tests'; one Airflow run here keeps the suite's time.)"""
    from pulse import pipeline
    from pulse.common import pg
    from pulse.modeling import dbt_runner
    from pulse.staging import job

    settings = daily[0]
    first, last, _later = backfill_days(tmp_path / BACKFILL_SOURCE)
    raw.upload_dataset(settings.s3, tmp_path / BACKFILL_SOURCE, BACKFILL_SOURCE)
    assert job.run(settings, BACKFILL_SOURCE, spark=spark, through=first)["mode"] == "full"  # the history
    assert dbt_runner.build(settings, BACKFILL_SOURCE, quiet=True).ok
    done = pipeline.backfill(settings, first + timedelta(days=1), last, BACKFILL_SOURCE)
    failed = [r for _, r in done if r is not None and r.state != "success"]
    assert not failed, why(settings, failed[0].run_id, {t: st for t, (st, _) in failed[0].tasks.items()})
    assert [(d, r.state if r else None) for d, r in done] == [(first + timedelta(days=1), None), (last, "success")]
    with pg.connect(settings.postgres) as conn:
        loads = conn.execute(
            "select max_ingest_date, mode, rows_in from staging.load_runs where source = %s and status = 'succeeded' "
            "order by started_at",
            (BACKFILL_SOURCE,),
        ).fetchall()
    assert [(d, mode) for d, mode, _ in loads] == [(first, "full"), (last, "incremental")], loads  # not `later`
    assert all(n > 0 for *_, n in loads)
    staging, marts = staging_snapshot(settings, BACKFILL_SOURCE), marts_snapshot(settings, BACKFILL_SOURCE)
    assert job.run(settings, BACKFILL_SOURCE, spark=spark, full_refresh=True, through=last)["mode"] == "full"
    assert dbt_runner.build(settings, BACKFILL_SOURCE, full_refresh=True, quiet=True).ok
    assert_same(staging, staging_snapshot(settings, BACKFILL_SOURCE), "the backfill's load")
    assert_same(marts, marts_snapshot(settings, BACKFILL_SOURCE), "the backfill's load")


def test_a_failure_alerts_every_channel_with_the_details(airflow):
    _settings, client, receivers, _ = airflow
    run = client.trigger_day(MISSING_DAY, {"source": SOURCE})
    run = client.wait(DAILY_DAG, run.run_id, timeout=600)
    assert run.state == "failed"

    def arrived() -> dict | None:  # this run's alerts (a scheduled run that fires meanwhile alerts too)
        got = {
            c: [m for m in receivers.inbox.of(c) if "wait_for_raw" in m["text"] and run.run_id in m["text"]]
            for c in ("slack", "telegram", "email")
        }
        return got if all(got.values()) else None

    got = wait_until(arrived, what="the failure alert on every channel", timeout=60)
    for channel, messages in got.items():
        assert messages, f"no failure alert on {channel}"
        text = messages[0]["text"]
        for needle in (
            "DAG: pulse_daily",
            "task: wait_for_raw",
            f"run: {run.run_id}",
            "try: 1",
            "error: ",
            "log: http://127.0.0.1:28080/",
        ):
            assert needle in text, (channel, needle, text)
    email = got["email"][0]
    assert email["to"] == ["oncall@example.com"] and "wait_for_raw" in email["subject"]
    assert ("alerts", True) in receivers.logins  # the SMTP server requires a login; Pulse's config supplied it
    assert got["telegram"][0]["chat_id"] == "4242"
    assert all(len(messages) == 1 for messages in got.values()), got  # once per channel: no retry storm


def test_the_run_in_airflows_ui(daily):
    """A person's view: log in through Airflow's form in a real browser, open the run's graph: every task drawn, all green."""
    import subprocess

    from pulse.config import REPO_ROOT

    settings, _, _, run, tis, _ = daily
    out = ARTEFACTS / "airflow-pulse-daily.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "AIRFLOW_URL": settings.airflow.base_url,
        "AIRFLOW_USER": settings.airflow.admin_user,
        "AIRFLOW_PASSWORD": settings.airflow.admin_password,
        "DAG_ID": DAILY_DAG,
        "RUN_ID": run.run_id,
        "OUT": str(out),
    }
    done = subprocess.run(
        ["node", "airflow.mjs"], cwd=REPO_ROOT / "tests" / "browser", env=env, capture_output=True, text=True, timeout=180
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report.get("loggedIn") and not report.get("error"), report
    drawn = {text.split("\n")[0]: text.split("\n")[-1] for text in report["nodes"]}
    assert drawn == dict.fromkeys(tis, "success")
    assert out.stat().st_size > 10_000
