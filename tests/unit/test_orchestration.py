"""Orchestration's pure parts: which day a run processes, the forecast check's verdict, alert connections
filled from config (and only for enabled channels), service selection by group."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, date, datetime

from pulse.config import ensure_secrets, load_settings
from pulse.ml.output import Check
from pulse.orchestration import airflow_api
from pulse.orchestration.airflow_api import AirflowClient, DagRun, in_run_order, logical_date_for
from pulse.services import registry
from pulse.services.airflow import AirflowApiServer, alert_connections, fernet_key


def test_a_days_run_is_dated_when_the_schedule_runs_it():
    cfg = load_settings().airflow
    assert logical_date_for(replace(cfg, schedule="30 0 * * *"), date(2026, 10, 31)) == datetime(2026, 11, 1, 0, 30, tzinfo=UTC)
    assert logical_date_for(replace(cfg, schedule="@daily"), date(2026, 12, 31)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_task_instances_are_listed_as_they_ran():
    tis = [
        {"task_id": "build_marts", "start_date": "2026-10-31T00:32:10.5Z"},
        {"task_id": "data_alert", "start_date": None},
        {"task_id": "clean", "start_date": "2026-10-31T00:30:59+00:00"},
        {"task_id": "ml_output"},
        {"task_id": "forecast", "start_date": "2026-10-31T00:32:30Z"},
        {"task_id": "segment", "start_date": "2026-10-31T00:32:30Z"},
        {"task_id": "wait_for_raw", "start_date": "2026-10-31T02:30:50+02:00"},  # 00:30:50 UTC
    ]
    order = [ti["task_id"] for ti in in_run_order(tis)]
    assert order == ["wait_for_raw", "clean", "build_marts", "forecast", "segment", "data_alert", "ml_output"]


def test_check_is_outside_only_beyond_the_interval():
    inside = Check("dau", "2026-10-31", "ridge", actual=100, yhat=98, lower=90, upper=100)
    assert not inside.outside and "inside" in inside.describe()
    above = replace(inside, actual=100.5)
    below = replace(inside, actual=89.99)
    assert above.outside and "above" in above.describe()
    assert below.outside and "below" in below.describe()
    assert "[90.00 – 100.00]" in below.describe()


def test_alert_connections_only_for_enabled_channels(monkeypatch, tmp_path):
    monkeypatch.setenv("PULSE_HOME", str(tmp_path))
    for key in ("SLACK_WEBHOOK_URL", "TELEGRAM_TOKEN", "TELEGRAM_CHAT_ID", "SMTP_HOST", "EMAIL_TO"):
        monkeypatch.delenv(f"PULSE_ALERTS_{key}", raising=False)
    assert alert_connections(load_settings()) == {}
    monkeypatch.setenv("PULSE_ALERTS_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/slack/T/B/x")
    monkeypatch.setenv("PULSE_ALERTS_SMTP_HOST", "127.0.0.1")  # no recipient: email stays off
    settings = load_settings()
    assert settings.alerts.channels == ["slack"]
    conns = alert_connections(settings)
    assert list(conns) == ["AIRFLOW_CONN_PULSE_SLACK"]
    assert json.loads(conns["AIRFLOW_CONN_PULSE_SLACK"]) == {
        "conn_type": "slackwebhook",
        "password": "http://127.0.0.1:9/slack/T/B/x",
    }


def test_airflow_secrets_stay_out_of_files_and_derive_from_one_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("PULSE_HOME", str(tmp_path))
    assert load_settings().airflow.secret_key == ""  # loading writes nothing
    assert not (tmp_path / "secrets").exists()
    assert "airflow_secret_key" in ensure_secrets() and ensure_secrets() == []  # made once
    settings = load_settings()
    env = AirflowApiServer(settings).environment()
    assert (tmp_path / "secrets" / "airflow_secret_key").stat().st_mode & 0o777 == 0o600
    assert env["AIRFLOW__CORE__FERNET_KEY"] == fernet_key(settings.airflow.secret_key)
    assert len({env["AIRFLOW__CORE__FERNET_KEY"], env["AIRFLOW__API__SECRET_KEY"], env["AIRFLOW__API_AUTH__JWT_SECRET"]}) == 3
    assert settings.airflow.metadata_password in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert len(base64.urlsafe_b64decode(env["AIRFLOW__CORE__FERNET_KEY"])) == 32  # a valid Fernet key, or no start


def test_a_service_name_also_picks_its_components():
    names = [s.name for s in registry.pick(load_settings(), ["airflow"])]
    assert names == ["airflow", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]
    assert [s.name for s in registry.pick(load_settings(), ["airflow-scheduler"])] == ["airflow-scheduler"]


def test_a_backfill_runs_the_days_with_raw_in_order_and_stops_at_a_failed_one(monkeypatch):
    """pulse airflow backfill: Airflow is replaced here by a recorder of the days asked for (the real DAG
    runs in tests/integration/test_airflow.py)."""
    from types import SimpleNamespace

    from pulse import pipeline
    from pulse.lake import raw
    from pulse.orchestration import daily

    have = ["2026-10-01", "2026-10-02", "2026-10-04", "2026-10-05", "2026-10-06"]
    monkeypatch.setattr(raw, "list_committed", lambda cfg, source: [SimpleNamespace(ingest_date=d) for d in have])
    asked = []

    def run_day(settings, day, source, echo=None):
        asked.append(day)
        return SimpleNamespace(day=day.isoformat(), state="failed" if day == date(2026, 10, 5) else "success")

    monkeypatch.setattr(daily, "run_day", run_day)
    done = pipeline.backfill(load_settings(), date(2026, 10, 1), date(2026, 10, 6), "demo")
    assert asked == [date(2026, 10, d) for d in (1, 2, 4, 5)]  # in order, none without RAW, none after the failure
    assert [(d.day, r and r.state) for d, r in done] == [(1, "success"), (2, "success"), (3, None), (4, "success"), (5, "failed")]


def test_a_run_held_in_the_queue_names_the_run_ahead_of_it_once(monkeypatch):
    # a stand-in for the REST calls: the triggered run stays queued three polls, then runs and succeeds
    states = iter(["queued", "queued", "queued", "running", "success"])
    ahead = DagRun("pulse_daily", "scheduled__2026-12-08T00:30:00+00:00", "running", None, start_date="2026-12-08T00:47:28Z")

    class Stub(AirflowClient):
        def run(self, dag_id, run_id):
            return DagRun(dag_id, run_id, next(states), None)

        def runs(self, dag_id, limit=50):
            return [DagRun(dag_id, "manual__mine", "queued", None), ahead]

        def task_instances(self, dag_id, run_id):
            return []

    monkeypatch.setattr(airflow_api, "QUEUED_NOTICE_S", 0.0)
    said: list[str] = []
    done = Stub(load_settings().airflow).wait("pulse_daily", "manual__mine", echo=said.append, poll=0)
    assert done.state == "success"
    assert said == [
        "    queued behind scheduled__2026-12-08T00:30:00+00:00 (running since 2026-12-08T00:47:28Z): "
        "one run at a time; mark that run failed in Airflow to go first"
    ]
