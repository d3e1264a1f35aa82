"""Bring your own dataset: a preset's sample file (the generator's events in the public layout) loaded the
way a user would — `ingest-file --spec`, the cleaning job, dbt — and the marts checked against pandas on
the file itself: DAU, net revenue, the funnel by the preset's steps, D1/D7 retention per cohort day."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pytest

from pulse import pipeline
from pulse.common import pg
from pulse.common.clickhouse import client as ch_client
from pulse.datagen.layouts import SAMPLES_DIR
from pulse.modeling import dbt_runner
from pulse.sources import spec as specs
from pulse.sources.spec import SpecError
from pulse.staging import job

pytestmark = pytest.mark.integration
SOURCE = "preset_ecommerce"
SAMPLE = SAMPLES_DIR / "ecommerce_events.csv"
NATURAL = ["user_id", "user_session", "event_type", "product_id", "event_time"]  # the near_duplicate key


@pytest.fixture(scope="module")
def loaded(warehouse, spark):
    result = pipeline.ingest_file(warehouse, SAMPLE, SOURCE, None, {}, spec="ecommerce_events")
    assert result["spec_changed"] is True
    summary = job.run(warehouse, SOURCE, spark=spark)
    build = dbt_runner.build(warehouse, SOURCE)
    assert build.ok, build.failures
    ch = ch_client(warehouse.clickhouse, database=warehouse.clickhouse.marts_database(SOURCE))
    return warehouse, summary, ch


def the_file() -> pd.DataFrame:
    """The sample as a user's pandas would read it: times in UTC, first of exact repeats kept."""
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    frame["time"] = pd.to_datetime(frame.event_time.str.removesuffix(" UTC"), utc=True)
    frame["day"] = frame.time.dt.date
    return frame.drop_duplicates(NATURAL)


def marts(ch, sql: str) -> pd.DataFrame:
    return ch.query_df(sql)


def test_the_load_applied_the_preset_and_recorded_it(loaded):
    settings, summary, _ = loaded
    preset = specs.load("ecommerce_events")
    assert summary["spec"] == f"ecommerce_events {preset.version}"
    rows, repeats = len(pd.read_csv(SAMPLE)), len(pd.read_csv(SAMPLE)) - len(the_file())
    assert summary["rows_in"] == rows
    assert summary["quarantined"] == ({"near_duplicate": repeats} if repeats else {})
    with pg.connect(settings.postgres) as conn:
        [(name, version, filtered)] = conn.execute(
            "select spec_name, spec_version, rows_filtered from staging.load_runs where run_id = %s", (summary["run_id"],)
        ).fetchall()
        [(text,)] = conn.execute("select spec from staging.source_specs where spec_version = %s", (version,)).fetchall()
    assert (name, version, filtered, text) == ("ecommerce_events", preset.version, 0, preset.text)
    assert summary["rows_out"] == len(the_file())


def test_dau_and_net_revenue_equal_pandas_on_the_file(loaded):
    _, _, ch = loaded
    events = the_file()
    dau = events.groupby("day").user_id.nunique()
    got = marts(ch, "SELECT metric_date, dau FROM user_daily_metrics ORDER BY metric_date")
    assert {pd.Timestamp(d).date(): n for d, n in zip(got.metric_date, got.dau, strict=True)} == dau.to_dict()
    buys = events[events.event_type == "purchase"]
    revenue = buys.groupby("day").price.apply(lambda p: sum(map(Decimal, p), Decimal(0)))
    got = marts(ch, "SELECT revenue_date, revenue_usd FROM revenue_daily WHERE purchases > 0 ORDER BY revenue_date")
    assert {pd.Timestamp(d).date(): Decimal(str(r)) for d, r in zip(got.revenue_date, got.revenue_usd, strict=True)} == (
        revenue.to_dict()
    )


def test_the_funnel_follows_the_presets_steps(loaded):
    _, _, ch = loaded
    steps = specs.load("ecommerce_events").roles.funnel
    expected: dict = {}
    for (day, _), g in the_file().groupby(["day", "user_id"]):
        reached, since = 0, None
        for step in steps:  # each step at or after the earliest time the previous one was reached
            times = g[(g.event_type == step) & ((g.time >= since) if since is not None else True)].time
            if times.empty:
                break
            reached, since = reached + 1, times.min()
        counts = expected.setdefault(day, [0] * len(steps))
        for i in range(reached):
            counts[i] += 1
    got = marts(ch, "SELECT funnel_date, viewers, carters, purchasers FROM funnel_daily ORDER BY funnel_date")
    assert {pd.Timestamp(r.funnel_date).date(): [r.viewers, r.carters, r.purchasers] for r in got.itertuples()} == expected


def test_d1_and_d7_retention_per_cohort_day_equal_pandas(loaded):
    _, summary, ch = loaded
    active = the_file()[["day", "user_id"]].drop_duplicates()
    cohort = active.groupby("user_id").day.min()
    active = active.assign(n=[(d - cohort[u]).days for d, u in zip(active.day, active.user_id, strict=True)])
    last = pd.Timestamp(summary["complete_through"]).date()
    got = marts(ch, "SELECT cohort_date, cohort_size, d1_users, d7_users, d1_retention, d7_retention FROM user_retention")
    got = got.set_index(got.cohort_date.map(lambda d: pd.Timestamp(d).date()))
    assert got.cohort_size.to_dict() == cohort.value_counts().to_dict()
    for day, row in got.iterrows():
        for n in (1, 7):
            users = active[(active.n == n) & active.user_id.map(cohort.eq(day))].user_id.nunique()
            assert row[f"d{n}_users"] == users, (day, n)
            if day + timedelta(days=n) <= last:
                assert row[f"d{n}_retention"] == pytest.approx(users / row.cohort_size, rel=1e-12)


def test_a_spec_naming_a_missing_column_fails_before_anything_is_written(warehouse, tmp_path):
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(specs.load("ecommerce_events").text.replace("user_id: user_id", "user_id: customer"))
    before = pipeline.raw_partition(warehouse, "preset_wrong", pd.Timestamp("2026-10-31").date())
    with pytest.raises(SpecError, match=r"fields.user_id: 'customer': .*the input's columns are: event_time, event_type"):
        pipeline.ingest_file(warehouse, SAMPLE, "preset_wrong", None, {}, spec=str(wrong))
    assert before is None and pipeline.raw_partition(warehouse, "preset_wrong", pd.Timestamp("2026-10-31").date()) is None
    assert not pipeline.dataset_dir(warehouse, "preset_wrong").exists()
