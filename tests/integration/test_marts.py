"""Modelling end to end: staging (Postgres) -> dbt -> marts (ClickHouse), checked against metrics
recomputed independently in pandas from the staging events."""

from __future__ import annotations

import shutil
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
    result = dbt_runner.build(stack, SOURCE)
    assert result.ok, result.failures
    ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(SOURCE))
    return stack, ch, staging_events(stack, SOURCE)


def staging_events(stack, source: str) -> pd.DataFrame:
    with pg.connect(stack.postgres) as conn:
        rows = conn.execute(
            "select event_date, user_id, event_type, price_usd, event_time from staging.events where source = %s", (source,)
        ).fetchall()
    return pd.DataFrame(rows, columns=["event_date", "user_id", "event_type", "price_usd", "event_time"])


def complete_through(stack, source: str) -> date:
    with pg.connect(stack.postgres) as conn:
        return conn.execute(
            "select complete_through from staging.load_runs where source = %s and status = 'succeeded' "
            "order by finished_at desc limit 1",
            (source,),
        ).fetchone()[0]


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
    last = complete_through(marts[0], SOURCE)  # day N is observable once it is complete
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


def test_kpi_block_shows_the_last_complete_day(marts):
    stack, ch, events = marts
    [(day, dau)] = ch.query("SELECT metric_date, dau FROM kpi_latest").result_rows
    last = min(events["event_date"].max(), complete_through(stack, SOURCE))
    assert (day, dau) == (last, events[events.event_date == last]["user_id"].nunique())


def test_incomplete_days_and_months_are_flagged(marts):
    stack, ch, _ = marts
    watermark = complete_through(stack, SOURCE)
    for row in ch.query("SELECT metric_date, is_complete FROM user_daily_metrics").result_rows:
        assert row[1] == (row[0] <= watermark)
    for row in ch.query("SELECT revenue_month, is_complete FROM arpu_monthly").result_rows:
        month_end = (pd.Timestamp(row[0]) + pd.offsets.MonthEnd(0)).date()
        assert row[1] == (month_end <= watermark)


def test_revenue_arpu_arppu_match(marts):
    _, ch, events = marts
    buys = events[events.event_type == "purchase"]
    got = frame(ch, "SELECT * FROM revenue_daily ORDER BY revenue_date")
    for row in got.itertuples():
        d = pd.Timestamp(row.revenue_date).date()
        day = buys[buys.event_date == d]
        dau = events[events.event_date == d]["user_id"].nunique()
        revenue = sum(day.price_usd, Decimal(0))
        payers = day["user_id"].nunique()
        assert (row.dau, row.purchases, row.paying_users) == (dau, len(day), payers)
        assert Decimal(str(row.revenue_usd)) == revenue
        assert row.arpu_usd == pytest.approx(float(revenue) / dau, rel=1e-12)
        if len(day):
            assert row.avg_purchase_value_usd == pytest.approx(float(revenue) / len(day), rel=1e-12)
            assert row.arppu_usd == pytest.approx(float(revenue) / payers, rel=1e-12)
        else:
            assert pd.isna(row.avg_purchase_value_usd) and pd.isna(row.arppu_usd)
    [(total,)] = ch.query("SELECT sum(revenue_usd) FROM revenue_daily").result_rows
    assert Decimal(str(total)) == sum(buys.price_usd, Decimal(0))


def test_ordered_funnel_matches_an_independent_computation(marts):
    _, ch, events = marts
    expected = {}
    for (day, _user), g in events.groupby(["event_date", "user_id"]):
        views = g[g.event_type == "view"].event_time
        level = 0
        if len(views):
            level = 1
            carts = g[(g.event_type == "cart") & (g.event_time >= views.min())].event_time
            if len(carts):
                level = 2
                # the earliest cart after the first view leaves the most room for a purchase
                if ((g.event_type == "purchase") & (g.event_time >= carts.min())).any():
                    level = 3
        counts = expected.setdefault(day, [0, 0, 0])
        for step in range(level):
            counts[step] += 1
    got = frame(ch, "SELECT * FROM funnel_daily ORDER BY funnel_date")
    assert len(got) == len(expected)
    for row in got.itertuples():
        viewers, carters, purchasers = expected[pd.Timestamp(row.funnel_date).date()]
        assert (row.viewers, row.carters, row.purchasers) == (viewers, carters, purchasers)
        assert 0 <= row.view_to_cart <= 1 and 0 <= row.view_to_purchase <= 1
        if carters:
            assert row.cart_to_purchase == pytest.approx(purchasers / carters, rel=1e-12) and row.cart_to_purchase <= 1


