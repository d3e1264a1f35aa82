"""Superset: Apache Superset 6 from its own virtual environment (``.venv-superset``), served by gunicorn on loopback.

Superset pins Flask, SQLAlchemy 1.4 and pandas versions that would fight dbt and pyspark, so it
never shares Pulse's venv: Pulse only talks to it over HTTP (``pulse.bi.client``) and runs its
CLI as a subprocess. Metadata lives in a ``superset`` database of the project's PostgreSQL; the
config file (with SECRET_KEY and the metadata password) is written 0600 under ``$PULSE_HOME/run``.
An existing Superset is used instead by setting PULSE_SUPERSET_URL (+ admin user/password).
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from pulse.common import pg
from pulse.common.files import write_private
from pulse.config import REPO_ROOT
from pulse.services.base import ManagedProcess, ServiceError, port_open

SUPERSET_VENV = REPO_ROOT / ".venv-superset"
# bump when the bootstrap (db upgrade, roles, admin) must run again, e.g. after upgrading Superset
BOOTSTRAP_VERSION = "6.1.0-1"

# Superset's event log stores request payloads in its `logs` table (an asset import's `passwords`
# field included): redact anything secret-looking before it is written.
REDACTING_EVENT_LOGGER = """
import json as _json
import re as _re

from superset.utils.log import DBEventLogger as _DBEventLogger

_SECRET = _re.compile(r"pass|secret|token|credential|private_key|api_key", _re.I)


