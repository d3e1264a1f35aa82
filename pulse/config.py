"""All of Pulse's configuration in one place.

Precedence: environment variables (``PULSE_*``) > the TOML file named by
``PULSE_CONFIG`` (default ``<repo>/pulse.toml`` when it exists) > defaults.

A component is *managed* (Pulse starts it as a local process under ``PULSE_HOME``)
unless an endpoint for it is configured, in which case it is *external* and Pulse
only connects to it. That is the single switch between the embedded demo and a
real MinIO/AWS S3, a managed Postgres or a Spark cluster.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import quote

from pulse.domain import source_name

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_SOURCE = "demo"  # the source the demo loads, and what commands act on by default
# The ClickHouse named collection holding the Postgres credentials, and the database dbt attaches with it
PG_COLLECTION = "pulse_pg"
PG_DATABASE = "pulse_pg"


def setting(default: Any, help: str, *, key: str | None = None, secret: bool = False, under_home: str | None = None) -> Any:
    """A configuration field: its default and what it means (both go into docs/configuration.md).

    ``key`` is the name in the environment (``PULSE_<SECTION>_<KEY>``) and in pulse.toml when it differs from the
    field's; a ``secret`` left unset is generated once per installation; ``under_home`` is a default path
    relative to ``$PULSE_HOME``."""
    return field(default=default, metadata={"help": help, "key": key, "secret": secret, "under_home": under_home})


def _toml() -> dict:
    path = Path(os.environ.get("PULSE_CONFIG", REPO_ROOT / "pulse.toml"))
    if path.is_file():
        with path.open("rb") as fh:
            return tomllib.load(fh)
    return {}


def stored_secret(home: Path, name: str) -> str:
    """A generated secret of this installation, or "" when there is none yet."""
    try:
        return (home / "secrets" / name).read_text().strip()
    except FileNotFoundError:
        return ""


def _key(f: Any) -> str:
    """A field's name in the environment (PULSE_<SECTION>_<KEY>) and in pulse.toml."""
    return f.metadata.get("key") or f.name


def _secret_fields() -> Iterator[tuple[str, str, str, str]]:
    """(Settings field, section, dataclass field, key) of every secret setting."""
    hints = get_type_hints(Settings)
    for name, section in SECTIONS.items():
        for f in fields(hints[name]):
            if f.metadata.get("secret"):
                yield name, section, f.name, _key(f)


def ensure_secrets() -> list[str]:
    """The installation's secrets: every credential the configuration does not set is generated once into
    ``$PULSE_HOME/secrets`` (0600). The explicit step before services start (``pulse services up``, the demo,
    the test and benchmark set-ups); returns the names it created. Load the settings after it."""
    table, created = _toml(), []
    home = _home(table)
    for _, section, _, key in _secret_fields():
        stored = f"{section}_{key}"
        if not _raw(section, key, table.get(section, {})) and not stored_secret(home, stored):
            generated_secret(home, stored)
            created.append(stored)
    return created


def settings_with_secrets() -> Settings:
    """ensure_secrets(), then the (cached) settings loaded afresh: for what starts services."""
    ensure_secrets()
    settings.cache_clear()
    return settings()


def missing_secrets(s: Settings) -> list[str]:
    """The secrets these settings lack (loaded before ensure_secrets() made them)."""
    return [f"{section}_{key}" for name, section, attr, key in _secret_fields() if not getattr(getattr(s, name), attr)]


