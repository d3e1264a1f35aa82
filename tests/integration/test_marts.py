"""Stage 2 end to end: staging (Postgres) -> dbt -> marts (ClickHouse), checked against metrics
recomputed independently in pandas from the staging events."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from pulse.common import pg
from pulse.common.clickhouse import client as ch_client
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.lake import raw
from pulse.modeling import dbt_runner
from pulse.services.clickhouse import ClickHouse
from pulse.staging import job

pytestmark = pytest.mark.integration
SOURCE = "marts"


@pytest.fixture(scope="module")
def marts(stack, spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("marts") / SOURCE
    generate_dataset(out, GenParams(n_events=20_000, days=75, end_date=date(2026, 10, 31), seed=5), DirtParams(rate=0.02))
    raw.upload_dataset(stack.s3, out, SOURCE)
    job.run(stack, SOURCE, spark=spark)
    ClickHouse(stack).start()
    assert dbt_runner.run(stack, ["build"], source=SOURCE) == 0
    ch = ch_client(stack.clickhouse)
    with pg.connect(stack.postgres) as conn:
        rows = conn.execute(
            "select event_date, user_id, event_type, price_usd from staging.events where source = %s", (SOURCE,)
        ).fetchall()
    events = pd.DataFrame(rows, columns=["event_date", "user_id", "event_type", "price_usd"])
    return stack, ch, events


def frame(ch, sql: str) -> pd.DataFrame:
    return ch.query_df(sql)


def users_in_window(activity: pd.DataFrame, day: date, days: int) -> int:
    """Distinct users active in the `days` days ending on `day`."""
    inside = (activity.event_date > day - timedelta(days=days)) & (activity.event_date <= day)
    return activity[inside]["user_id"].nunique()


def test_dau_wau_mau_match_an_independent_computation(marts):
    _, ch, events = marts
    activity = events[["event_date", "user_id"]].drop_duplicates()
    last = activity["event_date"].max()
    got = frame(ch, "SELECT metric_date, dau, wau, mau, stickiness FROM user_daily_metrics ORDER BY metric_date")
    assert len(got) == (last - activity["event_date"].min()).days + 1
    for row in got.itertuples():
        d = pd.Timestamp(row.metric_date).date()
        dau, wau, mau = (users_in_window(activity, d, n) for n in (1, 7, 30))
        assert (row.dau, row.wau, row.mau) == (dau, wau, mau), d
        assert row.stickiness == pytest.approx(dau / mau, rel=1e-12)


def test_retention_matches_an_independent_computation(marts):
    _, ch, events = marts
    activity = events[["event_date", "user_id"]].drop_duplicates()
    first = activity.groupby("user_id")["event_date"].min().rename("cohort_date")
    activity = activity.join(first, on="user_id")
    activity["day_n"] = (pd.to_datetime(activity.event_date) - pd.to_datetime(activity.cohort_date)).dt.days
    last = activity["event_date"].max()
    got = frame(ch, "SELECT * FROM user_retention ORDER BY cohort_date").set_index("cohort_date")
    sizes = first.value_counts()
    assert len(got) == len(sizes)
    for cohort, size in sizes.items():
        row = got.loc[pd.Timestamp(cohort)] if pd.Timestamp(cohort) in got.index else got.loc[cohort]
        assert row.cohort_size == size
        for n in (1, 7, 14, 30):
            users = activity[(activity.cohort_date == cohort) & (activity.day_n == n)]["user_id"].nunique()
            assert row[f"d{n}_users"] == users
            rate = row[f"d{n}_retention"]
            if cohort + timedelta(days=n) <= last:
                assert rate == pytest.approx(users / size, rel=1e-12)
            else:
                assert pd.isna(rate)  # day N not observable yet


def test_monthly_cohorts_and_ltv_match(marts):
    _, ch, events = marts
    ev = events.copy()
    first = ev.groupby("user_id")["event_date"].min()
    ev["cohort_month"] = ev["user_id"].map(first).map(lambda d: d.replace(day=1))
    ev["month"] = ev["event_date"].map(lambda d: d.replace(day=1))
    ev["months_since"] = [(m.year - c.year) * 12 + m.month - c.month for m, c in zip(ev.month, ev.cohort_month, strict=True)]
    ev["revenue"] = [p if t == "purchase" else Decimal(0) for p, t in zip(ev.price_usd, ev.event_type, strict=True)]
    sizes = first.map(lambda d: d.replace(day=1)).value_counts()
    expected = ev.groupby(["cohort_month", "months_since"]).agg(active=("user_id", "nunique"), revenue=("revenue", "sum"))
    got = frame(ch, "SELECT * FROM cohorts_monthly ORDER BY cohort_month, months_since_first")
    assert len(got) == len(expected)
    cumulative: dict = {}
    for row in got.itertuples():
        cohort = pd.Timestamp(row.cohort_month).date()
        exp = expected.loc[(cohort, row.months_since_first)]
        assert (row.cohort_size, row.active_users) == (sizes[cohort], exp.active)
        assert Decimal(str(row.revenue_usd)) == exp.revenue
        cumulative[cohort] = cumulative.get(cohort, Decimal(0)) + exp.revenue
        assert Decimal(str(row.cumulative_revenue_usd)) == cumulative[cohort]
        assert row.ltv_per_user_usd == pytest.approx(float(cumulative[cohort]) / sizes[cohort], rel=1e-12)
        assert row.retained_pct == pytest.approx(exp.active / sizes[cohort], rel=1e-12)


def test_kpi_view_shows_the_latest_day(marts):
    _, ch, events = marts
    [(day, dau)] = ch.query("SELECT metric_date, dau FROM kpi_latest").result_rows
    last = events["event_date"].max()
    assert (day, dau) == (last, events[events.event_date == last]["user_id"].nunique())
    [(engine,)] = ch.query(
        "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'kpi_latest'"
    ).result_rows
    assert engine == "View"


def test_revenue_arpu_arppu_match(marts):
    _, ch, events = marts
    buys = events[events.event_type == "purchase"]
    got = frame(ch, "SELECT * FROM revenue_daily ORDER BY revenue_date")
    for row in got.itertuples():
        d = pd.Timestamp(row.revenue_date).date()
        day = buys[buys.event_date == d]
        dau = events[events.event_date == d]["user_id"].nunique()
        revenue = sum(day.price_usd, Decimal(0))
        assert (row.dau, row.orders, row.paying_users) == (dau, len(day), day["user_id"].nunique())
        assert Decimal(str(row.revenue_usd)) == revenue
        assert row.arpu_usd == pytest.approx(float(revenue) / dau, rel=1e-12)
    [(total,)] = ch.query("SELECT sum(revenue_usd) FROM revenue_daily").result_rows
    assert Decimal(str(total)) == sum(buys.price_usd, Decimal(0))


def test_incremental_rerun_takes_late_events_without_duplicates(marts):
    stack, ch, events = marts
    last = events["event_date"].max()
    late_day = last - timedelta(days=1)
    user = int(events[events.event_date == late_day]["user_id"].iloc[0])
    before = ch.query(f"SELECT revenue_usd FROM revenue_daily WHERE revenue_date = '{late_day}'").result_rows[0][0]
    with pg.connect(stack.postgres) as conn:  # a late purchase lands in staging for an existing day
        conn.execute(
            "insert into staging.events select source, 'late-event-1', event_time, event_date, event_hour, 'purchase', "
            "user_id, session_id, product_id, category_id, category_code, brand, 10.00, 'USD', 10.00, platform, country, "
            "app_version, channel, ingest_date + 2, true, run_id from staging.events "
            "where source = %s and user_id = %s and event_date = %s limit 1",
            (SOURCE, user, late_day),
        )
        conn.execute(
            "update staging.daily_revenue set revenue_usd = revenue_usd + 10, orders = orders + 1 "
            "where source = %s and event_date = %s",
            (SOURCE, late_day),
        )
        if (
            conn.execute(
                "select count(*) from staging.daily_revenue where source = %s and event_date = %s", (SOURCE, late_day)
            ).fetchone()[0]
            == 0
        ):
            conn.execute("insert into staging.daily_revenue values (%s, %s, 1, 10, 1, 10)", (SOURCE, late_day))
    assert dbt_runner.run(stack, ["build"], source=SOURCE) == 0  # incremental path; the dbt tests run too
    after = ch.query(f"SELECT revenue_usd FROM revenue_daily WHERE revenue_date = '{late_day}'").result_rows[0][0]
    assert Decimal(str(after)) == Decimal(str(before)) + 10
    [(rows, distinct)] = ch.query("SELECT count(), uniqExact(activity_date, user_id) FROM int_user_daily_activity").result_rows
    assert rows == distinct == len(events[["event_date", "user_id"]].drop_duplicates())