def test_segments_daily_matches_an_independent_computation(marts):
    stack, ch, events = marts
    with pg.connect(stack.postgres) as conn:
        users = pd.DataFrame(
            conn.execute(
                "select user_id, coalesce(first_platform, 'unknown'), coalesce(country, 'unknown'), "
                "coalesce(acquisition_channel, 'unknown') from staging.users where source = %s",
                (SOURCE,),
            ).fetchall(),
            columns=["user_id", "platform", "country", "acquisition_channel"],
        )
    ev = events.merge(users, on="user_id")
    ev["revenue"] = [p if t == "purchase" else Decimal(0) for p, t in zip(ev.price_usd, ev.event_type, strict=True)]
    per_user_day = ev.groupby(["event_date", "platform", "country", "acquisition_channel", "user_id"]).revenue.agg(
        ["sum", lambda r, ev=ev: (ev.loc[r.index, "event_type"] == "purchase").any()]
    )
    per_user_day.columns = ["revenue", "paid"]
    expected = per_user_day.groupby(level=[0, 1, 2, 3]).agg(
        active=("revenue", "size"), paying=("paid", "sum"), revenue=("revenue", "sum")
    )
    got = frame(ch, "SELECT * FROM segments_daily")
    assert len(got) == len(expected)
    for row in got.itertuples():
        exp = expected.loc[(pd.Timestamp(row.activity_date).date(), row.platform, row.country, row.acquisition_channel)]
        assert (row.active_users, row.paying_users) == (exp.active, exp.paying)
        assert Decimal(str(row.revenue_usd)) == exp.revenue


def test_arpu_monthly_matches_an_independent_computation(marts):
    _, ch, events = marts
    ev = events.assign(month=events.event_date.map(lambda d: d.replace(day=1)))
    buys = ev[ev.event_type == "purchase"]
    got = frame(ch, "SELECT * FROM arpu_monthly ORDER BY revenue_month")
    assert len(got) == ev.month.nunique()
    for row in got.itertuples():
        month = pd.Timestamp(row.revenue_month).date()
        active, payers = ev[ev.month == month].user_id.nunique(), buys[buys.month == month].user_id.nunique()
        revenue = sum(buys[buys.month == month].price_usd, Decimal(0))
        assert (row.active_users, row.paying_users, Decimal(str(row.revenue_usd))) == (active, payers, revenue)
        assert row.arpu_usd == pytest.approx(float(revenue) / active, rel=1e-12)
        assert row.arppu_usd == pytest.approx(float(revenue) / payers, rel=1e-12)


def test_retention_curve_matches_an_independent_computation(marts):
    stack, ch, events = marts
    activity = events[["event_date", "user_id"]].drop_duplicates()
    first = activity.groupby("user_id")["event_date"].min().rename("cohort_date")
    activity = activity.join(first, on="user_id")
    activity["day_n"] = (pd.to_datetime(activity.event_date) - pd.to_datetime(activity.cohort_date)).dt.days
    last = complete_through(stack, SOURCE)
    got = frame(ch, "SELECT * FROM user_retention_curve ORDER BY day_n")
    assert list(got.day_n) == list(range(31))
    for row in got.itertuples():
        eligible = first[first.map(lambda d, n=row.day_n: d + timedelta(days=n) <= last)]
        retained = activity[(activity.day_n == row.day_n) & activity.user_id.isin(eligible.index)].user_id.nunique()
        assert (row.eligible_users, row.retained_users) == (len(eligible), retained)
        assert row.retention_rate == pytest.approx(retained / len(eligible), rel=1e-12)


def _add_staging_purchase(stack, source: str, day: date, event_id: str, amount: str = "10.00") -> None:
    """A late purchase lands in staging (as a cleaning load would put it) for a day that already has events."""
    with pg.connect(stack.postgres) as conn:
        conn.execute(
            "insert into staging.events select source, %s, event_time, event_date, event_hour, 'purchase', "
            "user_id, session_id, product_id, category_id, category_code, brand, %s, 'USD', %s, platform, country, "
            "app_version, channel, ingest_date + 10, true, run_id from staging.events "
            "where source = %s and event_date = %s limit 1",
            (event_id, amount, amount, source, day),
        )
        conn.execute(
            "insert into staging.daily_revenue values (%s, %s, 1, %s, 1, %s) on conflict (source, event_date) do update "
            "set revenue_usd = staging.daily_revenue.revenue_usd + excluded.revenue_usd, "
            "purchases = staging.daily_revenue.purchases + 1",
            (source, day, amount, amount),
        )


