"""Bring your own dataset: each preset's sample file (the generator's events in the public layout) loaded
the way a user would — `ingest-file --spec`, the cleaning job, dbt — and the marts checked against pandas
on the file itself: DAU, net revenue, the funnel by the preset's steps, D1/D7 retention per cohort day."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import openpyxl
import pandas as pd
import pytest

from pulse import pipeline
from pulse.common import pg
from pulse.common.clickhouse import client as ch_client
from pulse.datagen.layouts import SAMPLES_DIR
from pulse.domain import FX_TO_USD
from pulse.sources import spec as specs
from pulse.sources.spec import SpecError
from pulse.staging import job

pytestmark = pytest.mark.integration
CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)  # Spark's round() is half up


def ecommerce_events() -> pd.DataFrame:
    f = pd.read_csv(SAMPLES_DIR / "ecommerce_events.csv", dtype=str, keep_default_na=False)
    time = pd.to_datetime(f.event_time.str.removesuffix(" UTC"), utc=True)
    out = pd.DataFrame({"user": f.user_id, "session": f.user_session, "type": f.event_type, "item": f.product_id,
                        "price": f.price.map(Decimal), "time": time})  # fmt: skip
    return out.assign(amount=[p if t == "purchase" else None for p, t in zip(out.price, out.type, strict=True)])


def online_retail() -> pd.DataFrame:
    f = pd.read_csv(SAMPLES_DIR / "online_retail.csv", dtype=str, keep_default_na=False).drop_duplicates()
    f = f[f["Customer ID"].str.strip() != ""]  # guest lines: the preset's filter
    time = pd.to_datetime(f.InvoiceDate, format="%m/%d/%Y %H:%M").dt.tz_localize("Europe/London").dt.tz_convert("UTC")
    price = [cents(Decimal(q) * Decimal(p)) for q, p in zip(f.Quantity, f.Price, strict=True)]
    usd = [cents(p * FX_TO_USD["GBP"]) for p in price]
    kind = ["refund" if i.startswith("C") else "purchase" for i in f.Invoice]
    return pd.DataFrame({
        "user": f["Customer ID"].str.removesuffix(".0"), "session": f.Invoice, "type": kind, "item": f.StockCode,
        "price": price, "time": time, "amount": [-abs(u) if k == "refund" else u for u, k in zip(usd, kind, strict=True)],
    })  # fmt: skip


def netflix_viewing() -> pd.DataFrame:
    f = pd.read_csv(SAMPLES_DIR / "netflix_viewing.csv", dtype=str, keep_default_na=False)
    time = pd.to_datetime(f["Start Time"], utc=True)
    return pd.DataFrame({"user": f["Profile Name"], "session": None, "type": "view", "item": f.Title, "price": None,
                         "time": time, "amount": None})  # fmt: skip


def ga4_export() -> pd.DataFrame:
    lines = [json.loads(line) for line in (SAMPLES_DIR / "ga4_export.jsonl").read_text().splitlines()]
    session = [next(p["value"]["int_value"] for p in e["event_params"] if p["key"] == "ga_session_id") for e in lines]
    return pd.DataFrame({
        "user": [e["user_pseudo_id"] for e in lines],
        "session": [f"{e['user_pseudo_id']}-{s}" for e, s in zip(lines, session, strict=True)],
        "type": [e["event_name"] for e in lines],
        "item": [e["items"][0]["item_id"] for e in lines],
        "price": [cents(Decimal(str(e["ecommerce"]["purchase_revenue_in_usd"]))) if e["ecommerce"] else None for e in lines],
        "time": pd.to_datetime([int(e["event_timestamp"]) for e in lines], unit="us", utc=True),
    }).pipe(lambda f: f.assign(amount=f.price))  # fmt: skip


ORACLES = {"ecommerce_events": ecommerce_events, "online_retail": online_retail, "netflix_viewing": netflix_viewing,
           "ga4_export": ga4_export}  # fmt: skip
SAMPLE = pipeline.preset_samples()


def the_file(preset: str) -> pd.DataFrame:
    """The sample's events as pandas reads the file: one row per event, the first of repeats kept
    (the same user, session, type, item, price and time)."""
    events = ORACLES[preset]()
    events = events.assign(day=events.time.dt.date).astype({"price": str, "session": str})
    return events.drop_duplicates(["user", "session", "type", "item", "price", "time"])


@pytest.fixture(scope="module", params=sorted(ORACLES))
def loaded(request, warehouse, preset_source):
    preset = request.param
    source, ingested, summary = preset_source(preset)
    assert ingested["spec_changed"] is True  # the source's first ingest stored its spec
    ch = ch_client(warehouse.clickhouse, database=warehouse.clickhouse.marts_database(source))
    return preset, warehouse, summary, ch


def test_the_load_applied_the_preset_and_recorded_it(loaded):
    preset, settings, summary, _ = loaded
    spec = specs.load(preset)
    assert summary["spec"] == f"{preset} {spec.version}"
    assert summary["rows_out"] == len(the_file(preset))
    with pg.connect(settings.postgres) as conn:
        [(name, version, filtered)] = conn.execute(
            "select spec_name, spec_version, rows_filtered from staging.load_runs where run_id = %s", (summary["run_id"],)
        ).fetchall()
        [(text,)] = conn.execute("select spec from staging.source_specs where spec_version = %s", (version,)).fetchall()
    assert (name, version, text) == (preset, spec.version, spec.text)
    assert filtered == sum(summary["filtered"].values())


def test_dau_and_net_revenue_equal_pandas_on_the_file(loaded):
    preset, _, _, ch = loaded
    events = the_file(preset)
    got = ch.query_df("SELECT metric_date, dau FROM user_daily_metrics ORDER BY metric_date")
    assert {pd.Timestamp(d).date(): n for d, n in zip(got.metric_date, got.dau, strict=True)} == (
        events.groupby("day").user.nunique().to_dict()
    )
    money = events[events.amount.notna()]
    revenue = money.groupby("day").amount.apply(lambda a: sum(a, Decimal(0))).to_dict()
    got = ch.query_df("SELECT revenue_date, revenue_usd FROM revenue_daily ORDER BY revenue_date")
    got = {pd.Timestamp(d).date(): Decimal(str(r)) for d, r in zip(got.revenue_date, got.revenue_usd, strict=True)}
    assert {d: r for d, r in got.items() if r or d in revenue} == revenue  # days without money: zero, not missing
    assert set(got) == set(events.day)


def test_the_funnel_follows_the_presets_steps(loaded):
    preset, _, _, ch = loaded
    roles = specs.load(preset).roles
    steps = roles.funnel
    got = ch.query_df("SELECT funnel_date, step_names, step_users, viewers, carters, purchasers FROM funnel_daily")
    labels = ch.query("SELECT DISTINCT step_order, step FROM funnel_steps ORDER BY step_order").result_rows
    if not steps:  # invoices, viewing logs: no funnel, empty funnel marts
        assert got.empty and not labels
        return
    assert labels == list(enumerate(roles.step_labels(), 1))
    assert all(list(r.step_names) == list(roles.step_labels()) for r in got.itertuples())
    assert all(
        [r.viewers, r.carters, r.purchasers] == [r.step_users[0], r.step_users[1], r.step_users[-1]] for r in got.itertuples()
    )
    expected: dict = {}
    for (day, _), g in the_file(preset).groupby(["day", "user"]):
        reached, since = 0, None
        for step in steps:  # each step at or after the earliest time the previous one was reached
            times = g[(g.type == step) & ((g.time >= since) if since is not None else True)].time
            if times.empty:
                break
            reached, since = reached + 1, times.min()
        counts = expected.setdefault(day, [0] * len(steps))
        for i in range(reached):
            counts[i] += 1
    assert {pd.Timestamp(r.funnel_date).date(): list(r.step_users) for r in got.itertuples()} == expected


def test_d1_and_d7_retention_per_cohort_day_equal_pandas(loaded):
    preset, _, summary, ch = loaded
    active = the_file(preset)[["day", "user"]].drop_duplicates()
    cohort = active.groupby("user").day.min()
    active = active.assign(n=[(d - cohort[u]).days for d, u in zip(active.day, active.user, strict=True)])
    last = pd.Timestamp(summary["complete_through"]).date()
    got = ch.query_df("SELECT cohort_date, cohort_size, d1_users, d7_users, d1_retention, d7_retention FROM user_retention")
    got = got.set_index(got.cohort_date.map(lambda d: pd.Timestamp(d).date()))
    assert got.cohort_size.to_dict() == cohort.value_counts().to_dict()
    for day, row in got.iterrows():
        for n in (1, 7):
            users = active[(active.n == n) & active.user.map(cohort.eq(day))].user.nunique()
            assert row[f"d{n}_users"] == users, (day, n)
            if day + timedelta(days=n) <= last:
                assert row[f"d{n}_retention"] == pytest.approx(users / row.cohort_size, rel=1e-12)


def test_rows_a_filter_leaves_out_are_counted_not_quarantined(loaded):
    preset, _, summary, _ = loaded
    f = pd.read_csv(SAMPLE[preset], dtype=str, keep_default_na=False) if preset != "ga4_export" else ga4_export()
    guests = int((f["Customer ID"].str.strip() == "").sum()) if preset == "online_retail" else 0
    assert summary["filtered"] == ({"guest_lines": guests} if guests else {})  # the retail export's guest purchases
    assert "missing_required_field" not in summary["quarantined"]
    assert summary["rows_in"] == len(f) == summary["rows_out"] + guests + sum(summary["quarantined"].values())


def test_a_spec_naming_a_missing_column_fails_before_anything_is_written(warehouse, tmp_path):
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(specs.load("ecommerce_events").text.replace("user_id: user_id", "user_id: customer"))
    sample = SAMPLES_DIR / "ecommerce_events.csv"
    with pytest.raises(SpecError, match=r"fields.user_id: 'customer': .*the input's columns are: event_time, event_type"):
        pipeline.ingest_file(warehouse, sample, "preset_wrong", None, {}, spec=str(wrong))
    assert pipeline.raw_partition(warehouse, "preset_wrong", pd.Timestamp("2026-10-31").date()) is None
    assert not pipeline.dataset_dir(warehouse, "preset_wrong").exists()


def staged_events(settings, source: str) -> list[tuple]:
    with pg.connect(settings.postgres) as conn:
        return sorted(conn.execute(
            "select user_id, session_id, event_type, product_id, price, event_time, properties::text from staging.events "
            "where source = %s", (source,),
        ).fetchall())  # fmt: skip


def retail_workbook(path) -> None:
    """The retail sample as the original is shipped: an XLSX workbook, one sheet per year, dates and numbers typed."""
    f = pd.read_csv(SAMPLES_DIR / "online_retail.csv", dtype=str, keep_default_na=False)
    book = openpyxl.Workbook()
    book.remove(book.active)
    header = list(f.columns)
    sheets = {name: book.create_sheet(name) for name in ("Year 2009-2010", "Year 2010-2011")}
    for sheet in sheets.values():
        sheet.append(header)
    for i, row in enumerate(f.itertuples(index=False)):
        cells = dict(zip(header, row, strict=True))
        cells["Quantity"], cells["Price"] = int(cells["Quantity"]), float(cells["Price"])
        cells["InvoiceDate"] = datetime.strptime(cells["InvoiceDate"], "%m/%d/%Y %H:%M")
        cells["Customer ID"] = float(cells["Customer ID"]) if cells["Customer ID"] else None
        (sheets["Year 2009-2010"] if i % 2 else sheets["Year 2010-2011"]).append([cells[h] for h in header])
    book.save(path)


def test_the_retail_workbook_stages_the_same_events_as_its_csv(warehouse, spark, preset_source, tmp_path):
    settings = warehouse
    book = tmp_path / "online_retail_II.xlsx"
    retail_workbook(book)
    spec = tmp_path / "retail_xlsx.yaml"
    spec.write_text(specs.load("online_retail").text.replace("format: csv", "format: xlsx"))
    pipeline.ingest_file(settings, book, "fmt_retail_xlsx", None, {}, spec=str(spec))
    xlsx = job.run(settings, "fmt_retail_xlsx", spark=spark)
    source, _, csv = preset_source("online_retail")  # the CSV, loaded with the preset
    assert (xlsx["rows_out"], xlsx["filtered"]) == (csv["rows_out"], csv["filtered"])
    assert staged_events(settings, "fmt_retail_xlsx") == staged_events(settings, source)


def test_a_parquet_export_stages_the_same_events_as_its_csv(warehouse, spark, preset_source, tmp_path):
    settings = warehouse
    f = pd.read_csv(SAMPLE["ecommerce_events"], dtype=str, keep_default_na=False)
    typed = f.assign(event_time=pd.to_datetime(f.event_time.str.removesuffix(" UTC"), utc=True), price=f.price.astype(float),
                     user_id=f.user_id.astype("int64"), product_id=f.product_id.astype("int64"))  # fmt: skip
    typed.to_parquet(tmp_path / "events.parquet")  # nanosecond timestamps, as pandas writes them
    spec = tmp_path / "events_parquet.yaml"
    spec.write_text(specs.load("ecommerce_events").text.replace("format: csv", "format: parquet"))
    pipeline.ingest_file(settings, tmp_path / "events.parquet", "fmt_ecom_parquet", None, {}, spec=str(spec))
    got = job.run(settings, "fmt_ecom_parquet", spark=spark)
    source, _, want = preset_source("ecommerce_events")  # the CSV, loaded with the preset
    assert got["rows_out"] == want["rows_out"] == len(the_file("ecommerce_events"))
    assert staged_events(settings, "fmt_ecom_parquet") == staged_events(settings, source)
