"""Incremental loads against real services: a source loaded day by day ends, and stays at each checkpoint,
identical row for row to a full refresh of the same RAW — staging tables and marts."""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pulse.common import pg
from pulse.common.clickhouse import client as ch_client
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.lake import raw
from pulse.modeling import dbt_runner
from pulse.staging import job

from .equality import assert_same, marts_snapshot, staging_snapshot

pytestmark = pytest.mark.integration

DAILY, FULL = "inc_daily", "inc_full"
END = date(2026, 10, 31)


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode())))


def write_csv(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(buf.getvalue().encode()))


def arriving_days(tmp: Path) -> list[Path]:
    """A month of dirty RAW, one partition per ingest day (late events, duplicates and near duplicates that
    arrive on later days, as the generator makes them), changed to hold what daily operation brings:
    a third of the users without session ids (sessions derived across loads), an event ten days late,
    a day with no file, and a correction of an earlier event on a day of its own."""
    out = tmp / "generated"
    generate_dataset(out, GenParams(n_events=9_000, days=32, end_date=END, seed=31), DirtParams(rate=0.03))
    days = sorted(p for p in out.iterdir() if p.is_dir())
    for part in out.glob("ingest_date=*/*.csv.gz"):
        rows = read_csv(part)
        user, session = rows[0].index("user_id"), rows[0].index("user_session")
        for r in rows[1:]:
            if len(r) > session and r[user].isdigit() and int(r[user]) % 3 == 0:
                r[session] = ""
        write_csv(part, rows)
    header, *rows = read_csv(next(days[15].glob("*.csv.gz")))
    happened = date.fromisoformat(days[15].name.removeprefix("ingest_date=")) - timedelta(days=10)
    late = dict(zip(header, [""] * len(header), strict=True)) | {
        "event_id": "late-by-ten-days", "event_time": f"{happened}T12:00:00Z", "event_type": "purchase",
        "price": "10.00", "currency": "USD", "user_id": "1000001", "user_session": "late-session",
    }  # fmt: skip
    write_csv(days[15] / "part-00099.csv.gz", [header, [late[c] for c in header]])
    shutil.rmtree(days[12])  # a day with no file
    header, *rows = read_csv(next(days[3].glob("*.csv.gz")))
    price = header.index("price")
    fixed = next(r for r in rows if len(r) == len(header) and r[price].replace(".", "").isdigit())
    fixed[price] = str(Decimal(fixed[price]) + 1)
    shutil.rmtree(days[20])
    write_csv(days[20] / "part-00000.csv.gz", [header, fixed])  # the correction, alone on its day
    return days


def assert_staging_equal(stack) -> None:
    assert_same(staging_snapshot(stack, DAILY), staging_snapshot(stack, FULL), "the incremental loads")


def assert_marts_equal(stack) -> None:
    daily, full = marts_snapshot(stack, DAILY), marts_snapshot(stack, FULL)
    assert len(full) > 10
    assert_same(daily, full, "the incremental loads")


def assert_kpis_follow_the_watermark(stack, mid_stream: bool) -> None:
    """The KPI block shows the last complete day; mid-stream the newest days are flagged incomplete."""
    with pg.connect(stack.postgres) as conn:
        [(watermark, newest, dau)] = conn.execute(
            "select r.complete_through, max(e.event_date), count(distinct e.user_id) filter (where e.event_date = "
            "least(r.complete_through, (select max(event_date) from staging.events where source = %(s)s))) "
            "from staging.events e, (select complete_through from staging.load_runs where source = %(s)s and "
            "status = 'succeeded' order by finished_at desc limit 1) r where e.source = %(s)s group by 1",
            {"s": DAILY},
        ).fetchall()
    ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(DAILY))
    assert ch.query("SELECT metric_date, dau FROM kpi_latest").result_rows == [(min(watermark, newest), dau)]
    flags = dict(ch.query("SELECT metric_date, is_complete FROM user_daily_metrics").result_rows)
    assert flags[watermark] and (not flags[newest] if mid_stream else True)


def upload_day(stack, arrived: Path, day: Path, correction: bool) -> None:
    """One day's RAW, for both sources (the full-refresh one has it too, from its next refresh on)."""
    folder = arrived / ("fixes" if correction else "days")
    shutil.copytree(day, folder / day.name)
    for source in (DAILY, FULL):
        raw.upload_dataset(stack.s3, folder, source, correction=correction)
    if correction:
        shutil.rmtree(folder)


def test_thirty_daily_loads_equal_a_full_refresh_row_for_row(warehouse, spark, tmp_path):
    stack = warehouse
    days = arriving_days(tmp_path)
    modes = []
    for i, day in enumerate(days):
        if day.exists():
            upload_day(stack, tmp_path / "arrived", day, correction=i == 20)
        summary = job.run(stack, DAILY, spark=spark)
        modes.append((summary["mode"], summary["mode_reason"]))
        if i in (8, 21, len(days) - 1):  # checkpoints: the same RAW, refreshed in full
            assert job.run(stack, FULL, spark=spark, full_refresh=True)["mode"] == "full"
            assert_staging_equal(stack)
        if i in (21, len(days) - 1):  # the daily source's models incremental, the other's rebuilt in full
            for source, full in ((DAILY, False), (FULL, True)):
                result = dbt_runner.build(stack, source, full_refresh=full)
                assert result.ok, result.failures
            assert_marts_equal(stack)
            assert_kpis_follow_the_watermark(stack, mid_stream=i < len(days) - 1)
    assert len(days) >= 30
    assert modes[0] == ("full", "the source's first load")
    assert modes[12] == ("incremental", "nothing new in RAW")  # the day with no file
    assert modes[20][0] == "full" and "correction" in modes[20][1]
    assert sum(m == "incremental" for m, _ in modes) == len(days) - 2
    arrival = date.fromisoformat(days[15].name.removeprefix("ingest_date="))
    with pg.connect(stack.postgres) as conn:
        [(late_day,)] = conn.execute(
            "select event_date from staging.events where source = %s and event_id = 'late-by-ten-days'", (DAILY,)
        ).fetchall()
        [(touched,)] = conn.execute(
            "select array_agg(d.event_date order by d.event_date) from staging.load_run_days d "
            "join staging.load_runs r using (run_id) where r.source = %s and r.max_ingest_date = %s and r.rows_in > 0",
            (DAILY, arrival),
        ).fetchall()
    assert late_day == arrival - timedelta(days=10)
    assert late_day in touched and len(touched) <= 6  # that load recomputed its own days, and the late one
