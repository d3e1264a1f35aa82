"""Upgrading an installation: a $PULSE_HOME made by the previous release (PREVIOUS, its own code run from
the archive `scripts/release.sh` kept in releases/) — services started, migrations applied, partitions loaded, marts built, ML and
realtime tables written, dashboards deployed — brought to this release by the documented steps
(`pulse services down` with the old code, `pulse services up` and `pulse upgrade` with the new one).
Nothing may be lost, the rebuilt marts must equal the old ones, and an edited applied migration is refused."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from pulse.common import pg
from pulse.common.clickhouse import client as ch_client
from pulse.config import REPO_ROOT, Settings, load_settings
from pulse.lake import raw
from pulse.ml import store
from pulse.staging.migrate import available
from pulse.streaming import tables

pytestmark = pytest.mark.integration
PREVIOUS = "v0.1.0"  # the release before this one: scripts/release.sh tags it and writes its archive
RELEASES = Path(__file__).parent / "releases"
SOURCE = "upgrade"
_PORTS = {  # a second installation next to the suite's services (moved by PULSE_TEST_PORT_OFFSET as they are);
    # below Linux' ephemeral range (32768-60999), where an outgoing connection can hold a port a service then cannot bind
    "PULSE_S3_PORT": "26333", "PULSE_S3_BASE_PORT": "26300", "PULSE_PG_PORT": "26432", "PULSE_CH_PORT": "26123",
    "PULSE_SUPERSET_PORT": "26088", "PULSE_SPARK_SHUFFLE_PARTITIONS": "2", "PULSE_SPARK_DRIVER_MEMORY": "1g",
}  # fmt: skip
_OFFSET = int(os.environ.get("PULSE_TEST_PORT_OFFSET", "0"))
PORTS = {k: str(int(v) + _OFFSET) if k.endswith("_PORT") else v for k, v in _PORTS.items()}
SERVICES = ["s3", "postgres", "clickhouse", "superset"]

# what a user of the previous release had done: run by that release's own code
PREVIOUS_STEPS = textwrap.dedent(
    """
    import sys
    from datetime import date
    from pathlib import Path

    import pulse
    from pulse import pipeline
    from pulse.config import settings_with_secrets
    from pulse.datagen.dirty import DirtParams
    from pulse.datagen.events import GenParams
    from pulse.streaming import tables

    assert pulse.__file__.startswith(sys.argv[2]), pulse.__file__  # the previous release's code, not this one
    s = settings_with_secrets()
    out = Path(sys.argv[1])
    pipeline.generate(s, out, GenParams(n_events=8_000, days=90, end_date=date(2026, 10, 31), seed=17), DirtParams(rate=0.02))
    pipeline.upload_raw(s, "upgrade", out)
    pipeline.clean(s, "upgrade")
    assert pipeline.model(s, "upgrade").ok
    pipeline.forecast(s, "upgrade", run_id="before-upgrade")
    pipeline.segment(s, "upgrade", run_id="before-upgrade")
    tables.ensure(s)
    live = tables.client(s)  # two users' events as that release's stream wrote them (integer ids)
    at = "'2026-10-31 10:00:00'"
    live.command(
        "INSERT INTO realtime_events (event_id, event_key, event_time, minute, day, user_id, session_id, event_type, "
        "product_id, currency, kafka_partition, kafka_offset, produced_at, batch_id) VALUES "
        f"('e1', 1, {at}, {at}, '2026-10-31', 7, 's1', 'view', 5, 'USD', 0, 1, {at}, 1), "
        f"('e2', 2, {at}, {at}, '2026-10-31', 8, 's2', 'view', NULL, 'USD', 0, 2, {at}, 1)"
    )
    live.command(
        f"INSERT INTO realtime_activity_input VALUES ({at}, '2026-10-31', 'view', 7, {at}), ({at}, '2026-10-31', 'view', 8, {at})"
    )
    assert not pipeline.deploy_bi(s, "upgrade", warm=False).failed
    """
)


def fresh_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="pulse-up-", dir="/tmp"))  # /tmp, 0755: the postgres OS user reaches it
    home.chmod(0o755)
    return home


def installation_settings(home: Path) -> Settings:
    """The upgraded installation's settings, for in-process reads (load_settings reads the environment)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (PORTS | {"PULSE_HOME": str(home)}).items():
            mp.setenv(key, value)
        return load_settings()


def previous_release(tmp: Path) -> Path:
    """The previous release's files (its code, dbt project, dashboards), sharing this checkout's installed
    tools (virtualenvs, JVM jars): an upgrade replaces code, not the machine's packages."""
    with tarfile.open(RELEASES / f"{PREVIOUS}.tar.gz") as tar:
        tar.extractall(tmp, filter="data")
    tree = tmp / PREVIOUS
    for installed in (".venv", ".venv-superset", ".jvm"):
        if (REPO_ROOT / installed).exists():
            (tree / installed).symlink_to(REPO_ROOT / installed)
    return tree


