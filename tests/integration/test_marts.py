"""Modelling end to end: staging (Postgres) -> dbt -> marts (ClickHouse), checked against metrics
recomputed independently in pandas from the staging events."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from pulse.common import pg
from pulse.common.clickhouse import client as ch_client
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.lake import raw
from pulse.modeling import dbt_runner
from pulse.staging import job

pytestmark = pytest.mark.integration
SOURCE = "marts"


@pytest.fixture(scope="module")
def marts(warehouse, spark, tmp_path_factory):
    stack = warehouse
    out = tmp_path_factory.mktemp("marts") / SOURCE
    TRUTH.update(
        generate_dataset(out, GenParams(n_events=20_000, days=75, end_date=date(2026, 10, 31), seed=5), DirtParams(rate=0.02))
    )
    raw.upload_dataset(stack.s3, out, SOURCE)
    job.run(stack, SOURCE, spark=spark)
    result = dbt_runner.build(stack, SOURCE)
    assert result.ok, result.failures
    ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(SOURCE))
    return stack, ch, staging_events(stack, SOURCE)


def load_source(stack, spark, tmp: Path, source: str, params: GenParams) -> Path:
    """A clean generated dataset of its own, through RAW, stage 1 and a first build; its directory."""
    out = tmp / source
    generate_dataset(out, params, DirtParams(rate=0.0))
    raw.upload_dataset(stack.s3, out, source)
    job.run(stack, source, spark=spark)
    assert dbt_runner.build(stack, source).ok
    return out


TRUTH: dict = {}  # the generator's ground truth of the module's dataset
COLUMNS = ["event_date", "user_id", "event_type", "price_usd", "event_time", "platform", "country", "channel"]


def staging_events(stack, source: str) -> pd.DataFrame:
    with pg.connect(stack.postgres) as conn:
        rows = conn.execute(f"select {', '.join(COLUMNS)} from staging.events where source = %s", (source,)).fetchall()
    events = pd.DataFrame(rows, columns=COLUMNS)
    events[["platform", "country", "channel"]] = events[["platform", "country", "channel"]].fillna("unknown")
    return events


def user_segments(events: pd.DataFrame) -> pd.DataFrame:
    """Each user's segment, from the events alone: the platform, country and channel of their first event."""
    first = events.sort_values(["event_time"], kind="stable").groupby("user_id").head(1)
    ties = events.merge(first[["user_id", "event_time"]], on=["user_id", "event_time"])
    assert not ties.groupby("user_id")[["platform", "country", "channel"]].nunique().gt(1).any().any(), "first event ambiguous"
    seg = first.set_index("user_id")[["platform", "country", "channel"]]
    return seg.rename(columns={"channel": "acquisition_channel"})


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
    _, ch, events = marts
    ev = events[["event_date", "user_id", "event_type", "price_usd"]].join(user_segments(events), on="user_id")
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


SEGMENT = ["platform", "country", "acquisition_channel"]


def segment_activity(events: pd.DataFrame) -> pd.DataFrame:
    """One row per user and active day, with the user's segment and that day's purchase revenue."""
    ev = events.assign(
        revenue=[p if t == "purchase" else Decimal(0) for p, t in zip(events.price_usd, events.event_type, strict=True)]
    )
    days = ev.groupby(["user_id", "event_date"], as_index=False).revenue.sum()
    return days.join(user_segments(events), on="user_id")