def _redact(value):
    if isinstance(value, dict):
        return {k: ("<redacted>" if _SECRET.search(str(k)) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return _json.dumps(_redact(_json.loads(value)))
        except ValueError:
            return value
    return value


class RedactingEventLogger(_DBEventLogger):
    def log(self, *args, **kwargs):
        kwargs["records"] = [_redact(r) for r in kwargs.get("records") or []]
        if kwargs.get("curated_payload"):
            kwargs["curated_payload"] = _redact(kwargs["curated_payload"])
        super().log(*args, **kwargs)


EVENT_LOGGER = RedactingEventLogger()
"""

# A dashboard's first request, /api/v1/dashboard/<id>/datasets, which every chart waits for, serialises every
# dataset of the dashboard and builds a query context for each of its charts on every load (~0.3 s of a core
# for 24 charts, 1.5 s beside a browser on 2 cores): keep the payload per worker, keyed on the newest change
# to the dashboard, its charts, datasets (columns, metrics) and database. The access check still runs first.
DASHBOARD_DATASETS_CACHE = """
import copy as _copy

_DATASETS: dict = {}


def _newest(rows):
    return max((r.changed_on for r in rows if r.changed_on), default=None)


def _datasets_key(dashboard):
    sources = sorted((s for s in dashboard.datasources if s is not None), key=lambda s: s.id)
    parts = [dashboard.changed_on, tuple(sorted((s.id, s.changed_on) for s in dashboard.slices))]
    parts += [(s.id, s.changed_on, _newest(s.columns), _newest(s.metrics), s.database.changed_on) for s in sources]
    return tuple(parts)


def FLASK_APP_MUTATOR(app):  # once the app exists: Superset's modules cannot be imported while it reads this file
    from superset.daos.dashboard import DashboardDAO

    def get_datasets_for_dashboard(id_or_slug):
        dashboard = DashboardDAO.get_by_id_or_slug(id_or_slug)  # raises unless the user may see it
        key = _datasets_key(dashboard)
        hit = _DATASETS.get(dashboard.id)
        if hit is None or hit[0] != key:
            hit = _DATASETS[dashboard.id] = (key, dashboard.datasets_trimmed_for_slices())
        return _copy.deepcopy(hit[1])

    DashboardDAO.get_datasets_for_dashboard = staticmethod(get_datasets_for_dashboard)
"""


def superset_binary() -> Path:
    path = SUPERSET_VENV / "bin" / "superset"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run scripts/install.sh (it creates Superset's own venv)")
    return path


class Superset(ManagedProcess):
    name = "superset"
    start_timeout = 120.0

    @property
    def managed(self) -> bool:
        return self.settings.superset.managed

    @property
    def port(self) -> int:
        return self.settings.superset.port

    @property
    def endpoint(self) -> str:
        return self.settings.superset.base_url

    @property
    def config_file(self) -> Path:
        return self.settings.run_dir / "superset_config.py"

    @property
    def metadata_uri(self) -> str:
        cfg = self.settings.superset
        return self.settings.postgres.sqlalchemy_url("psycopg2", cfg.metadata_user, cfg.metadata_password, cfg.metadata_database)

    def superset_config(self) -> str:
        cfg = self.settings.superset
        cache_dir = self.data_dir / "cache"
        values = {
            "SECRET_KEY": cfg.secret_key,
            "SQLALCHEMY_DATABASE_URI": self.metadata_uri,
            # chart results cached on disk: shared by the gunicorn workers, survives restarts, warmed by deploy
            "DATA_CACHE_CONFIG": {
                "CACHE_TYPE": "FileSystemCache",
                "CACHE_DIR": str(cache_dir / "data"),
                "CACHE_DEFAULT_TIMEOUT": 86400,
                "CACHE_THRESHOLD": 20000,
            },
            "CACHE_CONFIG": {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(cache_dir / "meta")},
            "FILTER_STATE_CACHE_CONFIG": {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(cache_dir / "filter_state")},
            "EXPLORE_FORM_DATA_CACHE_CONFIG": {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(cache_dir / "form_data")},
            "RATELIMIT_STORAGE_URI": "memory://",
            "SUPERSET_WEBSERVER_PORT": cfg.port,
            "ROW_LIMIT": 50000,
            "SQLLAB_CTAS_NO_LIMIT": True,
            "FEATURE_FLAGS": {"DASHBOARD_RBAC": False, "ENABLE_TEMPLATE_PROCESSING": False},
            # no telemetry, no external fetches: the machine is offline and should stay quiet
            "SCARF_ANALYTICS": False,
            "WTF_CSRF_ENABLED": True,
            "TALISMAN_ENABLED": True,
            # same-origin only: no telemetry pixel (the frontend's scarf.sh beacon), no web fonts, no map tiles
            "TALISMAN_CONFIG": {
                "content_security_policy": {
                    "base-uri": ["'self'"],
                    "default-src": ["'self'"],
                    "img-src": ["'self'", "blob:", "data:"],
                    "worker-src": ["'self'", "blob:"],
                    "connect-src": ["'self'"],
                    "object-src": "'none'",
                    "style-src": ["'self'", "'unsafe-inline'"],
                    "font-src": ["'self'", "data:"],
                    "script-src": ["'self'", "'strict-dynamic'"],
                },
                "content_security_policy_nonce_in": ["script-src"],
                "force_https": False,
                "session_cookie_secure": False,
            },
            "CONTENT_SECURITY_POLICY_WARNING": False,
            "SESSION_COOKIE_SAMESITE": "Lax",
        }
        lines = ["# Written by Pulse (pulse/services/superset.py) — do not edit; holds secrets (0600)."]
        lines += [f"{key} = {value!r}" for key, value in values.items()]  # repr of str/int/bool/dict is Python
        return "\n".join(lines) + "\n" + REDACTING_EVENT_LOGGER + (DASHBOARD_DATASETS_CACHE if cfg.datasets_cache else "")

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "VIRTUAL_ENV"))}
        env.update(
            SUPERSET_CONFIG_PATH=str(self.config_file),
            SUPERSET_HOME=str(self.data_dir),
            FLASK_APP="superset.app:create_app()",
            PATH=f"{SUPERSET_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            PYTHONUNBUFFERED="1",
        )
        return env

    def _metadata_database(self) -> None:
        """The ``superset`` role and database in the project's PostgreSQL (created once, password kept in sync)."""
        cfg = self.settings.superset
        pg.ensure_login_database(
            self.settings.postgres, cfg.metadata_user, cfg.metadata_password, cfg.metadata_database, sync_password=True
        )

    def _run(self, cmd: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 900) -> None:
        """A one-off command in Superset's venv, output into the service log."""
        with self.log_path.open("ab") as log:
            done = subprocess.run(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                env=env or self.environment(),
                timeout=timeout,
            )
        if done.returncode:
            raise ServiceError(f"{what} failed (exit {done.returncode}); see {self.log_path}")

    def _cli(self, *args: str) -> None:
        self._run([str(superset_binary()), *args], f"superset {args[0]}")

    def prepare(self) -> None:
        self.data_dir.chmod(0o700)
        for sub in ("data", "meta", "filter_state", "form_data"):
            (self.data_dir / "cache" / sub).mkdir(parents=True, exist_ok=True)
        write_private(self.config_file, self.superset_config())
        self._metadata_database()
        stamp = self.data_dir / ".bootstrapped"
        if not (stamp.exists() and stamp.read_text() == BOOTSTRAP_VERSION):
            self._cli("db", "upgrade")
            self._cli("init")
            stamp.write_text(BOOTSTRAP_VERSION)
        self._admin_user()

    def _admin_user(self) -> None:
        """Create the admin, or reset its password to the configured one (the config is the truth).
        The password travels in the environment, never on a command line or in the log."""
        cfg = self.settings.superset
        script = (
            "import os\n"
            "from superset.app import create_app\n"
            "app = create_app()\n"
            "with app.app_context():\n"
            "    from superset import security_manager as sm\n"
            "    from superset.extensions import db\n"
            "    name, pw = os.environ['PULSE_BI_ADMIN'], os.environ['PULSE_BI_PASSWORD']\n"
            "    user = sm.find_user(username=name)\n"
            "    if user is None:\n"
            "        sm.add_user(name, 'Pulse', 'Admin', f'{name}@pulse.local', sm.find_role('Admin'), password=pw)\n"
            "        open(os.environ['PULSE_BI_CREATED'], 'w').close()\n"
            "    else:\n"
            "        sm.reset_password(user.id, pw)\n"
            "    db.session.commit()\n"
        )
        created = self.settings.run_dir / "superset-admin-created"
        created.unlink(missing_ok=True)
        env = self.environment() | {
            "PULSE_BI_ADMIN": cfg.admin_user,
            "PULSE_BI_PASSWORD": cfg.admin_password,
            "PULSE_BI_CREATED": str(created),
        }
        self._run([str(SUPERSET_VENV / "bin" / "python"), "-c", script], "creating the Superset admin", env=env, timeout=300)
        self._created_admin = created.exists()
        created.unlink(missing_ok=True)

    def notice(self) -> str | None:
        """The admin password, printed once: when the admin was just created (it stays in secrets/, 0600)."""
        if not getattr(self, "_created_admin", False):
            return None
        self._created_admin = False
        cfg = self.settings.superset
        store = self.settings.secrets_dir / "superset_admin_password"
        generated = store.exists() and store.read_text().strip() == cfg.admin_password
        if not generated:
            return f"created admin '{cfg.admin_user}' with the configured password"
        return f"created admin '{cfg.admin_user}' with password {cfg.admin_password} (shown once; kept in {store}, 0600)"

    def command(self) -> list[str]:
        cfg = self.settings.superset
        return [
            str(SUPERSET_VENV / "bin" / "gunicorn"),
            "--bind",
            f"127.0.0.1:{cfg.port}",
            "--workers",
            str(cfg.workers),
            "--worker-class",
            "gthread",
            "--threads",
            "4",
            "--timeout",
            "120",
            "--limit-request-line",
            "0",
            "--limit-request-field_size",
            "0",
            "superset.app:create_app()",
        ]

    def healthy(self) -> tuple[bool, str]:
        if self.managed and not port_open("127.0.0.1", self.port):
            return False, "port closed"
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=5) as resp:
                ok = resp.read().decode().strip() == "OK"
        except (urllib.error.URLError, OSError) as exc:
            return False, str(exc)[:120]
        where = f"admin '{self.settings.superset.admin_user}'"
        if self.managed:
            where += f", password in {self.settings.home / 'secrets' / 'superset_admin_password'}"
        return ok, f"Superset · {where}"
