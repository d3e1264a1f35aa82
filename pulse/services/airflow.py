"""Airflow: Apache Airflow 3 from its own virtual environment (``.venv-airflow``), four components on loopback.

The api-server (UI, REST, execution API), scheduler (LocalExecutor), dag-processor and triggerer run
as separate process groups, each a service with its own pid and log (``pulse status`` lists them).
Metadata lives in an ``airflow`` database of the project's PostgreSQL. Nothing secret is written
into ``airflow.cfg``: the metadata URI, fernet key, API and JWT secrets travel in the components'
environment, derived from secrets generated once per install (0600 under ``$PULSE_HOME/secrets``);
the admin login is the simple auth manager's passwords file, written 0600. The alert channels' secrets
reach Airflow as connections in the environment (``AIRFLOW_CONN_PULSE_*``), filled from Pulse's config.

Tasks of the DAGs run Pulse's steps in Pulse's own venv (``@task.external_python``): Airflow's venv
never imports pyspark or dbt. An existing Airflow is used instead by setting PULSE_AIRFLOW_URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import urllib.error
import urllib.request
from functools import cached_property
from pathlib import Path

from pulse.common import pg
from pulse.common.files import write_private
from pulse.config import REPO_ROOT, Settings
from pulse.services.base import ManagedProcess, ServiceError, port_open

AIRFLOW_VENV = REPO_ROOT / ".venv-airflow"
DAGS_FOLDER = REPO_ROOT / "airflow" / "dags"
PLUGINS_FOLDER = REPO_ROOT / "airflow" / "plugins"
PULSE_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"  # Pulse's venv: where the DAG's tasks run Pulse's steps
# bump when `airflow db migrate` must run again (e.g. after upgrading Airflow)
MIGRATED_VERSION = "3.3.2-1"


def airflow_binary() -> Path:
    path = AIRFLOW_VENV / "bin" / "airflow"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run scripts/install.sh (it creates Airflow's own venv)")
    return path


def _derived(secret: str, purpose: str) -> str:
    """A key for one purpose derived from the installation's Airflow secret (so one secret is stored)."""
    return hashlib.sha256(f"{purpose}:{secret}".encode()).hexdigest()


def fernet_key(secret: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(f"fernet:{secret}".encode()).digest()).decode()


def alert_connections(settings: Settings) -> dict[str, str]:
    """Airflow connections (as ``AIRFLOW_CONN_*`` JSON) for the enabled alert channels."""
    a = settings.alerts
    conns: dict[str, dict] = {}
    if "slack" in a.channels:
        conns["pulse_slack"] = {"conn_type": "slackwebhook", "password": a.slack_webhook_url}
    if "telegram" in a.channels:
        conns["pulse_telegram"] = {
            "conn_type": "telegram",
            "password": a.telegram_token,
            "host": a.telegram_chat_id,
            "extra": {"api_url": a.telegram_api_url},
        }
    if "email" in a.channels:
        conns["pulse_smtp"] = {
            "conn_type": "smtp",
            "host": a.smtp_host,
            "port": a.smtp_port,
            "login": a.smtp_user or "",
            "password": a.smtp_password or "",
            "extra": {"disable_ssl": True, "disable_tls": not a.smtp_starttls, "from_email": a.email_from, "timeout": 10},
        }
    return {f"AIRFLOW_CONN_{name.upper()}": json.dumps(conn) for name, conn in conns.items()}


def dag_environment(settings: Settings) -> dict[str, str]:
    """What the DAG files read (nothing secret), from Pulse's configuration: they have no defaults of their own.
    An Airflow that Pulse does not start needs these in its components' environment too."""
    cfg = settings.airflow
    return {
        "PULSE_PYTHON": str(PULSE_PYTHON),  # the python that runs Pulse's steps
        "PULSE_AIRFLOW_SOURCE": cfg.source,
        "PULSE_AIRFLOW_SCHEDULE": cfg.schedule,
        "PULSE_AIRFLOW_RETRIES": str(cfg.retries),
        "PULSE_AIRFLOW_RAW_WAIT_HOURS": str(cfg.raw_wait_hours),
        "PULSE_ALERT_CHANNELS": ",".join(settings.alerts.channels),
        "PULSE_ALERT_EMAIL_TO": settings.alerts.email_to or "",
    }


