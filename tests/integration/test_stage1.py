"""The cleaning job end to end on real local services: generator -> S3 RAW -> Spark -> Postgres staging."""

from __future__ import annotations

import errno
import gzip
import json
from datetime import date
from decimal import Decimal

import psycopg
import pytest
from botocore.exceptions import ClientError

from pulse.common import pg
from pulse.common import s3 as s3util
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.lake import raw
from pulse.lake.ingest_file import ingest_file
from pulse.staging import job, load

pytestmark = pytest.mark.integration
SOURCE = "demo"


@pytest.fixture(scope="module")
def loaded(stack, spark, tmp_path_factory):
    """A small dirty dataset, uploaded and cleaned once; (settings, ground truth, dataset dir, job summary)."""
    out = tmp_path_factory.mktemp("data") / SOURCE
    truth = generate_dataset(out, GenParams(n_events=15_000, days=20, end_date=date(2026, 10, 31), seed=3), DirtParams(rate=0.04))
    raw.upload_dataset(stack.s3, out, SOURCE)
    summary = job.run(stack, SOURCE, spark=spark)
    return stack, truth, out, summary


def q(settings, sql: str, *params):
    with pg.connect(settings.postgres) as conn:
        return conn.execute(sql, params).fetchall()


def test_counts_match_ground_truth(loaded):
    settings, truth, _, summary = loaded
    assert summary["rows_in"] == truth["raw_rows"]
    assert summary["rows_out"] == truth["clean_events"]
    assert summary["quarantined"] == {k: v for k, v in truth["quarantined"].items() if v}
    [(events,)] = q(settings, "select count(*) from staging.events where source = %s", SOURCE)
    assert events == truth["clean_events"]
    by_rule = dict(q(settings, "select rule, count(*) from staging.quarantine where source = %s group by rule", SOURCE))
    assert by_rule == summary["quarantined"]


def test_revenue_and_daily_aggregates_match_ground_truth(loaded):
    settings, truth, _, _ = loaded
    [(revenue, purchases)] = q(
        settings, "select sum(revenue_usd), sum(purchases) from staging.daily_revenue where source = %s", SOURCE
    )
    assert revenue == Decimal(truth["revenue_usd"])
    assert purchases == truth["purchases"]
    dau = {
        d.isoformat(): n
        for d, n in q(settings, "select event_date, dau from staging.daily_active_users where source = %s", SOURCE)
    }
    assert dau == truth["dau_by_date"]
    per_day = {
        d.isoformat(): n
        for d, n in q(
            settings, "select event_date, sum(events) from staging.daily_event_counts where source = %s group by 1", SOURCE
        )
    }
    assert per_day == truth["events_by_date"]


def test_quarantine_keeps_raw_record_and_audit_is_complete(loaded):
    settings, truth, _, summary = loaded
    rows = "select raw_record from staging.quarantine where source = %s and rule = %s"
    malformed = [r for (r,) in q(settings, rows, SOURCE, "malformed_line")]
    assert len(malformed) == truth["quarantined"]["malformed_line"] and all(set(r) == {"line"} and r["line"] for r in malformed)
    priced = [r for (r,) in q(settings, rows, SOURCE, "invalid_price")]
    assert len(priced) == truth["quarantined"]["invalid_price"]
    assert all(set(r) >= {"event_id", "price", "event_time"} for r in priced)
    [(status, rows_in, rows_out, quarantined)] = q(
        settings, "select status, rows_in, rows_out, rows_quarantined from staging.load_runs where run_id = %s", summary["run_id"]
    )
    assert (status, rows_in, rows_out + quarantined) == ("succeeded", truth["raw_rows"], truth["raw_rows"])
    rules = dict(q(settings, "select rule, rows from staging.load_run_rules where run_id = %s", summary["run_id"]))
    assert rules == summary["quarantined"]
    [(late,)] = q(settings, "select count(*) from staging.events where source = %s and is_late", SOURCE)
    assert late == truth["late_events"] > 0  # late arrivals are kept, flagged


def test_rerun_is_idempotent(loaded, spark):
    settings, truth, out, first = loaded
    again = raw.upload_dataset(settings.s3, out, SOURCE)
    assert again["uploaded"] == 0 and again["unchanged"] > 0
    second = job.run(settings, SOURCE, spark=spark)  # incremental: nothing new, nothing read
    assert (second["mode"], second["mode_reason"], second["rows_in"]) == ("incremental", "nothing new in RAW", 0)
    third = job.run(settings, SOURCE, spark=spark, full_refresh=True)
    assert (third["mode"], third["tables"]) == ("full", first["tables"])
    [(n, distinct)] = q(settings, "select count(*), count(distinct event_id) from staging.events where source = %s", SOURCE)
    assert n == distinct == truth["clean_events"]
    [(leftovers,)] = q(settings, "select count(*) from information_schema.tables where table_schema = 'staging_load'")
    assert leftovers == 0


def test_failed_swap_leaves_previous_load_readable(loaded, spark, monkeypatch):
    settings, truth, _, _ = loaded

    def broken_swap(conn, tables, run_id, source):
        conn.execute("delete from staging.events where source = %s", (source,))
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    monkeypatch.setattr(load, "swap_in", broken_swap)
    with pytest.raises(OSError, match="simulated") as err:
        job.run(settings, SOURCE, spark=spark, full_refresh=True)
    assert err.value.errno == errno.ENOSPC
    [(n,)] = q(settings, "select count(*) from staging.events where source = %s", SOURCE)
    assert n == truth["clean_events"]
    [(status, error)] = q(
        settings, "select status, error from staging.load_runs where source = %s order by started_at desc limit 1", SOURCE
    )
    assert status == "failed" and "simulated" in error


