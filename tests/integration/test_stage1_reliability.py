"""The cleaning job under the failures of daily operation: a killed run, a retried task, a lost manifest,
a tampered object, far too much dirt, and a correction."""

from __future__ import annotations

import csv
import errno
import gzip
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from datetime import date
from decimal import Decimal

import pytest

from pulse.common import pg
from pulse.common import s3 as s3util
from pulse.common.waiting import wait_until
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.lake import raw
from pulse.staging import aggregates, job, load
from pulse.staging.migrate import migrate
from pulse.staging.raw_reader import RawReadError

pytestmark = pytest.mark.integration


def q(settings, sql: str, *params):
    with pg.connect(settings.postgres) as conn:
        return conn.execute(sql, params).fetchall()


def dataset(tmp_path, source: str, seed: int, events: int = 6_000, dirty: float = 0.02):
    out = tmp_path / source
    truth = generate_dataset(out, GenParams(n_events=events, days=15, end_date=date(2026, 10, 31), seed=seed), DirtParams(dirty))
    return out, truth


def load_debris(settings, run_id: str) -> list:
    suffix = run_id.replace("-", "_")
    return q(settings, "select tablename from pg_tables where schemaname = 'staging_load' and tablename like %s", f"%{suffix}")


def upload_in_two(stack, spark, out, source: str) -> None:
    """The first half of the days loaded (a full refresh), the rest uploaded for an incremental load."""
    days = sorted(p for p in out.iterdir() if p.is_dir())
    first = out.parent / f"{source}-first"
    for day in days[: len(days) // 2]:
        shutil.copytree(day, first / day.name)
    raw.upload_dataset(stack.s3, first, source)
    job.run(stack, source, spark=spark)
    raw.upload_dataset(stack.s3, out, source)


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_a_run_killed_mid_copy_is_recovered_by_the_next_run(stack, spark, tmp_path, mode):
    source = f"rel_kill_{mode}"
    out, truth = dataset(tmp_path, source, seed=21)
    migrate(stack.postgres)
    if mode == "full":
        raw.upload_dataset(stack.s3, out, source)
    else:
        upload_in_two(stack, spark, out, source)
    [(before,)] = q(stack, "select count(*) from staging.events where source = %s", source)
    env = {**os.environ, "PULSE_DEBUG": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulse.cli", "clean", "--source", source],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the Spark JVM dies with it
    )

    def copying() -> str | None:  # the run's id once its COPY into the load tables has begun
        if proc.poll() is not None:
            raise AssertionError(f"the job ended (exit {proc.returncode}) before its COPY was seen")
        rows = q(stack, "select run_id from staging.load_runs where source = %s and status = 'running'", source)
        return rows[0][0] if rows and load_debris(stack, rows[0][0]) else None

    try:
        run_id = wait_until(copying, what="the job to begin its COPY", timeout=180, interval=0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert load_debris(stack, run_id)  # a dead run leaves its load tables behind …
    [(after_kill,)] = q(stack, "select count(*) from staging.events where source = %s", source)
    assert after_kill == before  # … and staging as it was
    summary = job.run(stack, source, spark=spark)  # … and the next run cleans them up
    [(status, error)] = q(stack, "select status, error from staging.load_runs where run_id = %s", run_id)
    assert status == "failed" and error.startswith("died")
    assert not load_debris(stack, run_id)
    assert not q(stack, "select 1 from staging.load_run_tasks where run_id = %s", run_id)
    assert (summary["mode"], summary["rows_out"]) == (mode, truth["clean_events"] - before)
    [(events,)] = q(stack, "select count(*) from staging.events where source = %s", source)
    assert events == truth["clean_events"]


def test_recover_command_cleans_a_dead_run(stack):
    source = "rel_cmd"
    migrate(stack.postgres)
    run_id = job.new_run_id()
    with pg.connect(stack.postgres) as conn:  # what a kill -9 leaves: a running row and a load table
        conn.execute("insert into staging.load_runs (run_id, source, status) values (%s, %s, 'running')", (run_id, source))
    load.create_load_tables(stack.postgres, ["events"], run_id)
    from pulse.cli import main

    assert main(["recover", "--source", source]) == 0
    assert q(stack, "select status from staging.load_runs where run_id = %s", run_id) == [("failed",)]
    assert not load_debris(stack, run_id)


def test_a_retried_copy_task_loads_its_rows_once(stack, spark):
    migrate(stack.postgres)
    run_id = job.new_run_id()
    load.create_load_tables(stack.postgres, ["daily_revenue"], run_id)
    table = load.load_table_name("daily_revenue", run_id)
    df = spark.createDataFrame(
        [("rel_retry", date(2026, 10, d), 1, Decimal("5.00"), 1, Decimal("5.00")) for d in range(1, 21)],
        "source string, event_date date, purchases long, revenue_usd decimal(16,2), paying_users long, "
        "avg_purchase_value_usd decimal(14,2)",
    ).repartition(4)
    try:
        first = load.copy_dataframe(df, stack.postgres.conninfo(), "staging_load", table, run_id)
        again = load.copy_dataframe(df, stack.postgres.conninfo(), "staging_load", table, run_id)  # every task re-run
        [(rows, distinct)] = q(stack, f'select count(*), count(distinct event_date) from staging_load."{table}"')
        assert first == again == rows == distinct == 20
    finally:
        load.drop_load_tables(stack.postgres, ["daily_revenue"], run_id)


def test_a_sharp_shrink_is_refused_unless_forced(stack, spark, tmp_path):
    source = "rel_shrink"
    out, truth = dataset(tmp_path, source, seed=22)
    raw.upload_dataset(stack.s3, out, source)
    job.run(stack, source, spark=spark)
    s3 = s3util.client(stack.s3)
    manifests = sorted(s3util.list_keys(s3, stack.s3.raw_bucket, f"{raw.source_prefix(stack.s3, source)}/_manifests/"))
    for key in manifests[2:]:  # most manifests lost: the source looks nearly empty
        s3.delete_object(Bucket=stack.s3.raw_bucket, Key=key)
    with pytest.raises(job.LoadCheckError, match="shrink"):
        job.run(stack, source, spark=spark)
    [(events,)] = q(stack, "select count(*) from staging.events where source = %s", source)
    assert events == truth["clean_events"]  # the previous load still serves
    summary = job.run(stack, source, spark=spark, force=True)
    assert summary["rows_out"] < truth["clean_events"] / 2
    assert q(stack, "select forced from staging.load_runs where run_id = %s", summary["run_id"]) == [(True,)]


def test_a_changed_raw_object_fails_the_run(stack, spark, tmp_path):
    source = "rel_tamper"
    out, truth = dataset(tmp_path, source, seed=23)
    raw.upload_dataset(stack.s3, out, source)
    job.run(stack, source, spark=spark)
    [victim] = [f for f in raw.list_committed(stack.s3, source)][:1]
    s3 = s3util.client(stack.s3)
    body = gzip.decompress(s3.get_object(Bucket=stack.s3.raw_bucket, Key=victim.key)["Body"].read())
    s3.put_object(Bucket=stack.s3.raw_bucket, Key=victim.key, Body=gzip.compress(body.replace(b"purchase", b"view")))
    # a full refresh reads every file again and checks it (an incremental load reads only new files)
    with pytest.raises(RawReadError, match=f"RAW object .*{re.escape(victim.key)} does not match the sha256 in its manifest"):
        job.run(stack, source, spark=spark, full_refresh=True)
    [(events,)] = q(stack, "select count(*) from staging.events where source = %s", source)
    assert events == truth["clean_events"]


def test_the_quality_gate_stops_a_load_of_mostly_dirt(stack, spark, tmp_path):
    source = "rel_dirty"
    out, _ = dataset(tmp_path, source, seed=24, dirty=0.6)
    raw.upload_dataset(stack.s3, out, source)
    with pytest.raises(job.LoadCheckError, match=r"data-quality gate: .* rule \w+ took .* e\.g\."):
        job.run(stack, source, spark=spark)
    assert q(stack, "select count(*) from staging.events where source = %s", source) == [(0,)]
    [(status, error)] = q(
        stack, "select status, error from staging.load_runs where source = %s order by started_at desc limit 1", source
    )
    assert status == "failed" and "data-quality gate" in error


def test_a_correction_replaces_the_earlier_event(stack, spark, tmp_path):
    source = "rel_fix"
    out, truth = dataset(tmp_path, source, seed=25, dirty=0.0)
    raw.upload_dataset(stack.s3, out, source)
    job.run(stack, source, spark=spark)
    [(event_id, price)] = q(
        stack,
        "select event_id, price from staging.events where source = %s and event_type = 'purchase' and currency = 'USD' "
        "order by event_id limit 1",
        source,
    )
    header, original = None, None
    for f in sorted(out.glob("ingest_date=*/*.csv.gz")):  # the event's RAW record, as it was sent
        rows = list(csv.reader(io.StringIO(gzip.decompress(f.read_bytes()).decode())))
        header = rows[0]
        original = next((r for r in rows[1:] if r and r[0] == event_id), original)
    assert header and original
    fixed_price = str(price + Decimal("1.00"))
    fixed = [fixed_price if col == "price" else value for col, value in zip(header, original, strict=True)]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([header, fixed])
    fix = tmp_path / "fix" / "ingest_date=2026-11-20"
    fix.mkdir(parents=True)
    (fix / "part-00000.csv.gz").write_bytes(gzip.compress(buf.getvalue().encode()))
    raw.upload_dataset(stack.s3, fix.parent, source, correction=True)
    summary = job.run(stack, source, spark=spark)
    assert summary["mode"] == "full" and "correction partition (ingest_date=2026-11-20)" in summary["mode_reason"]
    assert q(stack, "select price from staging.events where source = %s and event_id = %s", source, event_id) == [
        (Decimal(fixed_price),)
    ]
    [(events,)] = q(stack, "select count(*) from staging.events where source = %s", source)
    assert events == truth["clean_events"]  # replaced, not added
    [(rule,)] = q(
        stack, "select rule from staging.quarantine where source = %s and raw_record->>'event_id' = %s", source, event_id
    )
    assert rule == "duplicate_event_id"  # the superseded original is kept in the quarantine, not lost


def test_the_swap_attaches_without_leftover_checks(stack, spark, tmp_path):
    """After a load (this test's own: it proves nothing without one), no staging table keeps the bound
    check the swap uses to attach a partition without a scan."""
    out, truth = dataset(tmp_path, "rel_swap", seed=27, events=800)
    raw.upload_dataset(stack.s3, out, "rel_swap")
    assert job.run(stack, "rel_swap", spark=spark)["rows_out"] == truth["clean_events"]
    checks = q(
        stack,
        "select conrelid::regclass::text from pg_constraint where conname = %s and connamespace = 'staging'::regnamespace",
        load.BOUND_CHECK,
    )
    assert checks == []


def test_seaweedfs_ports_behind_the_s3_keys_are_closed(stack, tmp_path):
    """Only the S3 port (with its keys) serves data: the filer and volume HTTP APIs want JWTs."""
    import urllib.error
    import urllib.request

    out, _ = dataset(tmp_path, "rel_ports", seed=26, events=500)
    raw.upload_dataset(stack.s3, out, "rel_ports")
    [f] = raw.list_committed(stack.s3, "rel_ports")[:1]
    base = stack.s3.base_port
    for url in (
        f"http://127.0.0.1:{base + 4}/buckets/{stack.s3.raw_bucket}/{f.key}",  # filer: the object itself
        f"http://127.0.0.1:{base + 4}/buckets/{stack.s3.raw_bucket}/",  # filer: the listing
        f"http://127.0.0.1:{base + 2}/1,01",  # volume server
    ):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code == 401, url
    s3 = s3util.client(stack.s3)
    assert s3.get_object(Bucket=stack.s3.raw_bucket, Key=f.key)["Body"].read()  # S3 with the keys still works


def test_a_failed_incremental_load_leaves_staging_as_it_was(stack, spark, tmp_path, monkeypatch):
    """An incremental load fails inside its transaction, after its events went in: readers keep the
    previous state (events and aggregates), and the next run loads the same files again."""
    source = "rel_inc_fail"
    out, truth = dataset(tmp_path, source, seed=27)
    migrate(stack.postgres)
    upload_in_two(stack, spark, out, source)
    snapshot = (
        "select (select count(*) from staging.events where source = %s), "
        "(select sum(events) from staging.users where source = %s)"
    )
    before = q(stack, snapshot, source, source)

    def broken_merge(conn, roles, source, new, days):
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    monkeypatch.setattr(aggregates, "merge", broken_merge)
    with pytest.raises(OSError, match="simulated"):
        job.run(stack, source, spark=spark)
    assert q(stack, snapshot, source, source) == before
    monkeypatch.undo()
    summary = job.run(stack, source, spark=spark)
    assert summary["mode"] == "incremental" and summary["rows_in"] > 0
    [(events, user_events)] = q(stack, snapshot, source, source)
    assert events == user_events == truth["clean_events"]