class AirflowComponent(ManagedProcess):
    """One Airflow component; they share one environment, metadata database and home."""

    component: str
    start_timeout = 120.0

    @property
    def managed(self) -> bool:
        return self.settings.airflow.managed

    @property
    def port(self) -> int | None:
        return None

    @property
    def endpoint(self) -> str:
        return self.settings.airflow.base_url

    @property
    def data_dir(self) -> Path:  # AIRFLOW_HOME, shared by the components
        return self.settings.data_dir / "airflow"

    @property
    def passwords_file(self) -> Path:
        return self.settings.run_dir / "airflow_passwords.json"

    @property
    def metadata_uri(self) -> str:
        cfg = self.settings.airflow
        return self.settings.postgres.sqlalchemy_url("psycopg", cfg.metadata_user, cfg.metadata_password, cfg.metadata_database)

    @cached_property
    def task_log_dir(self) -> Path:
        return self.settings.logs_dir / "airflow-tasks"

    def environment(self) -> dict[str, str]:
        cfg = self.settings.airflow
        # Pulse's own settings (PULSE_HOME, ports, endpoints) pass through: the tasks run Pulse's steps with them
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))}
        env["PULSE_HOME"] = str(self.settings.home)
        settings = {
            "CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
            "CORE__EXECUTOR": "LocalExecutor",
            "CORE__PARALLELISM": str(cfg.parallelism),
            "CORE__MAX_ACTIVE_TASKS_PER_DAG": str(cfg.parallelism),
            "CORE__LOAD_EXAMPLES": "False",
            "CORE__FERNET_KEY": fernet_key(cfg.secret_key),
            "CORE__SIMPLE_AUTH_MANAGER_USERS": f"{cfg.admin_user}:admin",
            "CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{cfg.port}/execution/",
            "DATABASE__SQL_ALCHEMY_CONN": self.metadata_uri,
            "DATABASE__SQL_ALCHEMY_POOL_SIZE": "3",
            "API__HOST": "127.0.0.1",
            "API__PORT": str(cfg.port),
            "API__BASE_URL": cfg.base_url,
            "API__WORKERS": "1",
            "API__SECRET_KEY": _derived(cfg.secret_key, "api"),
            "API_AUTH__JWT_SECRET": _derived(cfg.secret_key, "jwt"),
            "LOGGING__BASE_LOG_FOLDER": str(self.task_log_dir),
            "LOGGING__LOGGING_LEVEL": "INFO",
            # idle cost on 2 cores: parse DAG files every 2 min (a changed file sooner), heartbeat every 5 s
            "DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
            "DAG_PROCESSOR__REFRESH_INTERVAL": "60",
            "DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "5",
            "SCHEDULER__JOB_HEARTBEAT_SEC": "5",
            "SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "TRIGGERER__JOB_HEARTBEAT_SEC": "5",
            "WEBSERVER__WARN_DEPLOYMENT_EXPOSURE": "False",
        }
        env.update({f"AIRFLOW__{k}": v for k, v in settings.items()})
        env.update(alert_connections(self.settings))
        env.update(
            AIRFLOW_HOME=str(self.data_dir),
            **dag_environment(self.settings),
            PATH=f"{AIRFLOW_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            PYTHONUNBUFFERED="1",
        )
        return env

    def command(self) -> list[str]:
        return [str(airflow_binary()), *self.arguments()]

    def arguments(self) -> list[str]:
        return [self.component]

    def healthy(self) -> tuple[bool, str]:
        if self.managed and self.pid() is None:
            return False, "not running"
        health = monitor_health(self.settings)
        if health is None:
            return False, "api-server not answering"
        state = health.get(self.component.replace("-", "_"), {}).get("status")
        return state == "healthy", f"Airflow {self.component}: {state or 'unknown'}"


def monitor_health(settings: Settings) -> dict | None:
    try:
        with urllib.request.urlopen(settings.airflow.base_url + "/api/v2/monitor/health", timeout=5) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


class AirflowApiServer(AirflowComponent):
    name = "airflow"
    component = "api-server"
    # stateless (UI, REST, execution API): in-flight requests finish within seconds; after a browser
    # session it waited the full 30 s for its connections to close (seen in the test runs)
    stop_timeout = 10.0

    @property
    def port(self) -> int:
        return self.settings.airflow.port

    def arguments(self) -> list[str]:
        cfg = self.settings.airflow
        return ["api-server", "--host", "127.0.0.1", "--port", str(cfg.port), "--workers", "1"]

    def prepare(self) -> None:
        self.data_dir.chmod(0o700)
        self.task_log_dir.mkdir(mode=0o700, exist_ok=True)
        cfg = self.settings.airflow
        write_private(self.passwords_file, json.dumps({cfg.admin_user: cfg.admin_password}))
        self._metadata_database()
        stamp = self.data_dir / ".migrated"
        if not (stamp.exists() and stamp.read_text() == MIGRATED_VERSION):
            self._run_once(["db", "migrate"], "airflow db migrate")
            stamp.write_text(MIGRATED_VERSION)

    def _metadata_database(self) -> None:
        """The ``airflow`` role and database in the project's PostgreSQL (created once, password kept in sync)."""
        cfg = self.settings.airflow
        pg.ensure_login_database(
            self.settings.postgres, cfg.metadata_user, cfg.metadata_password, cfg.metadata_database, sync_password=True
        )

    def _run_once(self, args: list[str], what: str, timeout: float = 900) -> None:
        with self.log_path.open("ab") as log:
            done = subprocess.run(
                [str(airflow_binary()), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                env=self.environment(),
                timeout=timeout,
            )
        if done.returncode:
            raise ServiceError(f"{what} failed (exit {done.returncode}); see {self.log_path}")

    def healthy(self) -> tuple[bool, str]:
        if self.managed and not port_open("127.0.0.1", self.port):
            return False, "port closed"
        health = monitor_health(self.settings)
        if health is None:
            return False, "no answer from /api/v2/monitor/health"
        ok = health.get("metadatabase", {}).get("status") == "healthy"
        where = f"admin '{self.settings.airflow.admin_user}'"
        if self.managed:
            where += f", password in {self.settings.home / 'secrets' / 'airflow_admin_password'}"
        return ok, f"Airflow UI/API · {where}"


class AirflowScheduler(AirflowComponent):
    name = "airflow-scheduler"
    component = "scheduler"

    def arguments(self) -> list[str]:
        return ["scheduler", "--skip-serve-logs"]  # serve-logs binds 0.0.0.0; the api-server reads local logs


class AirflowDagProcessor(AirflowComponent):
    name = "airflow-dag-processor"
    component = "dag-processor"


class AirflowTriggerer(AirflowComponent):
    name = "airflow-triggerer"
    component = "triggerer"

    def arguments(self) -> list[str]:
        return ["triggerer", "--skip-serve-logs"]


AIRFLOW_SERVICES = [AirflowApiServer, AirflowScheduler, AirflowDagProcessor, AirflowTriggerer]
