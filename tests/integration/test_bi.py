"""BI as a person uses it: Superset started by Pulse, the dashboards deployed from superset/,
every chart's numbers (chart-data API) checked against the marts and against pandas on the staging
events, a real browser rendering and filtering the dashboards, and the memo's numbers re-derived."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import psutil
import pytest
import requests
import yaml
from clickhouse_connect.driver.exceptions import DatabaseError
from scipy import stats as sps

from pulse import pipeline
from pulse.bi import assets, memo
from pulse.bi.client import SupersetClient
from pulse.common import pg
from pulse.common.clickhouse import client as ch_client
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.lake import raw
from pulse.modeling import dbt_runner
from pulse.sources import spec as specs
from pulse.staging import job

from .browser import ARTEFACTS, dashboards_report

pytestmark = pytest.mark.integration
SOURCE = "bitest"
OTHER = "bitest_other"


def load_source(stack, spark, tmp: Path, source: str, params: GenParams) -> None:
    out = tmp / source
    generate_dataset(out, params, DirtParams(rate=0.01))
    raw.upload_dataset(stack.s3, out, source)
    job.run(stack, source, spark=spark)
    result = dbt_runner.build(stack, source)
    assert result.ok, result.failures


@pytest.fixture(scope="module")
def bi(superset, spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bi")
    load_source(superset, spark, tmp, SOURCE, GenParams(n_events=120_000, days=120, end_date=date(2026, 10, 31), seed=11))
    pipeline.forecast(superset, SOURCE)  # the ML dashboard reads the ML stage's tables
    pipeline.segment(superset, SOURCE)
    deployed = pipeline.deploy_bi(superset, SOURCE)
    assert deployed.failed == {}, deployed.failed
    client = SupersetClient(superset.superset)
    return superset, deployed, client


def ms_to_date(value) -> date:
    return pd.to_datetime(value, unit="ms").date()


def chart_rows(client: SupersetClient, deployed, key: str, query: int = 0) -> pd.DataFrame:
    uuid = yaml.safe_load((assets.ASSETS_DIR / "charts" / f"{key}.yaml").read_text())["uuid"]
    data = client.chart_data(deployed.charts[uuid])
    return pd.DataFrame(data["result"][query]["data"])


def filtered_rows(data_by_slice: dict, deployed, key: str) -> pd.DataFrame:
    """One chart's first query result as the browser received it (JSON per chart id), by its date."""
    uuid = yaml.safe_load((assets.ASSETS_DIR / "charts" / f"{key}.yaml").read_text())["uuid"]
    [rows, *_] = json.loads(data_by_slice[str(deployed.charts[uuid])])
    frame = pd.DataFrame(rows)
    date_col = next(c for c in ("metric_date", "activity_date") if c in frame)
    return frame.assign(**{date_col: frame[date_col].map(ms_to_date)}).set_index(date_col).sort_index()


def marts_frame(stack, sql: str) -> pd.DataFrame:
    ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(SOURCE))
    return ch.query_df(sql)


def staging(stack) -> tuple[pd.DataFrame, date]:
    """Independent inputs: the clean events and user dimensions in Postgres, and the watermark."""
    with pg.connect(stack.postgres) as conn:
        events = conn.execute(
            "select e.event_date, e.user_id, e.event_type, e.price_usd, u.first_platform, u.country, u.acquisition_channel "
            "from staging.events e join staging.users u on u.source = e.source and u.user_id = e.user_id where e.source = %s",
            (SOURCE,),
        ).fetchall()
        [(watermark,)] = conn.execute(
            "select complete_through from staging.load_runs where source = %s and status = 'succeeded' "
            "order by finished_at desc limit 1",
            (SOURCE,),
        ).fetchall()
    frame = pd.DataFrame(events, columns=["day", "user_id", "event_type", "price", "platform", "country", "channel"])
    frame["price"] = frame.price.astype(float).fillna(0.0)
    return frame, watermark


def close(a: pd.Series, b: pd.Series, rel: float = 1e-9) -> bool:
    a, b = a.copy(), b.copy()
    if not isinstance(a.index, pd.MultiIndex):  # LowCardinality columns come back categorical
        a.index, b.index = a.index.astype(str), b.index.astype(str)
    return bool(((a.astype(float) - b.astype(float)).abs() <= rel * b.astype(float).abs().clip(lower=1)).all())


# --- the service ---------------------------------------------------------------------------------