def test_raw_partitions_are_immutable_and_partial_uploads_invisible(loaded, tmp_path):
    settings, _, out, _ = loaded
    changed = tmp_path / "changed"
    part = sorted(p for p in out.iterdir() if p.is_dir())[0]
    (changed / part.name).mkdir(parents=True)
    (changed / part.name / "part-00000.csv.gz").write_bytes(gzip.compress(b"different bytes"))
    with pytest.raises(raw.RawLayerError, match="immutable"):
        raw.upload_dataset(settings.s3, changed, SOURCE)
    # a file put without its manifest (an interrupted upload) is not part of the lake
    s3 = s3util.client(settings.s3)
    s3.put_object(
        Bucket=settings.s3.raw_bucket,
        Key=f"{raw.source_prefix(settings.s3, SOURCE)}/ingest_date=2030-01-01/part-00000.csv.gz",
        Body=b"half",
    )
    assert all(f.ingest_date != "2030-01-01" for f in raw.list_committed(settings.s3, SOURCE))


def test_bad_credentials_are_refused(stack):
    for key, secret, code in [
        (stack.s3.access_key, "wrong-secret", "SignatureDoesNotMatch"),
        ("nobody", "whatever", "InvalidAccessKeyId"),
    ]:
        with pytest.raises(ClientError) as err:
            s3util.client(stack.s3, access_key=key, secret_key=secret, retries=1).list_buckets()
        assert err.value.response["Error"]["Code"] == code
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pg.connect(stack.postgres, password="wrong")


def test_users_own_file_goes_through_the_same_pipeline(loaded, stack, spark, tmp_path):
    src = tmp_path / "2019-Oct-sample.csv"
    src.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde\n"
        "2019-10-01 00:00:01 UTC,purchase,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,554748717,9333dfbd\n"
        "2019-10-01 00:00:01 UTC,purchase,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,554748717,9333dfbd\n"
        "this line is broken\n"
        "2019-10-01 00:00:02 UTC,view,17200506,2053013559792632471,furniture.living_room.sofa,,543.10,519107250,\n"
        '2019-10-01 00:00:03 UTC,view,17200507,2053013559792632471,,"two\nlines",12.00,519107251,s9\n'  # one record, two lines
    )
    ingest_file(src, tmp_path / "raw", date(2026, 11, 1))
    raw.upload_dataset(stack.s3, tmp_path / "raw", "kaggle")
    summary = job.run(stack, "kaggle", spark=spark)
    assert summary["rows_out"] == 4
    assert q(stack, "select brand from staging.events where source = 'kaggle' and user_id = '519107251'") == [("two\nlines",)]
    assert summary["quarantined"] == {"malformed_line": 1, "duplicate_event_id": 1}  # same content -> same derived id
    [(session,)] = q(stack, "select session_id from staging.events where source = 'kaggle' and user_id = '519107250'")
    assert session.startswith("derived-")  # no client session id: sessionised from inactivity gaps
    [(rev,)] = q(stack, "select revenue_usd from staging.daily_revenue where source = 'kaggle'")
    assert rev == Decimal("33.20")
    # other sources were not touched by this load
    assert q(stack, "select count(*) from staging.events where source = %s", SOURCE) == [(loaded[1]["clean_events"],)]


def test_status_reports_services_and_s3_data_survives_restart(stack):
    from pulse.services import registry
    from pulse.services.objectstore import ObjectStore

    up = {st.name: st for st in registry.statuses(stack)}
    assert up["s3"].up and up["postgres"].up and up["s3"].log.exists()
    store = ObjectStore(stack)
    s3 = s3util.client(stack.s3)
    s3.put_object(Bucket=stack.s3.raw_bucket, Key="restart-check.json", Body=json.dumps({"ok": 1}).encode())
    store.stop()
    assert not store.healthy()[0]
    store.start()
    assert json.loads(s3.get_object(Bucket=stack.s3.raw_bucket, Key="restart-check.json")["Body"].read()) == {"ok": 1}


def test_a_second_run_of_the_same_source_is_refused_while_one_runs(loaded):
    settings = loaded[0]
    with pg.connect(settings.postgres, autocommit=True) as other:
        other.execute("select pg_advisory_lock(hashtext('pulse-clean:' || %s))", (SOURCE,))  # as a running job holds it
        with pytest.raises(job.LoadCheckError, match="in progress"):
            job.run(settings, SOURCE)


def test_the_demo_loads_the_dataset_it_generated(warehouse, spark, tmp_path):
    """The demo's steps 2-5 (generate, upload, clean, model) on real services: what reaches RAW and
    staging is the dataset the demo generated, under the demo's own source name."""
    from pulse.cli import build_parser, demo

    stack = warehouse
    out = tmp_path / "my-demo"
    args = build_parser().parse_args(["demo", "--events", "2000", "--days", "10", "--out", str(out)])
    source = demo.demo_source(args)
    assert source.startswith("demo_2000_") and source != SOURCE
    assert demo.load(stack, source, out, args)
    truth = json.loads((out / "ground_truth.json").read_text())
    s3 = s3util.client(stack.s3)
    dates = sorted({f.ingest_date for f in raw.list_committed(stack.s3, source)})
    assert dates == sorted(p.name.removeprefix("ingest_date=") for p in out.glob("ingest_date=*"))
    assert sum(raw.read_manifest(s3, stack.s3, source, d)["rows"] for d in dates) == truth["raw_rows"]
    assert q(stack, "select count(*) from staging.events where source = %s", source) == [(truth["clean_events"],)]
