"""Source specs: validation that names the line and field, the expression allow-list on Spark's parse,
and the compiler's mapping of the presets' layouts (local Spark, no services)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import functions as F

from pulse.datagen import layouts
from pulse.sources import expressions, infer, spec
from pulse.sources.compile import compile_spec, mapped
from pulse.sources.spec import SpecError

MINIMAL = "spec_version: 1\nfields:\n  event_time: ts\n  event_type: name\n  user_id: uid\n"


def test_every_preset_loads_and_has_its_own_version():
    loaded = {name: spec.load(name) for name in spec.presets()}
    assert set(loaded) == {"demo", "ecommerce_events", "online_retail", "ga4_export", "netflix_viewing", "open_events"}
    assert len({s.version for s in loaded.values()}) == len(loaded)
    assert loaded["online_retail"].roles.refund == ("refund",) and loaded["online_retail"].roles.funnel == ()
    assert loaded["netflix_viewing"].roles.revenue == ()
    assert loaded["ga4_export"].roles.funnel == ("view_item", "add_to_cart", "begin_checkout", "purchase")
    assert loaded["demo"].integer_fields == ("user_id", "product_id", "category_id") and loaded["demo"].positive_price


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "colour: red\n", "line 6: spec: unknown key 'colour'"),
        ("spec_version: 1\nfields:\n  event_time: ts\n  user_id: uid\n", "line 3: fields: missing event_type"),
        ("spec_version: 2\n" + MINIMAL.split("\n", 1)[1], "line 1: spec_version: expected 1, got 2"),
        (MINIMAL + "time_zone: Mars/Olympus\n", "line 6: time_zone: unknown zone 'Mars/Olympus'"),
        (MINIMAL + "input: {format: xml}\n", "line 6: input.format: expected one of csv, jsonl, parquet, xlsx"),
        (MINIMAL + "input: {header: false}\n", "input.columns: a file without a header line needs its column names"),
        (MINIMAL + "input: {encoding: klingon}\n", "input.encoding: unknown encoding 'klingon'"),
        (MINIMAL + "roles:\n  funnel: [a, b, c, d, e, f, g]\n", "line 7: roles.funnel: expected 2-6 steps or none, got 7"),
        (MINIMAL + "roles:\n  revenue: [purchase]\n  refund: [purchase]\n", "an event type is revenue or refund, not both"),
        (
            MINIMAL + "event_types:\n  vocabulary: [view, buy]\nroles:\n  funnel: [view, buy, ship]\n  revenue: [buy]\n",
            "roles: ship not in event_types.vocabulary",
        ),
        (MINIMAL + "checks:\n  integer: [user_id, colour]\n", "checks.integer: colour not a field"),
        (
            MINIMAL + "roles:\n  funnel: [view, buy]\n  funnel_labels: [viewed]\n",
            "line 8: roles.funnel_labels: expected one label per funnel step (2), got 1",
        ),
        (MINIMAL.replace("uid", "''"), "line 5: fields.user_id: expected text"),
        ("- a list\n", "a spec is a mapping"),
    ],
)
def test_a_wrong_spec_names_the_line_and_the_field(text, message):
    with pytest.raises(SpecError) as err:
        spec.parse(text, where="my.yaml")
    assert message in str(err.value) and str(err.value).startswith("my.yaml")


def test_an_unknown_spec_name_lists_the_presets():
    with pytest.raises(SpecError, match=r"not a preset .*online_retail"):
        spec.load("no_such_preset")


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("reflect('java.lang.System', 'getenv', 'HOME')", "'reflect' is not allowed"),
        ("java_method('java.lang.Runtime', 'getRuntime')", "'java_method' is not allowed"),
        ("my_udf(x)", "'my_udf' is not allowed"),
        ("system.builtin.upper(x)", "'system.builtin.upper' is not allowed"),
        ("current_timestamp()", "'current_timestamp' is not allowed"),
        ("rand()", "'rand' is not allowed"),
        ("input_file_name()", "'input_file_name' is not allowed"),
        ("(select max(x) from t)", "a subquery is not allowed"),
        ("x in (select y from t)", "a subquery is not allowed"),
        ("exists(select 1)", "a subquery is not allowed"),
        ("case when x then", "does not parse"),
    ],
)
def test_an_expression_may_use_only_deterministic_built_in_functions(spark, text, refused):
    with pytest.raises(expressions.ExpressionError, match=refused):
        expressions.parse(spark, text)


def test_the_presets_expressions_are_allowed_and_say_what_they_read(spark):
    parsed = expressions.parse(spark, spec.load("ga4_export").fields["session_id"])
    assert parsed.functions == {"concat_ws", "cast", "filter"} or parsed.functions == {"concat_ws", "filter"}
    assert parsed.columns == {"user_pseudo_id", "event_params"}
    for name in spec.presets():
        for text in [*spec.load(name).fields.values(), *spec.load(name).filters.values()]:
            expressions.parse(spark, text)


RETAIL_ROWS = [
    # Invoice, StockCode, Description, Quantity, InvoiceDate, Price, Customer ID, Country
    ("489434", "85048", "15CM CHRISTMAS GLASS BALL 20 LIGHTS", "12", "12/1/2009 7:45", "6.95", "13085.0", "United Kingdom"),
    ("C489449", "22087", "PAPER BUNTING WHITE LACE", "-12", "6/1/2010 10:00", "2.95", "16321.0", "Australia"),
    ("489435", "22350", "CAT BOWL", "12", "2009-12-01 07:46:00", "2.55", "", "United Kingdom"),
    ("489436", "85123A", "WHITE HANGING HEART", "6", "12/1/2009 9:06", "2.55", "12340", "United Kingdom"),
]
RETAIL_COLUMNS = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]


def test_the_retail_preset_maps_invoice_lines_refunds_and_guest_lines(spark):
    s = spec.load("online_retail")
    frame = spark.createDataFrame(RETAIL_ROWS, RETAIL_COLUMNS)
    utc = F.date_format("f_event_time", "yyyy-MM-dd HH:mm").alias("utc")  # formatted by Spark: no host zone
    rows = mapped(compile_spec(spark, s, frame), frame).select("*", utc).orderBy("InvoiceDate").collect()
    sale, refund, guest = (next(r for r in rows if r.Invoice == i) for i in ("489434", "C489449", "489435"))
    assert (sale.f_event_type, sale.f_user_id, sale.f_product_id) == ("purchase", "13085", "85048")
    assert Decimal(sale.f_price) == Decimal("83.40")  # 12 x 6.95
    assert (refund.f_event_type, Decimal(refund.f_price), refund.f_currency) == ("refund", Decimal("-35.40"), "GBP")
    london = datetime(2010, 6, 1, 10, 0, tzinfo=ZoneInfo("Europe/London"))  # summer time: 09:00 UTC
    assert refund.utc == london.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M")
    assert (sale._filtered, refund._filtered, guest._filtered) == (None, None, "guest_lines")
    assert json.loads(sale._properties) == {"Description": "15CM CHRISTMAS GLASS BALL 20 LIGHTS"}
    [heart] = [r for r in rows if r.Invoice == "489436"]
    assert (heart.f_user_id, heart.f_product_id) == ("12340", "85123A")  # only a trailing ".0" goes


def test_the_ga4_preset_reads_nested_records(spark):
    event = {
        "event_timestamp": "1730419200123456",
        "event_name": "purchase",
        "user_pseudo_id": "1234.5678",
        "event_params": [
            {"key": "ga_session_id", "value": {"int_value": 1730419100}},
            {"key": "page", "value": {"string_value": "/"}},
        ],
        "device": {"category": "mobile", "operating_system": "Android"},
        "geo": {"country": "India"},
        "traffic_source": {"medium": "organic"},
        "app_info": {"version": "2.1"},
        "ecommerce": {"purchase_revenue_in_usd": 19.99},
        "items": [{"item_id": "SKU_1"}],
        "stream_id": "42",
    }
    frame = spark.read.json(spark.sparkContext.parallelize([json.dumps(event)]))
    [row] = mapped(compile_spec(spark, spec.load("ga4_export"), frame), frame).collect()
    assert (row.f_event_type, row.f_user_id, row.f_session_id) == ("purchase", "1234.5678", "1234.5678-1730419100")
    assert (row.f_platform, row.f_country, row.f_channel, row.f_price, row.f_product_id) == (
        "android", "India", "organic", "19.99", "SKU_1",
    )  # fmt: skip
    assert row.f_event_time == "1730419200123456"  # µs: the rules read an epoch by its digits
    assert json.loads(row._properties) == {"stream_id": "42"}


def test_a_wrong_column_fails_before_anything_is_read_naming_field_expression_and_columns(spark):
    frame = spark.createDataFrame(RETAIL_ROWS, RETAIL_COLUMNS)
    wrong = spec.parse(MINIMAL.replace("uid", '"`Customer No`"').replace("ts", "InvoiceDate").replace("name", "\"'purchase'\""))
    with pytest.raises(SpecError) as err:
        compile_spec(spark, wrong, frame)
    text = str(err.value)
    assert "fields.user_id: '`Customer No`'" in text and "`Customer ID`" in text and "InvoiceDate" in text
    refused = spec.parse(MINIMAL.replace("uid", "reflect('java.lang.System', 'getenv', 'HOME')"))
    with pytest.raises(SpecError, match=r"fields.user_id: .*'reflect' is not allowed"):
        compile_spec(spark, refused, frame)
    # YAML takes the quotes of 'view': a bare word is a column, and the error says how to write a constant
    constant = spec.parse(MINIMAL.replace("uid", "StockCode").replace("ts", "InvoiceDate").replace("name", "'view'"))
    with pytest.raises(SpecError, match=r"""fields.event_type: 'view': .*write "'view'" for the text view"""):
        compile_spec(spark, constant, frame)


def test_the_demo_preset_is_pulses_raw_layout():
    from pulse.domain import EVENT_TYPES, RAW_COLUMNS

    demo = spec.load("demo")
    assert demo.input.columns == tuple(RAW_COLUMNS) and demo.vocabulary == EVENT_TYPES


HEADERS = {
    "ecommerce_events": "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session",
    "online_retail": "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country",
    "netflix_viewing": "Profile Name,Start Time,Duration,Attributes,Title,Supplemental Video Type,Device Type,Bookmark,"
    "Latest Bookmark,Country",
}


@pytest.mark.parametrize("preset", sorted(HEADERS))
def test_infer_recognises_a_public_layout_by_its_columns(tmp_path, preset):
    path = tmp_path / "export.csv"
    path.write_text(HEADERS[preset] + "\n")
    proposal = infer.infer(path)
    assert proposal.preset == preset and proposal.spec == spec.load(preset).text


def test_infer_recognises_a_ga4_export_by_its_keys(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"event_timestamp": "1", "event_name": "x", "user_pseudo_id": "u", "geo": {}}) + "\n")
    assert infer.infer(path).preset == "ga4_export"


def test_infer_proposes_a_spec_that_loads_for_an_unknown_layout(tmp_path):
    path = tmp_path / "own.csv"
    path.write_text("when;customer_id;action;amount\n2024-01-01T10:00:00Z;u1;signup;\n2024-01-01T10:05:00Z;u1;buy;9.99\n")
    proposal = infer.infer(path)
    proposed = spec.parse(proposal.spec)  # valid as it is; the user reviews it
    assert proposal.preset is None
    assert proposed.fields == {"event_time": "when", "event_type": "action", "user_id": "customer_id", "price": "amount"}


def test_the_shipped_samples_are_what_the_generator_writes():
    for name, (render, suffix) in layouts.LAYOUTS.items():
        assert (layouts.SAMPLES_DIR / f"{name}.{suffix}").read_text() == render(), name