FULL_ACTIVITY = (
    "SELECT event_date AS activity_date, user_id, count() AS events, uniqExact(session_id) AS sessions, "
    "countIf(event_type = 'view') AS views, countIf(event_type = 'cart') AS carts, "
    "countIf(event_type = 'purchase') AS purchases, toDecimal64(sumIf(price_usd, event_type = 'purchase'), 2) AS revenue_usd "
    "FROM stg_pulse__events GROUP BY activity_date, user_id"
)


def _activity_equals_full_recomputation(stack, source: str) -> None:
    """The incremental model equals what a full rebuild from the landed events gives, row for row."""
    build = ch_client(stack.clickhouse, database=stack.clickhouse.build_database(source))
    cols = "activity_date, user_id, events, sessions, views, carts, purchases, revenue_usd"
    incremental = f"SELECT {cols} FROM int_user_daily_activity"
    full = f"SELECT {cols} FROM ({FULL_ACTIVITY})"
    [(only_incremental, only_full)] = build.query(
        f"SELECT (SELECT count() FROM ({incremental} EXCEPT {full})), (SELECT count() FROM ({full} EXCEPT {incremental}))"
    ).result_rows
    assert (only_incremental, only_full) == (0, 0)


def test_incremental_build_takes_an_event_ten_days_late(marts):
    stack, ch, events = marts
    late_day = events["event_date"].max() - timedelta(days=10)
    [(before,)] = ch.query(f"SELECT revenue_usd FROM revenue_daily WHERE revenue_date = '{late_day}'").result_rows
    _add_staging_purchase(stack, SOURCE, late_day, "late-by-ten-days")
    result = dbt_runner.build(stack, SOURCE)  # incremental: only the changed day is rebuilt
    assert result.ok, result.failures
    [(after,)] = ch.query(f"SELECT revenue_usd FROM revenue_daily WHERE revenue_date = '{late_day}'").result_rows
    assert Decimal(str(after)) == Decimal(str(before)) + 10
    _activity_equals_full_recomputation(stack, SOURCE)


def test_a_failed_test_publishes_nothing(marts):
    stack, ch, _ = marts
    day = ch.query("SELECT max(revenue_date) FROM revenue_daily").result_rows[0][0]
    published = ch.query("SELECT revenue_date, revenue_usd FROM revenue_daily ORDER BY revenue_date").result_rows
    shift = "update staging.daily_revenue set revenue_usd = revenue_usd + %s where source = %s and event_date = %s"
    with pg.connect(stack.postgres) as conn:  # staging's aggregate now disagrees with its events: the audit must catch it
        conn.execute(shift, (5, SOURCE, day))
    try:
        result = dbt_runner.build(stack, SOURCE)
        assert not result.ok and not result.published
        assert any(f.node.endswith("assert_revenue_matches_staging") for f in result.failures), result.failures
        # the dashboards still read the last good marts
        assert ch.query("SELECT revenue_date, revenue_usd FROM revenue_daily ORDER BY revenue_date").result_rows == published
    finally:
        with pg.connect(stack.postgres) as conn:
            conn.execute(shift, (-5, SOURCE, day))
    assert dbt_runner.build(stack, SOURCE).ok


def test_two_sources_never_mix(marts, stack, spark, tmp_path):
    other = "marts_other"
    out = tmp_path / other
    generate_dataset(out, GenParams(n_events=5_000, days=20, end_date=date(2026, 10, 31), seed=9), DirtParams(rate=0.0))
    raw.upload_dataset(stack.s3, out, other)
    job.run(stack, other, spark=spark)
    assert dbt_runner.build(stack, other).ok
    assert dbt_runner.build(stack, SOURCE).ok  # rebuilding the first source after the second changes nothing of it
    for source in (SOURCE, other):
        ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(source))
        ev = staging_events(stack, source)
        buys = ev[ev.event_type == "purchase"]
        assert ch.query("SELECT sum(revenue_usd), max(revenue_date) FROM revenue_daily").result_rows[0] == (
            sum(buys.price_usd, Decimal(0)),
            ev.event_date.max(),
        )
        _activity_equals_full_recomputation(stack, source)