def generated_secret(home: Path, name: str) -> str:
    """A secret made once per installation and kept 0600 under ``$PULSE_HOME/secrets`` (0700)."""
    path = home / "secrets" / name  # Settings.secrets_dir: this runs while Settings is being built
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    home.mkdir(mode=0o711, parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    value = secrets.token_urlsafe(24)
    # O_EXCL: two processes starting at once agree on the first one's value
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


@dataclass(frozen=True)
class S3Config:
    """The object store holding RAW (and ML artefacts)."""

    endpoint_url: str | None = setting(None, "S3 endpoint; unset = the managed local SeaweedFS", key="endpoint")
    access_key: str = setting("pulse", "S3 access key")
    secret_key: str = setting("", "S3 secret key", secret=True)
    region: str = setting("us-east-1", "S3 region")
    raw_bucket: str = setting("pulse-raw", "bucket of the RAW layer")
    raw_prefix: str = setting("events", "key prefix of the RAW layer in that bucket")
    port: int = setting(18333, "local S3 gateway port (managed mode)")
    base_port: int = setting(18300, "first of the 9 ports SeaweedFS' other components take (managed mode)")

    @property
    def managed(self) -> bool:
        return self.endpoint_url is None

    @property
    def url(self) -> str:
        return self.endpoint_url or f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class PostgresConfig:
    """The staging warehouse (and the metadata databases of Superset and Airflow)."""

    host: str | None = setting(None, "Postgres host; unset = the managed local cluster")
    port: int = setting(15432, "Postgres port")
    user: str = setting("pulse", "the application role")
    password: str = setting("", "the application role's password", secret=True)
    database: str = setting("pulse", "the application database")
    admin_user: str = setting("postgres", "the local cluster's superuser (managed mode only)")
    admin_password: str = setting("", "the local cluster's superuser password", secret=True)
    sslmode: str = setting("prefer", "libpq sslmode (`require` for a managed Postgres)")

    @property
    def managed(self) -> bool:
        return self.host is None

    @property
    def address(self) -> str:
        return self.host or "127.0.0.1"

    def conninfo(self, admin: bool = False, database: str | None = None) -> str:
        user, password = (self.admin_user, self.admin_password) if admin else (self.user, self.password)
        db = database or (self.database if not admin else "postgres")
        return (
            f"host={self.address} port={self.port} user={user} password={password} "
            f"dbname={db} sslmode={self.sslmode} connect_timeout=5"
        )

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.address}:{self.port}/{self.database}"

    def sqlalchemy_url(self, driver: str, user: str, password: str, database: str) -> str:
        """A SQLAlchemy URL on this server for another login (a tool's metadata database)."""
        return (
            f"postgresql+{driver}://{quote(user, safe='')}:{quote(password, safe='')}@{self.address}:{self.port}/"
            f"{database}?sslmode={self.sslmode}"
        )


@dataclass(frozen=True)
class ClickHouseConfig:
    """The marts warehouse (the realtime and ML tables too)."""

    host: str | None = setting(None, "ClickHouse host; unset = the managed local chDB-over-HTTP service")
    port: int = setting(18123, "ClickHouse HTTP port")
    user: str = setting("pulse", "the writer role: dbt, the streaming sink, the ML writer")
    password: str = setting("", "the writer's password", secret=True)
    bi_user: str = setting("pulse_bi", "the read-only role (Superset, ad-hoc readers): readonly enforced by the server")
    bi_password: str = setting("", "the read-only role's password", secret=True)
    database: str = setting("pulse", "prefix of the marts databases (`<database>_<source>`)")
    secure: bool = setting(False, "HTTPS to ClickHouse")

    @property
    def managed(self) -> bool:
        return self.host is None

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host or '127.0.0.1'}:{self.port}"

    def marts_database(self, source: str) -> str:
        """Where the published marts of a source live (what dashboards read)."""
        return f"{self.database}_{source}"

    def build_database(self, source: str) -> str:
        """Where dbt builds and tests a source's models before they are published (write–audit–publish)."""
        return f"{self.database}_{source}{BUILD_SUFFIX}"

    @property
    def realtime_database(self) -> str:
        """Where the streaming job keeps the realtime tables (a name no source may take)."""
        return f"{self.database}_{REALTIME}"

    @property
    def reader_databases(self) -> str:
        """Databases the read-only role may read (a regex): every source's published marts."""
        return rf"{re.escape(self.database)}_[a-z][a-z0-9_]*(?<!{BUILD_SUFFIX})"


BUILD_SUFFIX = "__build"
REALTIME = "realtime"  # the realtime tables' database suffix: reserved, not a source name


@dataclass(frozen=True)
class PipelineConfig:
    """Data-reliability thresholds of the cleaning job and the marts."""

    late_arrival_days: int = setting(3, "events land up to this many ingest days after they happened (the watermark)")
    max_quarantine_share: float = setting(0.10, "quality gate: a load quarantining more than this share of its rows fails")
    max_rule_share: float = setting(0.05, "quality gate: … or more than this share under any single rule")
    gate_min_rows: int = setting(20, "quality gate: only rules/totals above this many rows count (tiny files are no signal)")
    max_shrink: float = setting(0.5, "a refresh keeping under (1 - this) of the previous load's events is refused unless forced")