def test_superset_runs_on_loopback_with_postgres_metadata_and_private_secrets(bi):
    stack, _, _ = bi
    cfg = stack.superset
    assert requests.get(f"{cfg.base_url}/health", timeout=5).text == "OK"
    listening = {c.laddr.ip for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == cfg.port}
    assert listening == {"127.0.0.1"}
    with pg.connect(stack.postgres, admin=True, dbname=cfg.metadata_database) as conn:
        [(tables,)] = conn.execute("select count(*) from information_schema.tables where table_name in ('slices', 'dashboards')")
    assert tables == 2  # Superset's metadata lives in the project's PostgreSQL, not SQLite
    for path in (stack.run_dir / "superset_config.py", stack.home / "secrets" / "superset_secret_key"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    bad = requests.post(
        f"{cfg.base_url}/api/v1/security/login",
        json={"username": cfg.admin_user, "password": "wrong", "provider": "db"},
        timeout=10,
    )
    assert bad.status_code == 401
    secrets_ = (cfg.admin_password, cfg.secret_key, cfg.metadata_password, stack.clickhouse.bi_password)
    for secret in secrets_:
        assert secret not in (stack.logs_dir / "superset.log").read_text()
    # Superset's own event log keeps request payloads (the import's `passwords` field): redacted
    with pg.connect(stack.postgres, admin=True, dbname=cfg.metadata_database) as conn:
        logged = [r[0] or "" for r in conn.execute("select json from logs")]
    assert any("assets/import" in j for j in logged)
    assert not [j for j in logged if any(secret in j for secret in secrets_)]


def test_superset_reads_clickhouse_as_the_read_only_role(bi):
    stack, _, client = bi
    [database] = [d for d in client.get("/api/v1/database/")["result"] if d["database_name"] == "Pulse ClickHouse"]
    detail = client.get(f"/api/v1/database/{database['id']}/connection")["result"]
    assert detail["sqlalchemy_uri"].startswith(f"clickhousedb://{stack.clickhouse.bi_user}:XXXXXXXXXX@")
    # SQL Lab through that connection cannot write
    name = f"sqllab_probe_{uuid.uuid4().hex[:8]}"
    resp = client.http.post(
        f"{client.base}/api/v1/sqllab/execute/",
        json={"database_id": database["id"], "sql": f"CREATE TABLE {name} (a Int8) ENGINE = Memory", "runAsync": False},
        timeout=60,
    )
    # refused by Superset's own guard (the database allows no DML), and no such table anywhere on the server
    assert resp.json()["errors"][0]["error_type"] == "DML_NOT_ALLOWED_ERROR", resp.text[:500]
    ch = ch_client(stack.clickhouse, database="system")
    assert ch.query("SELECT count() FROM system.tables WHERE name = {n:String}", parameters={"n": name}).result_rows == [(0,)]
    # … and behind it the connection's role itself cannot write, whatever a Superset setting says
    cfg = stack.clickhouse
    bi_role = ch_client(cfg, username=cfg.bi_user, password=cfg.bi_password, database=cfg.marts_database(SOURCE))
    with pytest.raises(DatabaseError, match="Cannot execute query in readonly mode"):
        bi_role.command(f"CREATE TABLE {name} (a Int8) ENGINE = Memory")


# --- dashboards as code ------------------------------------------------------------------------


def test_deploy_is_idempotent_and_a_changed_yaml_updates_the_chart(bi, tmp_path):
    stack, deployed, client = bi
    assert set(deployed.dashboards) == {"Product analytics", "Data quality", "ML & forecasts", "Realtime"}
    # opened by an owner, the dashboard stores its label colours (Superset's frontend does this request):
    # instance state, neither a difference nor exported
    dashboard_id = client.get("/api/v1/dashboard/product-analytics")["result"]["id"]
    colours = {"map_label_colors": {"ios": "#1FA8C9"}, "shared_label_colors": ["ios"], "color_scheme_domain": ["#1FA8C9"]}
    client.put(f"/api/v1/dashboard/{dashboard_id}/colors?mark_updated=false", colours | {"color_scheme": "supersetColors"})
    stored = json.loads(client.get(f"/api/v1/dashboard/{dashboard_id}")["result"]["json_metadata"])
    assert stored["map_label_colors"] == colours["map_label_colors"]
    again = assets.deploy(stack, SOURCE, memo=deployed_memo(deployed), warm=False)
    assert again.changed == []  # nothing to import the second time
    edited = tmp_path / "superset"
    shutil.copytree(assets.ASSETS_DIR, edited)
    chart_file = edited / "charts" / "funnel.yaml"
    chart = yaml.safe_load(chart_file.read_text())
    chart["slice_name"] = "Funnel (edited)"
    chart_file.write_text(assets.dump_yaml(chart))
    dataset_file = edited / "datasets" / "Pulse_ClickHouse" / "funnel_steps.yaml"
    dataset = yaml.safe_load(dataset_file.read_text())
    next(m for m in dataset["metrics"] if m["metric_name"] == "users")["verbose_name"] = "Users (edited)"
    dataset_file.write_text(assets.dump_yaml(dataset))

    def funnel_users_label() -> str:  # what the dashboard's first request (cached per worker) says now, on both workers
        labels = set()
        for _ in range(4):
            payload = client.get("/api/v1/dashboard/product-analytics/datasets")["result"]
            labels |= {d["verbose_map"]["users"] for d in payload if d["table_name"] == "funnel_steps"}
        assert len(labels) == 1, labels
        return labels.pop()

    assert funnel_users_label() == "Users"
    changed = assets.deploy(stack, SOURCE, memo=deployed_memo(deployed), warm=False, directory=edited)
    assert sorted(changed.changed) == ["charts/funnel.yaml", "datasets/Pulse_ClickHouse/funnel_steps.yaml"]
    assert client.get(f"/api/v1/chart/{deployed.charts[chart['uuid']]}")["result"]["slice_name"] == "Funnel (edited)"
    assert funnel_users_label() == "Users (edited)"
    restored = assets.deploy(stack, SOURCE, memo=deployed_memo(deployed), warm=False)
    assert sorted(restored.changed) == ["charts/funnel.yaml", "datasets/Pulse_ClickHouse/funnel_steps.yaml"]
    assert funnel_users_label() == "Users"
    # export writes back exactly the repo's files: a diff shows only real changes
    exported = tmp_path / "exported"
    shutil.copytree(assets.ASSETS_DIR, exported)
    assert assets.export(stack, exported) == []


def deployed_memo(deployed) -> str:
    return deployed.memo.dashboard_markdown()


def test_assets_hold_no_secrets_and_stable_uuids():
    bundle = assets.load()
    text = "\n".join(assets.dump_yaml(o) for o in bundle.values())
    assert "XXXXXXXXXX" in text and "password:" not in text
    uuids = [str(o["uuid"]) for o in bundle.values()]
    assert len(uuids) == len(set(uuids))
    charts = [o for p, o in bundle.items() if p.startswith("charts/")]
    main = next(o for p, o in bundle.items() if p == "dashboards/Product_analytics.yaml")
    on_main = {n["meta"]["uuid"] for n in main["position"].values() if isinstance(n, dict) and n.get("type") == "CHART"}
    assert len(on_main) >= 8 + 9  # the KPI block (9) and at least 8 charts
    assert on_main <= {str(c["uuid"]) for c in charts}


# --- every chart's numbers ---------------------------------------------------------------------


def test_engagement_charts_equal_the_marts(bi):
    stack, deployed, client = bi
    udm = marts_frame(stack, "SELECT metric_date, dau, wau, mau, stickiness, is_complete FROM user_daily_metrics")
    udm["metric_date"] = pd.to_datetime(udm.metric_date).dt.date
    udm = udm.set_index("metric_date").sort_index()
    for key, columns, complete_only in [
        ("dau_wau_mau", ["dau", "wau", "mau"], False),
        ("stickiness", ["stickiness"], False),
        ("kpi_dau", ["dau"], True),
        ("kpi_wau", ["wau"], True),
        ("kpi_mau", ["mau"], True),
        ("kpi_stickiness", ["stickiness"], True),
    ]:
        rows = chart_rows(client, deployed, key)
        rows["metric_date"] = rows.metric_date.map(ms_to_date)
        rows = rows.set_index("metric_date").sort_index()
        expected = udm[udm.is_complete.astype(bool)] if complete_only else udm
        assert list(rows.index) == list(expected.index), key
        for col in columns:
            assert close(rows[col], expected[col]), (key, col)


def test_revenue_charts_equal_the_marts(bi):
    stack, deployed, client = bi
    rev = marts_frame(
        stack,
        "SELECT revenue_date, toFloat64(revenue_usd) AS revenue, purchases, paying_users, arpu_usd, arppu_usd, "
        "is_complete FROM revenue_daily ORDER BY revenue_date",
    )
    rev["revenue_date"] = pd.to_datetime(rev.revenue_date).dt.date
    rev = rev.set_index("revenue_date")
    checks = [
        ("revenue_trend", 0, {"revenue": "revenue"}, False),
        ("orders", 0, {"purchases": "purchases", "paying_users": "paying_users"}, False),
        ("arpu_arppu", 0, {"arpu": "arpu_usd", "arppu": "arppu_usd"}, False),
        ("kpi_revenue", 0, {"revenue": "revenue"}, True),
        ("kpi_arpu", 0, {"arpu": "arpu_usd"}, True),
        ("kpi_arppu", 0, {"arppu": "arppu_usd"}, True),
    ]
    for key, query, columns, complete_only in checks:
        rows = chart_rows(client, deployed, key, query)
        rows["activity_date"] = rows.activity_date.map(ms_to_date)
        rows = rows.set_index("activity_date").sort_index()
        expected = rev[rev.is_complete.astype(bool)] if complete_only else rev
        assert list(rows.index) == list(expected.index), key
        for chart_col, mart_col in columns.items():
            assert close(rows[chart_col], expected[mart_col].fillna(0) if chart_col == "arppu" else expected[mart_col]), key
    rolling = chart_rows(client, deployed, "revenue_trend", 1)
    rolling["activity_date"] = rolling.activity_date.map(ms_to_date)
    rolling = rolling.set_index("activity_date").sort_index().revenue
    expected = rev.revenue.rolling(7, min_periods=7).mean()
    expected = expected.dropna()  # the chart starts on the 7th day
    assert list(rolling.index) == list(expected.index) and close(rolling, expected)


def test_retention_and_cohort_charts_equal_the_marts(bi):
    stack, deployed, client = bi
    curve = marts_frame(stack, "SELECT day_n, retention_rate FROM user_retention_curve ORDER BY day_n").set_index("day_n")
    rows = chart_rows(client, deployed, "retention_curve").set_index("day_n").sort_index()
    assert list(rows.index) == list(curve.index) and close(rows.retention, curve.retention_rate)
    ret = marts_frame(stack, "SELECT cohort_date, d1_retention, d7_retention FROM user_retention ORDER BY cohort_date")
    ret["cohort_date"] = pd.to_datetime(ret.cohort_date).dt.date
    ret = ret.set_index("cohort_date")
    for key, col in (("kpi_d1", "d1_retention"), ("kpi_d7", "d7_retention")):
        rows = chart_rows(client, deployed, key)
        rows["cohort_date"] = rows.cohort_date.map(ms_to_date)
        rows = rows.set_index("cohort_date").sort_index()
        expected = ret[col].dropna()
        assert list(rows.index) == list(expected.index) and close(rows.retention, expected), key
    cohorts = marts_frame(stack, "SELECT cohort_month, months_since_first, retained_pct, ltv_per_user_usd FROM cohorts_monthly")
    cohorts["cohort_month"] = pd.to_datetime(cohorts.cohort_month).dt.date
    cohorts = cohorts.set_index(["cohort_month", "months_since_first"])
    for key, chart_col, mart_col in (
        ("cohort_heatmap", "retained_pct", "retained_pct"),
        ("ltv_by_cohort", "ltv_per_user", "ltv_per_user_usd"),
    ):
        rows = chart_rows(client, deployed, key)
        rows["cohort_month"] = rows.cohort_month.map(ms_to_date)
        rows = rows.set_index(["cohort_month", "months_since_first"]).sort_index()
        common = rows.index.intersection(cohorts.index)
        assert len(common) == len(cohorts), key  # every mart cell is on the chart
        assert close(rows.loc[common, chart_col], cohorts.loc[common, mart_col]), key
        if key == "cohort_heatmap":  # cells the mart leaves out are months without anyone active
            assert (rows.drop(common)[chart_col] == 0).all()


def test_funnel_and_segment_charts_equal_pandas_on_the_staging_events(bi):
    stack, deployed, client = bi
    funnel = marts_frame(stack, "SELECT sum(viewers) v, sum(carters) c, sum(purchasers) p FROM funnel_daily").iloc[0]
    rows = chart_rows(client, deployed, "funnel").set_index("step").users
    assert list(rows) == [funnel.v, funnel.c, funnel.p]

    events, _ = staging(stack)
    days = (
        events.groupby(["day", "user_id"])
        .agg(
            platform=("platform", "first"),
            country=("country", "first"),
            channel=("channel", "first"),
            revenue=("price", lambda s: s[events.loc[s.index, "event_type"] == "purchase"].sum()),
            purchases=("event_type", lambda s: (s == "purchase").sum()),
        )
        .reset_index()
    )
    by_platform = days.groupby(["day", "platform"]).size()
    rows = chart_rows(client, deployed, "dau_by_platform")
    rows["activity_date"] = rows.activity_date.map(ms_to_date)
    got = rows.set_index(["activity_date", "platform"]).dau.sort_index()
    assert got.to_dict() == by_platform.to_dict()

    by_country = days.groupby("country").revenue.sum()
    rows = chart_rows(client, deployed, "revenue_by_country").set_index("country").revenue
    assert close(rows.sort_index(), by_country[by_country.index.isin(rows.index)].sort_index(), rel=1e-6)

    first_day = days.groupby("user_id").agg(day=("day", "min"), channel=("channel", "first"))
    rows = chart_rows(client, deployed, "by_channel").set_index("acquisition_channel")
    assert rows.new_users.to_dict() == first_day.groupby("channel").size().to_dict()
    per_channel = days.groupby("channel").agg(
        revenue=("revenue", "sum"), user_days=("user_id", "size"), paying=("purchases", lambda s: (s > 0).sum())
    )
    assert close(rows.revenue.sort_index(), per_channel.revenue.sort_index(), rel=1e-6)
    assert close(rows.arpu.sort_index(), (per_channel.revenue / per_channel.user_days).sort_index(), rel=1e-6)
    assert close(rows.paying_share.sort_index(), (per_channel.paying / per_channel.user_days).sort_index())


def test_lifecycle_and_stickiness_charts_equal_pandas_on_the_staging_events(bi):
    stack, deployed, client = bi
    events, watermark = staging(stack)
    active = events[["day", "user_id"]].drop_duplicates()
    active["week"] = active.day.map(lambda d: d - timedelta(days=d.weekday()))
    weeks = active.groupby("week").user_id.apply(set).sort_index()
    first_week = active.groupby("user_id").week.min()
    expected = {}
    seen: set = set()
    previous: set = set()
    for week, users in weeks.items():
        new = {u for u in users if first_week[u] == week}
        returning = users & previous
        expected[week] = (len(new), len(returning), len(users - new - returning), -len(previous - users))
        seen |= users
        previous = users
    rows = chart_rows(client, deployed, "lifecycle")
    rows["week_start"] = rows.week_start.map(ms_to_date)
    got = {r.week_start: (r.new, r.returning, r.resurrecting, r.dormant) for r in rows.itertuples()}
    assert got == expected

    for key, period, length in (("stickiness_week", "week", 7), ("stickiness_month", "month", None)):
        if period == "week":
            active["start"] = active.week
            complete = active.start.map(lambda s: s + timedelta(days=6) <= watermark)
        else:
            active["start"] = active.day.map(lambda d: d.replace(day=1))
            complete = active.start.map(lambda s: (pd.Timestamp(s) + pd.offsets.MonthEnd(0)).date() <= watermark)
        counts = active[complete].groupby(["start", "user_id"]).size().value_counts().sort_index()
        rows = chart_rows(client, deployed, key).set_index("active_days").users.sort_index()
        assert rows.to_dict() == counts.to_dict(), key
        if length:
            assert rows.index.max() <= length


def test_data_quality_charts_equal_the_cleaning_audit(bi):
    stack, deployed, client = bi
    # the charts draw loads on a time axis: each load by its start, to the second, in epoch ms as Superset sends it
    start = "(extract(epoch from date_trunc('second', started_at)) * 1000)::bigint"
    with pg.connect(stack.postgres) as conn:
        loads = conn.execute(
            f"select run_id, {start}, rows_out, rows_quarantined from staging.load_runs where source = %s", (SOURCE,)
        ).fetchall()
        rules = {
            (r[0], r[1]): r[2]
            for r in conn.execute(
                f"select {start}, r.rule, r.rows from staging.load_run_rules r join staging.load_runs l using (run_id) "
                "where l.source = %s",
                (SOURCE,),
            )
        }
    runs = {run_id: (kept, quarantined) for run_id, _, kept, quarantined in loads}
    by_start = {at: (kept, quarantined) for _, at, kept, quarantined in loads}
    assert len(by_start) == len(runs)  # no two loads in one second: the axis tells them apart
    rows = chart_rows(client, deployed, "dq_rows")
    assert {r.started_at: (r.rows_kept, r.rows_quarantined) for r in rows.itertuples()} == by_start
    rows = chart_rows(client, deployed, "dq_rules")
    assert {(r.started_at, r.rule): r.rows_quarantined for r in rows.itertuples()} == {k: v for k, v in rules.items() if v}
    rows = chart_rows(client, deployed, "dq_runs")
    assert {r.run_id: (r.rows_kept, r.rows_quarantined) for r in rows.itertuples()} == runs
    assert (rows.rows_in == rows.rows_kept + rows.rows_quarantined).all()
    hours = chart_rows(client, deployed, "dq_freshness").hours_since_load.iloc[0]
    assert 0 <= hours <= 1


def test_ml_charts_equal_the_ml_tables(bi):
    stack, deployed, client = bi
    chosen = dict(marts_frame(stack, "SELECT metric, model FROM ml_model_metrics_latest WHERE is_chosen AND horizon = 1").values)
    forecasts = marts_frame(
        stack,
        "SELECT metric, model, target_date, yhat, yhat_lower, yhat_upper FROM ml_forecasts_latest "
        "WHERE NOT is_backtest OR horizon = 1",
    )
    forecasts["target_date"] = pd.to_datetime(forecasts.target_date).dt.date
    actual = {
        "dau": marts_frame(stack, "SELECT metric_date AS day, toFloat64(dau) AS v FROM user_daily_metrics WHERE is_complete"),
        "revenue": marts_frame(
            stack, "SELECT revenue_date AS day, toFloat64(revenue_usd) AS v FROM revenue_daily WHERE is_complete"
        ),
    }
    for metric, forecast_chart, backtest_chart in (
        ("dau", "forecast_dau", "backtest_dau"),
        ("revenue", "forecast_revenue", "backtest_revenue"),
    ):
        mine = forecasts[(forecasts.metric == metric) & (forecasts.model == chosen[metric])].set_index("target_date").sort_index()
        # one query: the actual line, the forecast and its interval named as Superset's forecasts are (drawn as a band)
        a = chart_rows(client, deployed, forecast_chart, 0)
        a["day"] = a.day.map(ms_to_date)
        kinds = {", actual": "actual", "__yhat": "forecast", "__yhat_lower": "lower", "__yhat_upper": "upper"}
        a = a.set_index("day").sort_index()
        a.columns = [next(k for end, k in kinds.items() if c.endswith(end)) for c in a.columns]
        got = a.forecast.dropna()
        assert list(got.index) == list(mine.index) and close(got, mine.yhat), metric
        truth = actual[metric].assign(day=lambda f: pd.to_datetime(f.day).dt.date).set_index("day").v
        shown = a.actual.dropna()
        assert set(shown.index) <= set(truth.index) and close(shown, truth.loc[shown.index]), metric
        assert shown.index.min() <= mine.index.min()  # actuals start before the first backtest forecast
        b = a.dropna(subset=["lower"])
        assert close(b.lower, mine.yhat_lower.loc[b.index]) and close(b.upper, mine.yhat_upper.loc[b.index]), metric
        errors = marts_frame(stack, f"SELECT model, horizon, mase FROM ml_model_metrics_latest WHERE metric = '{metric}'")
        rows = chart_rows(client, deployed, backtest_chart)
        assert {(r.model, r.horizon): round(r.mase, 9) for r in rows.itertuples()} == {
            (r.model, r.horizon): round(r.mase, 9) for r in errors.itertuples()
        }
    segments = marts_frame(
        stack, "SELECT segment, recency_days, active_days_30, sessions_90, revenue_usd, tenure_days FROM user_segments_latest"
    )
    rows = chart_rows(client, deployed, "segment_distribution").set_index("segment").users
    assert rows.to_dict() == segments.groupby("segment").size().to_dict()
    table = chart_rows(client, deployed, "segment_profiles_table").set_index("segment").sort_index()
    expected = (
        segments.groupby("segment")
        .agg(
            users=("segment", "size"),
            revenue=("revenue_usd", "sum"),
            avg_revenue=("revenue_usd", "mean"),
            avg_recency_days=("recency_days", "mean"),
            avg_tenure_days=("tenure_days", "mean"),
        )
        .sort_index()
    )
    for col in expected.columns:
        assert close(table[col], expected[col], rel=1e-6), col
    runs = marts_frame(
        stack, "SELECT trained_at, segment, sum(users) AS users FROM segment_profiles GROUP BY trained_at, segment"
    )
    rows = chart_rows(client, deployed, "segment_sizes_over_runs")
    assert sorted(rows.users) == sorted(runs.users) and len(rows) == len(runs)


def test_every_chart_has_a_numeric_check_here():
    """A chart added to superset/ needs its check in this module or, for the Realtime dashboard, in
    test_stream.py (by its file name, quoted)."""
    text = Path(__file__).read_text() + Path(__file__).with_name("test_stream.py").read_text()
    charts = {p.stem for p in (assets.ASSETS_DIR / "charts").glob("*.yaml")}
    assert not {c for c in charts if f'"{c}"' not in text}


# --- in a real browser -------------------------------------------------------------------------


def test_dashboards_render_without_errors_and_respond_to_filters_in_a_browser(bi):
    stack, deployed, _ = bi
    report = dashboards_report(stack, "product-analytics,data-quality,ml-forecasts", timeout=600, FILTER_VALUE="ios")
    main, dq, ml = report["product-analytics"], report["data-quality"], report["ml-forecasts"]
    assert ml["errors"] == [] and ml["failed_requests"] == [] and ml["charts"] == 7
    n_main = sum(
        1
        for p in assets.load()["dashboards/Product_analytics.yaml"]["position"].values()
        if isinstance(p, dict) and p.get("type") == "CHART"
    )
    assert main["errors"] == [] and main["failed_requests"] == [] and dq["errors"] == [] and dq["failed_requests"] == []
    assert main["charts"] == n_main and dq["charts"] >= 4
    # every tab visited, each with its own picture; no table cut off at the right of its tile
    tabs = ["Overview", "Engagement", "Retention & cohorts", "Revenue", "Funnel", "Segments", "Memo"]
    assert [t["title"] for t in main["tabs"]] == tabs
    assert [t["title"] for t in ml["tabs"]] == ["Forecasts", "Backtest", "Segments"]
    for page in (main, dq, ml):
        assert page["cut_tables"] == [], page["cut_tables"]
        assert all(Path(t["screenshot"]).stat().st_size > 20_000 for t in page["tabs"])
    assert "Monthly cohorts" in main["text"] and assets.MEMO_PLACEHOLDER not in main["text"]  # the memo on its tab
    # the Platform filter reached every chart of the main dashboard and changed what each one shows
    assert main["filter"]["requested"] == n_main
    assert main["filter"]["with_filter"] == n_main
    assert main["filter"]["changed"] == n_main, main["filter"]["unchanged"]
    assert main["filter"]["errors"] == []
    # … and to the values the filter means: ios users' DAU/WAU/MAU and revenue per day, from pandas
    events, _ = staging(stack)
    ios = events[events.platform == "ios"]
    filtered = {key: filtered_rows(main["filter"]["data"], deployed, key) for key in ("dau_wau_mau", "revenue_trend")}
    udm = filtered["dau_wau_mau"]
    for day, row in udm.iterrows():
        for col, n in (("dau", 1), ("wau", 7), ("mau", 30)):
            inside = ios[(ios.day > day - timedelta(days=n)) & (ios.day <= day)]
            assert row[col] == inside.user_id.nunique(), (day, col)
    buys = ios[ios.event_type == "purchase"].groupby("day").price.sum()
    rev = filtered["revenue_trend"].revenue
    assert close(rev, buys.reindex(rev.index, fill_value=0.0)) and rev.sum() == pytest.approx(buys.sum(), rel=1e-9)
    shots = ("product-analytics-overview.png", "product-analytics-filtered.png", "data-quality.png", "ml-forecasts-forecasts.png")
    for name in shots:
        assert (ARTEFACTS / name).stat().st_size > 50_000


# --- the memo ----------------------------------------------------------------------------------


def test_memo_numbers_come_from_the_data_and_another_dataset_gives_another_memo(bi, spark, tmp_path):
    stack, deployed, client = bi
    m = deployed.memo
    assert len(m.insights) == 3 and len(m.hypotheses) == 2
    # insights = the Holm-significant findings by effect, then leads the memo marks (the choice is unit-tested)
    assert [f.significant for f in m.insights] == sorted((f.significant for f in m.insights), reverse=True)
    assert m.markdown().count("a lead, not significant") == sum(not f.significant for f in m.insights)
    text = m.markdown()
    for f in m.insights + m.hypotheses:
        assert f.sql.strip() in text or f in m.hypotheses
    # re-derive the findings independently from the staging events for the kinds that can be
    events, watermark = staging(stack)
    by_key = {f.key: f for f in m.candidates}
    funnel = by_key["funnel_drop_off"]
    assert funnel.numbers["viewers"] > 0 and 0 < funnel.numbers["view_to_cart"] < 1
    daily = events.groupby("day").user_id.nunique()
    complete = daily[[d <= watermark for d in daily.index]].sort_index()
    last84 = complete.iloc[-84:]
    weekend = last84[[d.weekday() >= 5 for d in last84.index]].mean()
    weekday = last84[[d.weekday() < 5 for d in last84.index]].mean()
    season = by_key["weekday_seasonality"].numbers
    assert abs(season["weekend_mean"] - weekend) < 1e-9 and abs(season["weekday_mean"] - weekday) < 1e-9
    is_weekend = [d.weekday() >= 5 for d in last84.index]
    welch = sps.ttest_ind(last84[is_weekend], last84[[not w for w in is_weekend]], equal_var=False).pvalue
    assert by_key["weekday_seasonality"].p_value == pytest.approx(welch, rel=1e-9)  # scipy on pandas' DAU
    trend = by_key["dau_trend"].numbers
    assert abs(trend["last_28"] - complete.iloc[-28:].mean()) < 1e-9
    assert abs(trend["previous_28"] - complete.iloc[-56:-28].mean()) < 1e-9
    welch = sps.ttest_ind(complete.iloc[-28:], complete.iloc[-56:-28], equal_var=False).pvalue
    assert by_key["dau_trend"].p_value == pytest.approx(welch, rel=1e-9)
    # D7 retention by channel from the events: the rates, the group sizes and the chi-square test of all groups
    active = events[["day", "user_id", "channel"]].drop_duplicates()
    cohort = active.groupby("user_id").day.min()
    observable = cohort[[c + timedelta(days=7) <= watermark for c in cohort]]
    day7 = set(active[active.day == active.user_id.map(cohort) + timedelta(days=7)].user_id)
    users = active.drop_duplicates("user_id").set_index("user_id").channel.loc[observable.index]
    kept = users[users.index.isin(day7)]
    table = pd.DataFrame({"users": users.groupby(users).size(), "kept": kept.groupby(kept).size()}).fillna(0)
    table = table[table.users >= 100].assign(rate=lambda t: t.kept / t.users).sort_values("rate", ascending=False)
    gap = by_key["retention_gap_channel"]
    assert gap.numbers["best_rate"] == pytest.approx(table.rate.iloc[0], rel=1e-12)
    assert gap.numbers["worst_rate"] == pytest.approx(table.rate.iloc[-1], rel=1e-12)
    chi2 = sps.chi2_contingency(table[["kept"]].assign(lost=table.users - table.kept).to_numpy(), correction=False)
    assert gap.p_value == pytest.approx(chi2[1], rel=1e-9)
    # the memo is on the dashboard
    dashboard = client.get("/api/v1/dashboard/product-analytics")["result"]
    assert m.insights[0].title in json.dumps(json.loads(dashboard["position_json"]), ensure_ascii=False)
    # a different dataset: different numbers, and the memo says so
    load_source(stack, spark, tmp_path, OTHER, GenParams(n_events=40_000, days=90, end_date=date(2026, 9, 30), seed=99))
    other = memo.build(stack, OTHER)
    print("\n", [f.key for f in m.insights], [f.key for f in other.insights])
    assert other.markdown() != m.markdown()
    assert [f.text for f in other.insights] != [f.text for f in m.insights]
    md, html = memo.write(other, tmp_path / "memo")
    assert "data:image/png;base64," in html.read_text() and md.read_text().count("## ") == 2


# --- a preset source ---------------------------------------------------------------------------


def test_the_dashboards_follow_a_preset_sources_funnel_and_say_when_it_has_no_revenue(bi, preset_source):
    """GA4's four funnel steps by name in the funnel chart; a viewing log (no revenue, no funnel) in a
    real browser: no chart errors, the money charts say why they are empty (screenshot looked at)."""
    stack, base, client = bi
    try:
        # not warmed: the charts compute on demand (the browser below and chart_rows ask for them)
        deployed = pipeline.deploy_bi(stack, preset_source("ga4_export")[0], warm=False)
        funnel = chart_rows(client, deployed, "funnel")
        funnel = funnel.sort_values("step")  # numbered labels: 1. view item, 2. add to cart, ...
        assert list(funnel.step) == list(specs.load("ga4_export").roles.step_labels())
        assert list(funnel.users) == sorted(funnel.users, reverse=True) and funnel.users.iloc[-1] > 0  # an ordered funnel
        deployed = pipeline.deploy_bi(stack, preset_source("netflix_viewing")[0], warm=False)
        report = dashboards_report(stack, "product-analytics", timeout=600, SHOT_SUFFIX="-netflix_viewing")
        page = report["product-analytics"]
        assert page["errors"] == [] and page["failed_requests"] == [], (page["errors"], page["failed_requests"])
        revenue = yaml.safe_load((assets.ASSETS_DIR / "charts" / "revenue_trend.yaml").read_text())["slice_name"]
        assert revenue + assets.NO_REVENUE in page["text"]
        assert "this source's spec names no funnel steps" in page["text"]
        assert (ARTEFACTS / "product-analytics-revenue-netflix_viewing.png").stat().st_size > 50_000
    finally:  # the module's other tests read the demo source's dashboards: put them back as deployed
        assets.deploy(stack, SOURCE, memo=deployed_memo(base), warm=False)  # raises if the import fails