def test_the_release_archive_is_the_tagged_code():
    """The archive holds the tag's files byte for byte (checked where the checkout has the tag)."""
    tagged = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", PREVIOUS, "pulse"], capture_output=True)
    if tagged.returncode != 0:
        pytest.skip(f"this checkout has no tag {PREVIOUS}: {tagged.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(tagged.stdout)) as tar:
        want = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    with tarfile.open(RELEASES / f"{PREVIOUS}.tar.gz") as tar:
        have = {m.name.removeprefix(f"{PREVIOUS}/"): tar.extractfile(m).read() for m in tar if m.isfile()}
    assert {k: v for k, v in have.items() if k.startswith("pulse/")} == want


def run(code_root: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    """A command of the release in ``code_root`` against the installation in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")} | PORTS | {"PULSE_HOME": str(home)}
    env["PYTHONPATH"] = str(code_root)  # ahead of the editable install of this checkout
    return subprocess.run([sys.executable, *args], cwd=code_root, env=env, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def installation(tmp_path_factory) -> Iterator[tuple[Path, Path, dict]]:
    """(home, previous release's tree, what the installation held before the upgrade); services stopped at the end."""
    tmp = tmp_path_factory.mktemp("upgrade")
    home, tree = fresh_home(), previous_release(tmp)
    try:
        up = run(tree, home, "-m", "pulse.cli", "services", "up", *SERVICES)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        done = run(tree, home, "-c", PREVIOUS_STEPS, str(tmp / "dataset"), str(tree))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        before = snapshot(installation_settings(home))
        down = run(tree, home, "-m", "pulse.cli", "services", "down")
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
        yield home, tree, before
    finally:
        run(REPO_ROOT, home, "-m", "pulse.cli", "services", "down")
        run(tree, home, "-m", "pulse.cli", "services", "down")


def table_rows(ch, database: str, name: str) -> dict:
    columns = [
        c for (c,) in ch.query(f"SELECT name FROM system.columns WHERE database = '{database}' AND table = '{name}'").result_rows
    ]
    rows = ch.query(f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM `{database}`.`{name}`").result_rows
    return {"columns": columns, "rows": [dict(zip(columns, r, strict=True)) for r in rows]}


def snapshot(s: Settings) -> dict:
    """Every row the installation holds that an upgrade must keep: staging, marts, ML tables, RAW manifests."""
    out: dict = {"staging": {}, "marts": {}, "ml": {}}
    with pg.connect(s.postgres) as conn:
        names = [r[0] for r in conn.execute("select tablename from pg_tables where schemaname = 'staging' order by 1")]
        for name in names:
            cur = conn.execute(f'select * from staging."{name}"')
            columns = [d.name for d in cur.description]
            out["staging"][name] = {"columns": columns, "rows": [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]}
    ch, db = ch_client(s.clickhouse), s.clickhouse.marts_database(SOURCE)
    for (name,) in ch.query(f"SELECT name FROM system.tables WHERE database = '{db}' AND engine != 'View'").result_rows:
        (out["ml"] if name in store.TABLES else out["marts"])[name] = table_rows(ch, db, name)
    out["raw"] = sorted((f.key, f.sha256) for f in raw.list_committed(s.s3, SOURCE))
    return out


# columns whose values this release changes on purpose (its release notes): not compared
CHANGED = {"dq_load_runs": {"seconds"}}  # milliseconds now; whole seconds before (a SELECT alias shadowed the column)


# columns whose type this release changes on purpose: compared as text (integer ids became text ids)
RETYPED = {"user_id", "product_id", "category_id"}


def same_rows(old: dict, new: dict, changed: set[str] = frozenset()) -> bool:
    """The rows of both, on the columns both have (a column a release adds is new, not a difference)."""
    common = [c for c in old["columns"] if c in new["columns"] and c not in changed]
    value = lambda r, c: str(r[c]) if c in RETYPED and r[c] is not None else r[c]  # noqa: E731
    project = lambda rows: sorted(repr([value(r, c) for c in common]) for r in rows)  # noqa: E731
    return project(old["rows"]) == project(new["rows"])


def columns_of_this_release(settings: Settings, make) -> dict[str, list[str]]:
    """The columns this release's code creates: ``make(settings)`` run against a scratch database prefix."""
    scratch = dataclasses.replace(settings, clickhouse=dataclasses.replace(settings.clickhouse, database="pulse_probe"))
    ch = ch_client(settings.clickhouse)
    ch.command("CREATE DATABASE IF NOT EXISTS pulse_probe")
    ch.command(f"CREATE DATABASE IF NOT EXISTS {scratch.clickhouse.marts_database(SOURCE)}")
    database = make(scratch)
    rows = ch.query(f"SELECT table, name FROM system.columns WHERE database = '{database}' ORDER BY table, position").result_rows
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


@pytest.fixture(scope="module")
def upgraded(installation) -> tuple[Settings, dict, subprocess.CompletedProcess]:
    home, _, before = installation
    up = run(REPO_ROOT, home, "-m", "pulse.cli", "services", "up", *SERVICES)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    done = run(REPO_ROOT, home, "-m", "pulse.cli", "upgrade")
    return installation_settings(home), before, done


def test_the_upgrade_applies_every_migration_and_rebuilds_the_source(upgraded):
    settings, _, done = upgraded
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "source(s) rebuilt" in done.stdout and f"rebuilding the marts of source {SOURCE}" in done.stdout
    with pg.connect(settings.postgres) as conn:
        recorded = conn.execute("select version, name from pulse_meta.schema_migrations order by version").fetchall()
    assert recorded == [(v, name) for v, name, _ in available()]


def test_nothing_the_previous_release_stored_is_lost(upgraded):
    settings, before, _ = upgraded
    after = snapshot(settings)
    for name, old in before["staging"].items():  # every staging table and row, kept (a column a release adds is new)
        assert same_rows(old, after["staging"][name]) and len(old["rows"]) == len(after["staging"][name]["rows"]), name
    assert after["raw"] == before["raw"]  # RAW and its manifests, readable by this release
    # the ML history kept, in tables that have this release's columns (CREATE … IF NOT EXISTS keeps an old table as it was)
    wanted = columns_of_this_release(settings, lambda s: store.ensure_tables(s, SOURCE) or s.clickhouse.marts_database(SOURCE))
    for name, old in before["ml"].items():
        assert same_rows(old, after["ml"][name]), name
        assert set(wanted[name]) <= set(after["ml"][name]["columns"]), (name, wanted[name])


def test_marts_rebuilt_by_this_release_equal_the_previous_ones(upgraded):
    """A full refresh with this release's models gives the previous release's marts, row for row, on every
    column both releases have (a mart or a column this release adds is new, not a difference)."""
    settings, before, _ = upgraded
    after = snapshot(settings)
    assert set(before["marts"]) <= set(after["marts"])
    for name, old in before["marts"].items():
        assert len(old["rows"]) > 0 or name.startswith("dq_"), name  # the comparison is not between empty tables
        assert same_rows(old, after["marts"][name], CHANGED.get(name, set())), name


def test_realtime_tables_have_this_releases_columns(upgraded):
    settings, _, _ = upgraded
    tables.ensure(settings)  # what the streaming job does first
    wanted = columns_of_this_release(settings, lambda s: tables.ensure(s) or s.clickhouse.realtime_database)
    have = columns_of_this_release(settings, lambda s: settings.clickhouse.realtime_database)
    for name, columns in wanted.items():
        assert set(columns) <= set(have.get(name, [])), name
    live = tables.client(settings)
    types = dict(live.query("SELECT name, type FROM system.columns WHERE database = currentDatabase() "
                            "AND table = 'realtime_events'").result_rows)  # fmt: skip
    assert (types["user_id"], types["product_id"]) == ("String", "Nullable(String)")  # text ids (ADR 0028)
    users = live.query("SELECT user_id, product_id FROM realtime_events FINAL ORDER BY user_id").result_rows
    assert users == [("7", "5"), ("8", None)]  # the previous release's integers, as their text
    assert live.query("SELECT day, dau FROM realtime_dau").result_rows == [(date(2026, 10, 31), 2)]  # rebuilt, same users
    per_minute = live.query("SELECT event_type, uniqExactMerge(users) FROM realtime_minute_users GROUP BY event_type")
    assert per_minute.result_rows == [("view", 2)]


def test_the_dashboards_of_the_previous_release_are_updated_in_place(upgraded):
    from pulse.bi import assets
    from pulse.bi.client import SupersetClient

    settings, _, _ = upgraded
    client = SupersetClient(settings.superset)
    old = {d["slug"]: d["id"] for d in client.get("/api/v1/dashboard/?q=(page_size:100)")["result"]}
    deployed = assets.deploy(settings, SOURCE, warm=False)
    assert deployed.failed == {}
    now = {d["slug"]: d["id"] for d in client.get("/api/v1/dashboard/?q=(page_size:100)")["result"]}
    assert {slug: now[slug] for slug in old} == old  # the same dashboards, updated, none duplicated
    assert len(now) == len(set(now))


def test_an_edited_applied_migration_is_refused_with_a_clear_error(upgraded, installation):
    settings, _, _ = upgraded
    home = installation[0]
    with pg.connect(settings.postgres) as conn:  # as if 001's file had been edited after it was applied
        [(digest,)] = conn.execute("select sha256 from pulse_meta.schema_migrations where version = 1").fetchall()
        conn.execute("update pulse_meta.schema_migrations set sha256 = %s where version = 1", ("0" * 64,))
    try:
        done = run(REPO_ROOT, home, "-m", "pulse.cli", "upgrade")
        assert done.returncode != 0
        name = available()[0][1]
        assert f"migration {name} changed after it was applied; add a new migration instead" in done.stdout + done.stderr
    finally:
        with pg.connect(settings.postgres) as conn:
            conn.execute("update pulse_meta.schema_migrations set sha256 = %s where version = 1", (digest,))