@dataclass(frozen=True)
class SparkConfig:
    """The Spark jobs (cleaning, streaming)."""

    master: str = setting("local[2]", "Spark master: `local[N]` in the job's process, or a cluster URL")
    driver_memory: str = setting("8g", "driver memory of a job")
    shuffle_partitions: int = setting(4, "spark.sql.shuffle.partitions")
    jdbc_jar: str = setting("/usr/share/java/postgresql.jar", "Postgres JDBC driver (the benchmark's JDBC path only)")


@dataclass(frozen=True)
class SupersetConfig:
    """The dashboards."""

    url: str | None = setting(None, "Superset URL; unset = the managed local Superset (own venv, gunicorn on loopback)")
    port: int = setting(18088, "local Superset port")
    admin_user: str = setting("admin", "Superset admin")
    admin_password: str = setting("", "Superset admin's password", secret=True)
    secret_key: str = setting("", "Superset SECRET_KEY: signs sessions, encrypts stored database passwords", secret=True)
    metadata_database: str = setting("superset", "Superset's metadata database, in the project's Postgres")
    metadata_user: str = setting("superset", "its role")
    metadata_password: str = setting("", "its role's password", secret=True)
    workers: int = setting(2, "gunicorn workers")
    datasets_cache: bool = setting(
        True, "keep each dashboard's datasets payload per worker until the dashboard, a chart or a dataset changes"
    )

    @property
    def managed(self) -> bool:
        return self.url is None

    @property
    def base_url(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.port}").rstrip("/")


@dataclass(frozen=True)
class KafkaConfig:
    """The event stream's broker."""

    bootstrap: str | None = setting(None, "Kafka bootstrap servers; unset = the managed local broker (KRaft, single node)")
    port: int = setting(19092, "local SASL listener clients use")
    controller_port: int = setting(19093, "local KRaft controller listener (loopback, SASL too)")
    user: str = setting("pulse", "the client login (producer, streaming job, status)")
    password: str = setting("", "the client's password", secret=True)
    broker_password: str = setting("", "the broker's own login (inter-broker and controller)", secret=True)
    mechanism: str = setting("PLAIN", "SASL mechanism (SCRAM-SHA-256/512 for an external cluster that uses it)")
    security_protocol: str = setting("SASL_PLAINTEXT", "SASL_PLAINTEXT on loopback; SASL_SSL for an external cluster")
    heap: str = setting("512m", "local broker's heap")

    @property
    def managed(self) -> bool:
        return self.bootstrap is None

    @property
    def servers(self) -> str:
        return self.bootstrap or f"127.0.0.1:{self.port}"

    def client_config(self) -> dict[str, str]:
        """librdkafka / confluent-kafka settings for a client of this cluster."""
        return {
            "bootstrap.servers": self.servers,
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.mechanism,
            "sasl.username": self.user,
            "sasl.password": self.password,
        }

    def spark_options(self) -> dict[str, str]:
        """Options of Spark's Kafka source/sink for this cluster (the JAAS line carries the password:
        Spark's redaction regex for option values hides it in plans and logs, see ``common.spark``)."""
        module = "plain.PlainLoginModule" if self.mechanism == "PLAIN" else "scram.ScramLoginModule"
        return {
            "kafka.bootstrap.servers": self.servers,
            "kafka.security.protocol": self.security_protocol,
            "kafka.sasl.mechanism": self.mechanism,
            "kafka.sasl.jaas.config": f"org.apache.kafka.common.security.{module} required "
            f'username="{self.user}" password="{self.password}";',
        }


@dataclass(frozen=True)
class StreamConfig:
    """The streaming job."""

    topic: str = setting("pulse.events", "where the producer writes and the streaming job reads (created by Pulse)")
    partitions: int = setting(4, "the topic's partitions: the stream's parallelism, one Spark task each")
    retention_hours: int = setting(7 * 24, "the topic's retention")
    trigger_seconds: float = setting(1.0, "micro-batch interval")
    lateness_minutes: int = setting(10, "an event reaching Kafka later than this after it happened is quarantined (too_late)")
    max_offsets_per_trigger: int = setting(500_000, "bounds a catch-up batch after downtime")
    checkpoint: str = setting("", "the checkpoint: a local path or an s3a:// URI", under_home="checkpoints/realtime")
    spec: str = setting("open_events", "the source spec the stream's JSON messages are read with (a preset or a YAML path)")

    @property
    def query_name(self) -> str:
        return "pulse_realtime"


