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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from pulse.domain import source_name

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_SOURCE = "demo"  # the source the demo loads, and what commands act on by default
# The ClickHouse named collection holding the Postgres credentials, and the database dbt attaches with it
PG_COLLECTION = "pulse_pg"
PG_DATABASE = "pulse_pg"


def _toml() -> dict:
    path = Path(os.environ.get("PULSE_CONFIG", REPO_ROOT / "pulse.toml"))
    if path.is_file():
        with path.open("rb") as fh:
            return tomllib.load(fh)
    return {}


class _Source:
    """Looks a setting up in env, then in the TOML section, then the default."""

    def __init__(self, section: str, table: dict) -> None:
        self.section = section
        self.table = table.get(section, {})

    def secret(self, key: str, home: Path) -> str:
        """A credential: configured, or generated once for this installation."""
        return self.get(key, None) or generated_secret(home, f"{self.section}_{key}")

    def get(self, key: str, default: str | None) -> str | None:
        env = os.environ.get(f"PULSE_{self.section.upper()}_{key.upper()}")
        if env is not None:
            return env
        value = self.table.get(key, default)
        return None if value is None else str(value)

    def int(self, key: str, default: int) -> int:
        return int(self.get(key, str(default)))  # type: ignore[arg-type]


def generated_secret(home: Path, name: str) -> str:
    """A secret made once per installation and kept 0600 under ``$PULSE_HOME/secrets`` (0700).
    Used wherever the configuration does not set the value itself."""
    path = home / "secrets" / name
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
    endpoint_url: str | None  # None -> the managed local SeaweedFS
    access_key: str
    secret_key: str
    region: str
    raw_bucket: str
    raw_prefix: str
    port: int  # local S3 gateway port (managed mode)
    base_port: int  # SeaweedFS' other components take ports from here

    @property
    def managed(self) -> bool:
        return self.endpoint_url is None

    @property
    def url(self) -> str:
        return self.endpoint_url or f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class PostgresConfig:
    host: str | None  # None -> the managed local cluster
    port: int
    user: str
    password: str
    database: str
    admin_user: str
    admin_password: str
    sslmode: str

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
    host: str | None  # None -> the managed local chDB-over-HTTP service
    port: int  # HTTP interface
    user: str  # writer role: dbt, the streaming sink, the ML writer
    password: str
    bi_user: str  # read-only role (Superset, ad-hoc readers): readonly enforced by the server
    bi_password: str
    database: str
    secure: bool

    @property
    def managed(self) -> bool:
        return self.host is None

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host or '127.0.0.1'}:{self.port}"

    def marts_database(self, source: str) -> str:
        """Where the published marts of a stage-1 source live (what dashboards read)."""
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
    """Data-reliability thresholds of stages 1–2."""

    late_arrival_days: int  # events land up to this many ingest days after they happened
    max_quarantine_share: float  # a load quarantining more than this share of its rows fails before the swap
    max_rule_share: float  # … or more than this share under any single rule
    gate_min_rows: int  # … counting only rules/totals above this many rows (tiny files are no signal)
    max_shrink: float  # a refresh keeping less than (1 - this) of the previous load's events is refused unless forced


@dataclass(frozen=True)
class SparkConfig:
    master: str
    driver_memory: str
    shuffle_partitions: int
    jdbc_jar: str


@dataclass(frozen=True)
class SupersetConfig:
    url: str | None  # None -> the managed local Superset (its own venv, gunicorn on loopback)
    port: int
    admin_user: str
    admin_password: str
    secret_key: str  # signs sessions and encrypts stored database passwords: one per installation
    metadata_database: str  # Superset's own metadata DB, in the project's PostgreSQL
    metadata_user: str
    metadata_password: str
    workers: int

    @property
    def managed(self) -> bool:
        return self.url is None

    @property
    def base_url(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.port}").rstrip("/")


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str | None  # None -> the managed local broker (KRaft, single node)
    port: int  # SASL listener clients use
    controller_port: int  # KRaft controller listener (loopback, SASL too)
    user: str  # the client login (producer, streaming job, status)
    password: str
    broker_password: str  # the broker's own login (inter-broker and controller)
    mechanism: str  # PLAIN locally; SCRAM-SHA-256/512 for an external cluster that uses it
    security_protocol: str  # SASL_PLAINTEXT on loopback; SASL_SSL for an external cluster
    heap: str

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
    topic: str  # where the producer writes and the streaming job reads (created by Pulse)
    partitions: int  # the stream's parallelism: one Spark task per partition
    retention_hours: int
    trigger_seconds: float  # micro-batch interval
    lateness_minutes: int  # an event that reaches Kafka later than this after it happened is quarantined (too_late)
    max_offsets_per_trigger: int  # bounds a catch-up batch after downtime
    checkpoint: str  # a local path or an s3a:// URI

    @property
    def query_name(self) -> str:
        return "pulse_realtime"