def test_daily_operation_keeps_marts_equal_to_a_full_recomputation(stack, spark, tmp_path):
    """RAW arrives day by day (with late events); after each cleaning load, `model build` (incremental)
    gives marts equal to a full recomputation, and the newest days stay flagged incomplete."""
    source = "marts_daily"
    full = tmp_path / "full"
    generate_dataset(full, GenParams(n_events=8_000, days=30, end_date=date(2026, 10, 31), seed=11), DirtParams(rate=0.02))
    partitions = sorted(p for p in full.iterdir() if p.is_dir())
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    for upto in (18, 24, 27, len(partitions)):
        for part in partitions[:upto]:
            if not (arrived / part.name).exists():
                shutil.copytree(part, arrived / part.name)
        raw.upload_dataset(stack.s3, arrived, source)
        job.run(stack, source, spark=spark)
        result = dbt_runner.build(stack, source)
        assert result.ok, result.failures
        _activity_equals_full_recomputation(stack, source)
        events, watermark = staging_events(stack, source), complete_through(stack, source)
        ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(source))
        [(kpi_day, kpi_dau)] = ch.query("SELECT metric_date, dau FROM kpi_latest").result_rows
        assert kpi_day == min(watermark, events.event_date.max())
        assert kpi_dau == events[events.event_date == kpi_day].user_id.nunique()
        if upto < len(partitions):  # mid-stream: the newest days may still get late events
            assert watermark < events.event_date.max()
            flags = dict(ch.query("SELECT metric_date, is_complete FROM user_daily_metrics").result_rows)
            assert not flags[events.event_date.max()] and flags[watermark]
        buys = events[events.event_type == "purchase"]
        [(revenue,)] = ch.query("SELECT sum(revenue_usd) FROM revenue_daily").result_rows
        assert Decimal(str(revenue)) == sum(buys.price_usd, Decimal(0))


def test_freshness_counts_only_successful_loads_of_the_source(marts):
    stack, _, _ = marts
    assert dbt_runner.run(stack, ["source", "freshness"], source=SOURCE) == 0
    other = "marts_stale"
    with pg.connect(stack.postgres) as conn:  # this source has only a failed load, however recent
        conn.execute(
            "insert into staging.load_runs (run_id, source, status, finished_at) values (%s, %s, 'failed', now())",
            (job.new_run_id(), other),
        )
    assert dbt_runner.run(stack, ["source", "freshness"], source=other) != 0


def test_secrets_stay_out_of_artefacts_and_logs(marts):
    """Every credential appears only in the files meant to hold it (0600), never in logs, dbt's
    target/ or logs/ (docs included), RAW data or anything else under PULSE_HOME."""
    stack, _, _ = marts
    assert dbt_runner.run(stack, ["docs", "generate"], source=SOURCE) == 0
    secrets_ = {
        stack.postgres.password,
        stack.postgres.admin_password,
        stack.s3.secret_key,
        stack.clickhouse.password,
        stack.clickhouse.bi_password,
        stack.superset.admin_password,
        stack.superset.secret_key,
        stack.superset.metadata_password,
        stack.kafka.password,
        stack.kafka.broker_password,
        stack.airflow.admin_password,
        stack.airflow.metadata_password,
        stack.airflow.secret_key,
    }
    home = stack.home
    meant = {  # the secret stores, and the ClickHouse engine's named collection made from run/clickhouse.json
        home / "run" / "clickhouse.json",
        home / "run" / "superset_config.py",  # SECRET_KEY and the metadata database's password
        home / "run" / "kafka.properties",  # the SASL logins of the broker
        home / "run" / "airflow_passwords.json",  # the Airflow admin's login (simple auth manager)
        *(home / "secrets").iterdir(),
        *(home / "data" / "clickhouse").rglob("named_collections/*"),
    }
    found = []
    for path in [*home.rglob("*"), *dbt_runner.PROJECT_DIR.rglob("*")]:
        if path.is_file() and not path.is_symlink():
            body = path.read_bytes()
            if any(s.encode() in body for s in secrets_):
                found.append(path)
    assert set(found) <= meant, sorted(set(found) - meant)
    for path in (p for p in meant if p.exists()):  # Airflow's store exists only when its tests ran
        assert path.stat().st_mode & 0o077 == 0, path  # readable by the owner only
    assert (home / "secrets").stat().st_mode & 0o077 == 0 and (home / "logs").stat().st_mode & 0o077 == 0