def test_daily_metrics_by_segment_match_an_independent_computation(marts):
    stack, ch, events = marts
    act = segment_activity(events)
    first, last = act.event_date.min(), act.event_date.max()
    expected = {}
    for d in (first + timedelta(days=i) for i in range((last - first).days + 1)):
        for n, name in ((1, "dau"), (7, "wau"), (30, "mau")):
            window = act[(act.event_date > d - timedelta(days=n)) & (act.event_date <= d)]
            for seg, users in window.groupby(SEGMENT).user_id.nunique().items():
                expected.setdefault((d, *seg), {"dau": 0, "wau": 0, "mau": 0})[name] = users
    watermark = complete_through(stack, SOURCE)
    got = ch.query(f"SELECT metric_date, {', '.join(SEGMENT)}, dau, wau, mau, is_complete FROM user_daily_metrics_by_segment")
    rows = {r[:4]: r[4:] for r in got.result_rows}
    assert rows.keys() == expected.keys()
    for key, (dau, wau, mau, complete) in rows.items():
        assert (dau, wau, mau) == (expected[key]["dau"], expected[key]["wau"], expected[key]["mau"]), key
        assert complete == (key[0] <= watermark)


def test_retention_curve_by_segment_matches_an_independent_computation(marts):
    stack, ch, events = marts
    act = segment_activity(events)
    cohort = act.groupby("user_id").event_date.min().rename("cohort_date")
    act = act.join(cohort, on="user_id")
    act["day_n"] = [(d - c).days for d, c in zip(act.event_date, act.cohort_date, strict=True)]
    sizes = act.drop_duplicates("user_id").groupby(["cohort_date", *SEGMENT]).size()
    retained = act[act.day_n <= 30].groupby(["cohort_date", *SEGMENT, "day_n"]).user_id.nunique()
    watermark = complete_through(stack, SOURCE)
    got = ch.query(
        f"SELECT cohort_date, {', '.join(SEGMENT)}, day_n, cohort_users, retained_users, is_observable "
        "FROM retention_curve_by_segment"
    ).result_rows
    assert len(got) == len(sizes) * 31
    for cohort_date, *seg, n, users, kept, observable in got:
        key = (cohort_date, *seg)
        assert users == sizes[key] and (kept or 0) == retained.get((*key, n), 0), (key, n)
        assert observable == (cohort_date + timedelta(days=n) <= watermark)


def test_monthly_cohorts_by_segment_match_an_independent_computation(marts):
    _, ch, events = marts
    act = segment_activity(events)
    act["month"] = act.event_date.map(lambda d: d.replace(day=1))
    act = act.join(act.groupby("user_id").month.min().rename("cohort_month"), on="user_id")
    act["since"] = [(m.year - c.year) * 12 + m.month - c.month for m, c in zip(act.month, act.cohort_month, strict=True)]
    sizes = act.drop_duplicates("user_id").groupby(["cohort_month", *SEGMENT]).size()
    monthly = act.groupby(["cohort_month", *SEGMENT, "since"]).agg(active=("user_id", "nunique"), revenue=("revenue", "sum"))
    last = act.month.max()
    got = ch.query(
        f"SELECT cohort_month, {', '.join(SEGMENT)}, months_since_first, cohort_size, active_users, revenue_usd, "
        "cumulative_revenue_usd FROM cohorts_monthly_by_segment ORDER BY cohort_month, platform, country, "
        "acquisition_channel, months_since_first"
    ).result_rows
    expected_rows = sum((last.year - c[0].year) * 12 + last.month - c[0].month + 1 for c in sizes.index)
    assert len(got) == expected_rows
    cumulative: dict = {}
    for month, *seg, since, size, active, revenue, running in got:
        key = (month, *seg)
        exp = monthly.loc[(*key, since)] if (*key, since) in monthly.index else None
        want_active, want_revenue = (0, Decimal(0)) if exp is None else (exp.active, exp.revenue)
        cumulative[key] = cumulative.get(key, Decimal(0)) + want_revenue
        assert (size, active or 0, revenue or Decimal(0), running) == (sizes[key], want_active, want_revenue, cumulative[key])


def test_events_daily_matches_an_independent_computation(marts):
    _, ch, events = marts
    expected = events.groupby(["event_date", "event_type"]).agg(events=("user_id", "size"), users=("user_id", "nunique"))
    got = ch.query("SELECT event_date, event_type, events, users FROM events_daily").result_rows
    assert {(d, t): (e, u) for d, t, e, u in got} == {k: (int(r.events), int(r.users)) for k, r in expected.iterrows()}
    assert sum(e for *_, e, _ in got) == TRUTH["clean_events"]  # and against the generator