@dataclass(frozen=True)
class AirflowConfig:
    url: str | None  # None -> the managed local Airflow (its own venv, components on loopback)
    port: int  # the api-server (UI, REST, execution API)
    admin_user: str
    admin_password: str
    metadata_database: str  # Airflow's metadata DB, in the project's PostgreSQL
    metadata_user: str
    metadata_password: str
    secret_key: str  # one per installation: fernet key, API secret and JWT secret derive from it
    parallelism: int  # task slots of the LocalExecutor (2 cores: 2)
    schedule: str  # cron of pulse_daily; each run processes the day before it runs
    source: str  # the source pulse_daily runs for
    retries: int  # per task, with exponential back-off
    raw_wait_hours: float  # how long the sensor waits for the day's RAW partition before the run fails

    @property
    def managed(self) -> bool:
        return self.url is None

    @property
    def base_url(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.port}").rstrip("/")


@dataclass(frozen=True)
class AlertsConfig:
    """Where alerts go; a channel is on when its settings are there (none by default)."""

    slack_webhook_url: str | None  # an incoming webhook, e.g. https://hooks.slack.com/services/T…/B…/…
    telegram_token: str | None
    telegram_chat_id: str | None
    telegram_api_url: str  # the Bot API's base URL (a local stand-in in tests)
    smtp_host: str | None
    smtp_port: int
    smtp_user: str | None
    smtp_password: str | None
    smtp_starttls: bool
    email_from: str
    email_to: str | None  # comma-separated

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


