"""Airflow's REST API (v2) as Pulse uses it: log in, unpause, trigger a day, follow the run, read results.
Works the same against the local Airflow and an existing one (PULSE_AIRFLOW_URL + admin login)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from pulse.config import AirflowConfig

DAILY_DAG = "pulse_daily"
BI_DAG = "pulse_bi_refresh"
FINISHED = ("success", "failed")
QUEUED_NOTICE_S = 15.0  # a triggered run starts within a few seconds unless another run holds the DAG


class AirflowApiError(RuntimeError):
    pass


def logical_date_for(cfg: AirflowConfig, day: date) -> datetime:
    """The logical date of the scheduled run that processes ``day``: the schedule's first time on the next
    day (Airflow 3 dates a run by when it is due; ``pulse_daily`` processes the day before)."""
    fields = cfg.schedule.split()
    at = dtime(int(fields[1]), int(fields[0])) if len(fields) == 5 and fields[0].isdigit() and fields[1].isdigit() else dtime()
    return datetime.combine(day + timedelta(days=1), at, tzinfo=UTC)


@dataclass
class DagRun:
    dag_id: str
    run_id: str
    state: str
    logical_date: str | None
    queued_at: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    conf: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        if not (self.start_date and self.end_date):
            return None
        return (parse_ts(self.end_date) - parse_ts(self.start_date)).total_seconds()


def parse_ts(value: str) -> datetime:
    """An Airflow API timestamp (ISO 8601, maybe with Z) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def queued_behind(ahead: list[DagRun]) -> str:
    """What a run still queued says when other runs of its DAG hold it (Pulse's DAGs run one at a time):
    e.g. a scheduled run whose RAW sensor waits for a day that has not come."""
    names = ", ".join(f"{r.run_id} (running since {r.start_date or '?'})" for r in ahead)
    return f"    queued behind {names}: one run at a time; mark that run failed in Airflow to go first"


def in_run_order(tis: list[dict]) -> list[dict]:
    """Task instances as they ran (by start; not yet started last, by name): the API lists them by id."""
    never = datetime.max.replace(tzinfo=UTC)
    return sorted(tis, key=lambda ti: (parse_ts(ti["start_date"]) if ti.get("start_date") else never, ti["task_id"]))


class AirflowClient:
    def __init__(self, cfg: AirflowConfig, timeout: float = 30) -> None:
        self.cfg, self.timeout = cfg, timeout
        self._token: str | None = None

    def _request(self, method: str, path: str, body: dict | None = None, auth: bool = True) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.cfg.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise AirflowApiError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        return json.loads(raw) if raw else {}

    def token(self) -> str:
        if self._token is None:
            answer = self._request(
                "POST", "/auth/token", {"username": self.cfg.admin_user, "password": self.cfg.admin_password}, auth=False
            )
            self._token = answer["access_token"]
        return self._token

    def dag(self, dag_id: str) -> dict:
        return self._request("GET", f"/api/v2/dags/{dag_id}")

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """The DAG as soon as the dag-processor has parsed it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.dag(dag_id)
            except AirflowApiError as exc:
                if "HTTP 404" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(1)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, dag_id: str, logical_date: datetime | None = None, conf: dict | None = None) -> DagRun:
        body: dict = {"conf": conf or {}, "logical_date": logical_date.isoformat() if logical_date else None}
        return self._run(self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body))

    def trigger_day(self, day: date, conf: dict | None = None) -> DagRun:
        """Run ``pulse_daily`` for one day now (unpausing the DAG: a paused DAG's runs never start)."""
        self.set_paused(DAILY_DAG, False)
        when = logical_date_for(self.cfg, day)
        try:
            return self.trigger(DAILY_DAG, when, conf)
        except AirflowApiError as exc:
            if "HTTP 409" not in str(exc):
                raise
        # the day has a run already: run it again (its tasks are idempotent), keeping one run per day
        existing = next((r for r in self.runs(DAILY_DAG, 200) if r.logical_date and parse_ts(r.logical_date) == when), None)
        if existing is None:
            raise AirflowApiError(f"{DAILY_DAG} has a run for {when.isoformat()} that the API does not list")
        if conf and existing.conf != conf:
            raise AirflowApiError(f"{DAILY_DAG}'s run for {day} has conf {existing.conf}, not {conf}: clear it in the UI")
        self.clear(DAILY_DAG, existing.run_id)
        return self.run(DAILY_DAG, existing.run_id)

    def clear(self, dag_id: str, run_id: str) -> None:
        """Run a finished run again, every task from the start."""
        quoted = urllib.parse.quote(run_id, safe="")
        self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/clear", {"dry_run": False})

    def run(self, dag_id: str, run_id: str) -> DagRun:
        return self._run(self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"))

    def runs(self, dag_id: str, limit: int = 50) -> list[DagRun]:
        answer = self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit={limit}&order_by=-run_after")
        return [self._run(r) for r in answer.get("dag_runs", [])]

    def wait(self, dag_id: str, run_id: str, timeout: float = 1800, echo=None, poll: float = 2.0) -> DagRun:
        """Follow a run until it finishes; ``echo`` gets a line whenever a task changes state, and one naming
        the runs ahead of it when it stays queued behind them."""
        started, seen, told = time.monotonic(), {}, False
        while True:
            run = self.run(dag_id, run_id)
            if echo and run.state == "queued" and not told and time.monotonic() - started > QUEUED_NOTICE_S:
                told = True
                ahead = [r for r in self.runs(dag_id) if r.state == "running" and r.run_id != run_id]
                if ahead:
                    echo(queued_behind(ahead))
            if echo:
                for ti in self.task_instances(dag_id, run_id):
                    state = ti.get("state") or "none"
                    if seen.get(ti["task_id"]) != state:
                        seen[ti["task_id"]] = state
                        took = f" in {ti['duration']:.1f}s" if ti.get("duration") and state in ("success", "failed") else ""
                        echo(f"    {ti['task_id']:<14} {state}{took}")
            if run.state in FINISHED:
                return run
            if time.monotonic() > started + timeout:
                raise TimeoutError(f"{dag_id} run {run_id} still {run.state} after {timeout:.0f}s")
            time.sleep(poll)

    def next_run(
        self, dag_id: str, after: datetime, appear_within: float = 120, timeout: float = 600, echo=None
    ) -> DagRun | None:
        """The first run of ``dag_id`` queued after ``after`` (one an asset event sets off appears a
        scheduler loop after the event), followed to its end; None if none appears in time."""
        deadline = time.monotonic() + appear_within
        while True:
            runs = [r for r in self.runs(dag_id) if r.queued_at and parse_ts(r.queued_at) > after]
            if runs:
                first = min(runs, key=lambda r: parse_ts(r.queued_at))
                return self.wait(dag_id, first.run_id, timeout=timeout, echo=echo)
            if time.monotonic() > deadline:
                return None
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances?limit=100"
        return in_run_order(self._request("GET", path).get("task_instances", []))

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{task_id}"
            f"/xcomEntries/{key}?deserialize=true"
        )
        value = self._request("GET", path).get("value")
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    @staticmethod
    def _run(r: dict) -> DagRun:
        return DagRun(
            r["dag_id"], r["dag_run_id"], r["state"], r.get("logical_date"), r.get("queued_at"), r.get("start_date"),
            r.get("end_date"), r.get("conf") or {},
        )  # fmt: skip