def test_every_kpi_of_the_kpi_block_matches(marts):
    stack, ch, events = marts
    day = min(events.event_date.max(), complete_through(stack, SOURCE))
    activity = events[["event_date", "user_id"]].drop_duplicates()
    dau, wau, mau = (users_in_window(activity, day, n) for n in (1, 7, 30))
    buys = events[(events.event_type == "purchase") & (events.event_date == day)]
    revenue = sum(buys.price_usd, Decimal(0))
    week_ago = users_in_window(activity, day - timedelta(days=7), 1)
    first = activity.groupby("user_id").event_date.min()
    d1 = []
    for cohort, users in first.groupby(first):  # cohorts whose day 1 is complete
        if cohort + timedelta(days=1) <= complete_through(stack, SOURCE):
            next_day = activity[(activity.event_date == cohort + timedelta(days=1)) & activity.user_id.isin(users.index)]
            d1.append(next_day.user_id.nunique() / len(users))
    [row] = ch.query("SELECT * FROM kpi_latest").named_results()
    assert (row["metric_date"], row["dau"], row["wau"], row["mau"]) == (day, dau, wau, mau)
    assert Decimal(str(row["revenue_usd"])) == revenue
    assert row["stickiness"] == pytest.approx(dau / mau, rel=1e-12)
    assert row["arpu_usd"] == pytest.approx(float(revenue) / dau, rel=1e-12)
    assert row["arppu_usd"] == pytest.approx(float(revenue) / buys.user_id.nunique(), rel=1e-12)
    assert row["dau_change_wow"] == pytest.approx(dau / week_ago - 1, rel=1e-12)
    assert row["avg_d1_retention"] == pytest.approx(sum(d1) / len(d1), rel=1e-12)


def test_data_quality_marts_match_the_generators_truth(marts):
    stack, ch, _ = marts
    with pg.connect(stack.postgres) as conn:
        [(run_id, started, finished)] = conn.execute(
            "select run_id, started_at, finished_at from staging.load_runs where source = %s", (SOURCE,)
        ).fetchall()
    [run] = ch.query("SELECT * FROM dq_load_runs").named_results()  # the module's dataset had one load
    quarantined = TRUTH["quarantined_total"]
    assert (run["run_id"], run["status"], run["has_error"]) == (run_id, "succeeded", False)
    assert (run["rows_in"], run["rows_kept"], run["rows_quarantined"]) == (TRUTH["raw_rows"], TRUTH["clean_events"], quarantined)
    assert run["quarantine_share"] == pytest.approx(quarantined / TRUTH["raw_rows"], rel=1e-12)
    assert run["seconds"] == pytest.approx((finished - started).total_seconds(), abs=1e-3)
    assert run["complete_through"] == complete_through(stack, SOURCE)
    rules = ch.query("SELECT run_id, rule, rows_quarantined FROM dq_quarantine_rules").result_rows
    assert {r: n for rid, r, n in rules if rid == run_id} == {r: n for r, n in TRUTH["quarantined"].items() if n}
    assert {rid for rid, _, _ in rules} == {run_id}


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
    other = "marts_other"  # a month earlier: its watermark differs from the first source's
    load_source(stack, spark, tmp_path, other, GenParams(n_events=5_000, days=20, end_date=date(2026, 9, 30), seed=9))
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
        # each source's completeness is its own loads' (the latest load of any source once leaked in)
        flags = dict(ch.query("SELECT metric_date, is_complete FROM user_daily_metrics").result_rows)
        assert flags == {d: d <= complete_through(stack, source) for d in flags}, source
        last_complete = min(ev.event_date.max(), complete_through(stack, source))
        assert ch.query("SELECT metric_date FROM kpi_latest").result_rows == [(last_complete,)]


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