@dataclass(frozen=True)
class AirflowConfig:
    """The orchestrator."""

    url: str | None = setting(None, "Airflow URL; unset = the managed local Airflow (own venv, components on loopback)")
    port: int = setting(18080, "the local api-server (UI, REST, execution API)")
    admin_user: str = setting("admin", "Airflow admin")
    admin_password: str = setting("", "Airflow admin's password", secret=True)
    metadata_database: str = setting("airflow", "Airflow's metadata database, in the project's Postgres")
    metadata_user: str = setting("airflow", "its role")
    metadata_password: str = setting("", "its role's password", secret=True)
    secret_key: str = setting("", "installation secret: the fernet key, API secret and JWT secret derive from it", secret=True)
    parallelism: int = setting(2, "task slots of the LocalExecutor")
    schedule: str = setting("30 0 * * *", "cron (UTC) of pulse_daily; each run processes the day before it runs")
    source: str = setting(DEMO_SOURCE, "the source pulse_daily runs for")
    retries: int = setting(2, "retries per task, with exponential back-off")
    raw_wait_hours: float = setting(6.0, "how long the sensor waits for the day's RAW partition before the run fails")

    @property
    def managed(self) -> bool:
        return self.url is None

    @property
    def base_url(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.port}").rstrip("/")


@dataclass(frozen=True)
class AlertsConfig:
    """Where alerts go; a channel is on when its settings are there (none by default)."""

    slack_webhook_url: str | None = setting(None, "Slack incoming webhook (on when set)")
    telegram_token: str | None = setting(None, "Telegram bot token (on when token and chat are set)")
    telegram_chat_id: str | None = setting(None, "Telegram chat")
    telegram_api_url: str = setting("https://api.telegram.org", "the Bot API's base URL (a local stand-in in tests)")
    smtp_host: str | None = setting(None, "SMTP host (email on when host and recipients are set)")
    smtp_port: int = setting(587, "SMTP port")
    smtp_user: str | None = setting(None, "SMTP login")
    smtp_password: str | None = setting(None, "SMTP password")
    smtp_starttls: bool = setting(True, "STARTTLS")
    email_from: str = setting("pulse@localhost", "sender")
    email_to: str | None = setting(None, "recipients, comma-separated")

    @property
    def channels(self) -> list[str]:
        on = {
            "slack": bool(self.slack_webhook_url),
            "telegram": bool(self.telegram_token and self.telegram_chat_id),
            "email": bool(self.smtp_host and self.email_to),
        }
        return [name for name, enabled in on.items() if enabled]


@dataclass(frozen=True)
class Settings:
    home: Path
    s3: S3Config
    postgres: PostgresConfig
    spark: SparkConfig
    clickhouse: ClickHouseConfig
    pipeline: PipelineConfig
    superset: SupersetConfig
    kafka: KafkaConfig
    stream: StreamConfig
    airflow: AirflowConfig
    alerts: AlertsConfig

    # The layout of $PULSE_HOME, in one place
    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def stream_progress_file(self) -> Path:  # the streaming job's last progress, read by `pulse status`
        return self.run_dir / "stream-progress.json"

    @property
    def dbt_dir(self) -> Path:  # dbt's target/ folders
        return self.home / "dbt"

    def dbt_target(self, source: str) -> Path:
        """dbt's target/ of one source: its manifest stays valid for the next build of that source (dbt
        parses the project again whenever its vars change, and they name the source), and two sources
        built at once do not write over each other's artefacts."""
        return self.dbt_dir / "target" / source

    @property
    def dbt_log(self) -> Path:  # dbt's full (debug) log of every invocation
        return self.logs_dir / "dbt.log"

    @property
    def spark_log(self) -> Path:  # the Spark driver JVM's own output (start-up notes, SLF4J, log4j warnings)
        return self.logs_dir / "spark-driver.log"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    def reports_dir(self, source: str) -> Path:
        return self.home / "reports" / source

    def ml_dir(self, source: str) -> Path:
        return self.home / "ml" / source


# Settings field -> its section in pulse.toml and in the PULSE_<SECTION>_<KEY> variables
SECTIONS = {
    "s3": "s3", "postgres": "pg", "spark": "spark", "clickhouse": "ch", "pipeline": "pipeline", "superset": "superset",
    "kafka": "kafka", "stream": "stream", "airflow": "airflow", "alerts": "alerts",
}  # fmt: skip
CHECKS = {("airflow", "source"): source_name}  # values checked where they enter