def load_settings() -> Settings:
    table = _toml()
    s3, pg, spark, ch = _Source("s3", table), _Source("pg", table), _Source("spark", table), _Source("ch", table)
    pipeline, bi, kafka = _Source("pipeline", table), _Source("superset", table), _Source("kafka", table)
    stream, airflow, alerts = _Source("stream", table), _Source("airflow", table), _Source("alerts", table)
    home = Path(os.environ.get("PULSE_HOME", table.get("home", REPO_ROOT / ".pulse"))).resolve()
    return Settings(
        home=home,
        s3=S3Config(
            endpoint_url=s3.get("endpoint", None),
            access_key=s3.get("access_key", "pulse"),  # type: ignore[arg-type]
            secret_key=s3.secret("secret_key", home),
            region=s3.get("region", "us-east-1"),  # type: ignore[arg-type]
            raw_bucket=s3.get("raw_bucket", "pulse-raw"),  # type: ignore[arg-type]
            raw_prefix=s3.get("raw_prefix", "events"),  # type: ignore[arg-type]
            port=s3.int("port", 18333),
            base_port=s3.int("base_port", 18300),
        ),
        postgres=PostgresConfig(
            host=pg.get("host", None),
            port=pg.int("port", 15432),
            user=pg.get("user", "pulse"),  # type: ignore[arg-type]
            password=pg.secret("password", home),
            database=pg.get("database", "pulse"),  # type: ignore[arg-type]
            admin_user=pg.get("admin_user", "postgres"),  # type: ignore[arg-type]
            admin_password=pg.secret("admin_password", home),
            sslmode=pg.get("sslmode", "prefer"),  # type: ignore[arg-type]
        ),
        spark=SparkConfig(
            master=spark.get("master", "local[2]"),  # type: ignore[arg-type]
            driver_memory=spark.get("driver_memory", "8g"),  # type: ignore[arg-type]
            shuffle_partitions=spark.int("shuffle_partitions", 4),
            jdbc_jar=spark.get("jdbc_jar", "/usr/share/java/postgresql.jar"),  # type: ignore[arg-type]
        ),
        clickhouse=ClickHouseConfig(
            host=ch.get("host", None),
            port=ch.int("port", 18123),
            user=ch.get("user", "pulse"),  # type: ignore[arg-type]
            password=ch.secret("password", home),
            bi_user=ch.get("bi_user", "pulse_bi"),  # type: ignore[arg-type]
            bi_password=ch.secret("bi_password", home),
            database=ch.get("database", "pulse"),  # type: ignore[arg-type]
            secure=(ch.get("secure", "false") or "false").lower() in ("1", "true", "yes"),
        ),
        pipeline=PipelineConfig(
            late_arrival_days=pipeline.int("late_arrival_days", 3),
            max_quarantine_share=float(pipeline.get("max_quarantine_share", "0.10")),  # type: ignore[arg-type]
            max_rule_share=float(pipeline.get("max_rule_share", "0.05")),  # type: ignore[arg-type]
            gate_min_rows=pipeline.int("gate_min_rows", 20),
            max_shrink=float(pipeline.get("max_shrink", "0.5")),  # type: ignore[arg-type]
        ),
        superset=SupersetConfig(
            url=bi.get("url", None),
            port=bi.int("port", 18088),
            admin_user=bi.get("admin_user", "admin"),  # type: ignore[arg-type]
            admin_password=bi.secret("admin_password", home),
            secret_key=bi.secret("secret_key", home),
            metadata_database=bi.get("metadata_database", "superset"),  # type: ignore[arg-type]
            metadata_user=bi.get("metadata_user", "superset"),  # type: ignore[arg-type]
            metadata_password=bi.secret("metadata_password", home),
            workers=bi.int("workers", 2),
        ),
        kafka=KafkaConfig(
            bootstrap=kafka.get("bootstrap", None),
            port=kafka.int("port", 19092),
            controller_port=kafka.int("controller_port", 19093),
            user=kafka.get("user", "pulse"),  # type: ignore[arg-type]
            password=kafka.secret("password", home),
            broker_password=kafka.secret("broker_password", home),
            mechanism=kafka.get("mechanism", "PLAIN"),  # type: ignore[arg-type]
            security_protocol=kafka.get("security_protocol", "SASL_PLAINTEXT"),  # type: ignore[arg-type]
            heap=kafka.get("heap", "512m"),  # type: ignore[arg-type]
        ),
        stream=StreamConfig(
            topic=stream.get("topic", "pulse.events"),  # type: ignore[arg-type]
            partitions=stream.int("partitions", 4),
            retention_hours=stream.int("retention_hours", 7 * 24),
            trigger_seconds=float(stream.get("trigger_seconds", "1")),  # type: ignore[arg-type]
            lateness_minutes=stream.int("lateness_minutes", 10),
            max_offsets_per_trigger=stream.int("max_offsets_per_trigger", 500_000),
            checkpoint=stream.get("checkpoint", str(home / "checkpoints" / "realtime")),  # type: ignore[arg-type]
        ),
        airflow=AirflowConfig(
            url=airflow.get("url", None),
            port=airflow.int("port", 18080),
            admin_user=airflow.get("admin_user", "admin"),  # type: ignore[arg-type]
            admin_password=airflow.secret("admin_password", home),
            metadata_database=airflow.get("metadata_database", "airflow"),  # type: ignore[arg-type]
            metadata_user=airflow.get("metadata_user", "airflow"),  # type: ignore[arg-type]
            metadata_password=airflow.secret("metadata_password", home),
            secret_key=airflow.secret("secret_key", home),
            parallelism=airflow.int("parallelism", 2),
            schedule=airflow.get("schedule", "30 0 * * *"),  # type: ignore[arg-type]
            source=source_name(airflow.get("source", DEMO_SOURCE)),  # type: ignore[arg-type]
            retries=airflow.int("retries", 2),
            raw_wait_hours=float(airflow.get("raw_wait_hours", "6")),  # type: ignore[arg-type]
        ),
        alerts=AlertsConfig(
            slack_webhook_url=alerts.get("slack_webhook_url", None),
            telegram_token=alerts.get("telegram_token", None),
            telegram_chat_id=alerts.get("telegram_chat_id", None),
            telegram_api_url=alerts.get("telegram_api_url", "https://api.telegram.org"),  # type: ignore[arg-type]
            smtp_host=alerts.get("smtp_host", None),
            smtp_port=alerts.int("smtp_port", 587),
            smtp_user=alerts.get("smtp_user", None),
            smtp_password=alerts.get("smtp_password", None),
            smtp_starttls=(alerts.get("smtp_starttls", "true") or "true").lower() in ("1", "true", "yes"),
            email_from=alerts.get("email_from", "pulse@localhost"),  # type: ignore[arg-type]
            email_to=alerts.get("email_to", None),
        ),
    )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()
