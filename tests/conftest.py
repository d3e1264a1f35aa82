"""Shared fixtures: a local Spark session for rule tests; real local services for integration tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pulse.config import Settings, ensure_secrets, load_settings


def _temp_home(prefix: str) -> Path:
    # under /tmp with 0755: the postgres OS user must be able to reach its data dir
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    return home


@pytest.fixture(scope="session")
def spark():
    from pulse.common.spark import session

    home = _temp_home("pulse-spark-")
    with pytest.MonkeyPatch.context() as mp:  # the session's own home, for its creation only: nothing else sees it
        mp.setenv("PULSE_HOME", str(home))
        spark = session(load_settings(), "pulse-tests")
    yield spark
    spark.stop()
    shutil.rmtree(home, ignore_errors=True)


_TEST_PORTS = {
    # ports away from a developer's running instance (defaults 18333/18300/15432)
    "PULSE_S3_PORT": "28333",
    "PULSE_S3_BASE_PORT": "28300",
    "PULSE_PG_PORT": "25432",
    "PULSE_CH_PORT": "28123",
    "PULSE_SUPERSET_PORT": "28088",
    "PULSE_KAFKA_PORT": "29092",
    "PULSE_KAFKA_CONTROLLER_PORT": "29093",
    "PULSE_SPARK_SHUFFLE_PARTITIONS": "2",
    "PULSE_SPARK_DRIVER_MEMORY": "2g",
}
# PULSE_TEST_PORT_OFFSET=N moves the suite's services N ports away, so a second checkout can run beside it
_OFFSET = int(os.environ.get("PULSE_TEST_PORT_OFFSET", "0"))
TEST_ENV = {k: str(int(v) + _OFFSET) if k.endswith("_PORT") else v for k, v in _TEST_PORTS.items()}


@pytest.fixture(scope="session")
def stack_home(spark) -> Iterator[Settings]:
    """Settings for a throw-away PULSE_HOME on test ports; every managed service started under it is
    stopped at the end of the session."""
    from pulse.services import registry

    home = _temp_home("pulse-it-")
    saved = {k: os.environ.get(k) for k in [*TEST_ENV, "PULSE_HOME"]}
    os.environ.update(TEST_ENV)
    os.environ["PULSE_HOME"] = str(home)
    ensure_secrets()
    settings = load_settings()
    try:
        yield settings
    finally:
        registry.down(settings, echo=lambda _msg: None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if os.environ.get("PULSE_TEST_KEEP_HOME"):  # every service's and Airflow task's log, to read after a failure
            print(f"\nPULSE_TEST_KEEP_HOME: the services' home is kept at {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(stack_home: Settings) -> Settings:
    """Real SeaweedFS S3 + PostgreSQL started by Pulse's own service manager."""
    from pulse.services import registry

    registry.up(stack_home, ["s3", "postgres"], echo=lambda _msg: None)
    return stack_home


@pytest.fixture(scope="session")
def warehouse(stack: Settings) -> Settings:
    """S3 + PostgreSQL and the ClickHouse the marts go to: what a test that builds marts needs, whichever runs first."""
    from pulse.services.clickhouse import ClickHouse

    ClickHouse(stack).start()
    return stack


@pytest.fixture(scope="session")
def ch(stack_home: Settings):
    """(host, port, user, password, database) of the ClickHouse server under test: Pulse's local
    service, or a real server named by PULSE_CH_COMPAT_URL=http://user:password@host:port."""
    url = os.environ.get("PULSE_CH_COMPAT_URL")
    if url:
        u = urlsplit(url)
        yield u.hostname, u.port or 8123, u.username or "default", u.password or "", "default"
        return
    from pulse.services.clickhouse import ClickHouse

    svc = ClickHouse(stack_home)
    svc.start()
    cfg = stack_home.clickhouse
    yield "127.0.0.1", cfg.port, cfg.user, cfg.password, cfg.database
    svc.stop()


@pytest.fixture(scope="session")
def ch_bi(ch, stack_home: Settings):
    """(user, password) of the read-only BI user of the server under test (PULSE_CH_COMPAT_BI_URL for a real one)."""
    url = os.environ.get("PULSE_CH_COMPAT_BI_URL")
    if url:
        u = urlsplit(url)
        return u.username, u.password or ""
    if os.environ.get("PULSE_CH_COMPAT_URL"):
        pytest.skip("no read-only user named for the real server (PULSE_CH_COMPAT_BI_URL)")
    return stack_home.clickhouse.bi_user, stack_home.clickhouse.bi_password


@pytest.fixture(scope="session")
def superset(stack: Settings) -> Settings:
    """Pulse's local Superset (its own venv, metadata in the test PostgreSQL) next to the local ClickHouse."""
    from pulse.services.clickhouse import ClickHouse
    from pulse.services.superset import Superset

    ClickHouse(stack).start()
    Superset(stack).start()
    return stack


@pytest.fixture(scope="session")
def preset_source(warehouse: Settings, spark):
    """``load(preset)``: the preset's sample file ingested with its spec, cleaned and built once per session
    as source ``preset_<preset>`` (the file tests and the dashboard tests read the same loads).
    Returns (source, the ingest's result, the load's summary)."""
    from pulse import pipeline
    from pulse.modeling import dbt_runner
    from pulse.staging import job

    loaded: dict[str, tuple[str, dict, dict]] = {}

    def load(preset: str) -> tuple[str, dict, dict]:
        if preset not in loaded:
            source = f"preset_{preset}"
            sample = pipeline.preset_samples()[preset]
            ingested = pipeline.ingest_file(warehouse, sample, source, None, {}, spec=preset)
            summary = job.run(warehouse, source, spark=spark)
            built = dbt_runner.build(warehouse, source)
            assert built.ok, built.failures
            loaded[preset] = (source, ingested, summary)
        return loaded[preset]

    return load