def _coerce(raw: Any, kind: Any) -> Any:
    """A value from the environment or TOML as the field's type (every other field is a string)."""
    if kind is bool:
        return str(raw).lower() in ("1", "true", "yes")
    return kind(raw) if kind in (int, float) else str(raw)


def _raw(section: str, key: str, table: dict) -> Any:
    """A setting as configured: the environment variable, else the key in its TOML section, else None."""
    env = os.environ.get(f"PULSE_{section.upper()}_{key.upper()}")
    return env if env is not None else table.get(key)


def _section(cls: type, section: str, table: dict, home: Path) -> Any:
    values, hints = {}, get_type_hints(cls)
    for f in fields(cls):
        key = _key(f)
        raw = _raw(section, key, table)
        value = f.default if raw is None else _coerce(raw, hints[f.name])
        if f.metadata.get("secret") and not value:
            value = stored_secret(home, f"{section}_{key}")  # "" until ensure_secrets() made it
        if f.metadata.get("under_home") and not value:
            value = str(home / f.metadata["under_home"])
        if check := CHECKS.get((section, f.name)):
            value = check(value)
        values[f.name] = value
    return cls(**values)


def _home(table: dict) -> Path:
    return Path(os.environ.get("PULSE_HOME", table.get("home", REPO_ROOT / ".pulse"))).resolve()


def load_settings() -> Settings:
    """The configuration as it stands; reads files, never writes one (secrets come from ensure_secrets())."""
    table = _toml()
    home = _home(table)
    hints = get_type_hints(Settings)
    parts = {name: _section(hints[name], section, table.get(section, {}), home) for name, section in SECTIONS.items()}
    return Settings(home=home, **parts)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()


TOML_EXAMPLE = """## Example: a real MinIO, a managed Postgres, a Spark cluster, ClickHouse Cloud

```toml
# pulse.toml (in .gitignore: it may hold credentials)
[s3]
endpoint = "https://minio.internal:9000"
access_key = "analytics"
secret_key = "…"
[pg]
host = "pg.internal"
port = 5432
sslmode = "require"
[spark]
master = "spark://spark-master.internal:7077"
[ch]
host = "abc123.clickhouse.cloud"
port = 8443
secure = true
user = "default"
password = "…"
```"""


def markdown() -> str:
    """docs/configuration.md: every setting with its variable, default and meaning (a test keeps it current)."""
    lines = [
        "# Configuration",
        "",
        "Generated from the dataclasses in `pulse/config.py` by `python -m pulse.config --markdown`; a test fails",
        "when this page is out of date.",
        "",
        "Precedence: an environment variable `PULSE_<SECTION>_<KEY>` > the key in section `[<section>]` of the TOML",
        "file named by `PULSE_CONFIG` (default `<repo>/pulse.toml`) > the default. `PULSE_HOME` (default",
        "`<repo>/.pulse`) holds data, logs, pids and secrets. Setting a service's endpoint (`endpoint`, `host`, `url`,",
        "`bootstrap`) makes it *external*: Pulse connects to it and starts nothing. A secret left unset is",
        "*generated* once per installation into `$PULSE_HOME/secrets/<section>_<key>` (0600) by `pulse services up`",
        "(`pulse.config.ensure_secrets()`, the explicit step before services start); loading the settings writes nothing.",
    ]
    hints = get_type_hints(Settings)
    for name, section in SECTIONS.items():
        cls = hints[name]
        lines += ["", f"## `[{section}]` — {cls.__doc__}", "", "| variable | default | what |", "|---|---|---|"]
        for f in fields(cls):
            key = _key(f)
            if f.metadata.get("secret"):
                default = "*generated*"
            elif f.metadata.get("under_home"):
                default = f"`$PULSE_HOME/{f.metadata['under_home']}`"
            elif f.default is None or f.default is MISSING:
                default = "–"
            else:
                default = f"`{str(f.default).lower() if isinstance(f.default, bool) else f.default}`"
            lines.append(f"| `PULSE_{section.upper()}_{key.upper()}` | {default} | {f.metadata['help']} |")
    return "\n".join([*lines, "", TOML_EXAMPLE]) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        raise SystemExit("usage: python -m pulse.config --markdown > docs/configuration.md")
    print(markdown(), end="")
