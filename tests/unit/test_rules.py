"""Every cleaning rule on its own, their precedence, normalisation and dedup (local Spark, no services)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from pulse.domain import RAW_COLUMNS, RULES
from pulse.sources import spec as specs
from pulse.sources.compile import compile_spec
from pulse.staging.raw_reader import SCHEMA
from pulse.staging.rules import check_rows, classify

VALID = {
    "event_id": "e1",
    "event_time": "2026-10-01T12:00:00.000Z",
    "event_type": "purchase",
    "product_id": "1000001",
    "category_id": "2053013552006000018",
    "category_code": "kids.toys",
    "brand": "lego",
    "price": "10.00",
    "user_id": "42",
    "user_session": "s1",
    "currency": "EUR",
    "platform": "ios",
    "country": "DE",
    "app_version": "5.1.0",
    "channel": "organic",
}


def row(n: int = 0, malformed: str | None = None, file: str = "part-0.csv.gz", correction: bool = False, **overrides) -> tuple:
    values = {**VALID, "event_id": f"e{n}", **overrides}
    return (*[values[c] for c in RAW_COLUMNS], "2026-10-01", file, malformed, n, correction)


def classify_rows(spark, rows: list[tuple], spec: str = "demo") -> list:
    raw = spark.createDataFrame(rows, SCHEMA)
    return classify(raw, compile_spec(spark, specs.load(spec), raw, inputs=RAW_COLUMNS)).orderBy("_row").collect()


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"event_time": ""}, "missing_required_field"),
        ({"event_type": "  "}, "missing_required_field"),
        ({"user_id": None}, "missing_required_field"),
        ({"user_id": "user_42"}, "wrong_type"),
        ({"product_id": "N/A"}, "wrong_type"),
        ({"category_id": "99999999999999999999"}, "wrong_type"),  # overflows bigint
        ({"price": "12,99€"}, "wrong_type"),
        ({"event_time": "2026-13-45T99:00:00Z"}, "invalid_timestamp"),
        ({"event_time": "yesterday"}, "invalid_timestamp"),
        ({"event_time": "2026-10-03T00:00:00Z"}, "future_timestamp"),  # ingest day 10-01 + 1 day of slack ends 10-03
        ({"event_type": "clik"}, "unknown_event_type"),
        ({"currency": "XBT"}, "unknown_currency"),
        ({"price": "0"}, "invalid_price"),
        ({"price": "-5.00"}, "invalid_price"),
        ({"price": None}, "invalid_price"),  # a purchase needs a price
    ],
)
def test_each_rule_quarantines_with_its_name(spark, overrides, rule):
    [r] = classify_rows(spark, [row(**overrides)])
    assert r.rule == rule
    assert r.detail


def test_malformed_line_keeps_raw_text(spark):
    [r] = classify_rows(spark, [row(malformed="<html>502</html>", **dict.fromkeys(RAW_COLUMNS))])
    assert (r.rule, json.loads(r.raw_record)) == ("malformed_line", {"line": "<html>502</html>"})


def test_valid_row_passes_and_is_normalised(spark):
    [r] = classify_rows(spark, [row(event_type=" PURCHASE ", currency="eur", brand="LEGO", country="de")])
    assert r.rule is None
    assert (r.n_event_type, r.n_currency, r.n_brand, r.n_country) == ("purchase", "EUR", "lego", "DE")
    assert r.n_price_usd == Decimal("10.80")  # 10 EUR at 1.08


def test_synonym_event_type_is_normalised(spark):
    [r] = classify_rows(spark, [row(event_type="add_to_cart")])
    assert (r.rule, r.n_event_type) == (None, "cart")


def test_view_without_price_is_fine(spark):
    [r] = classify_rows(spark, [row(event_type="view", price="")])
    assert r.rule is None and r.n_price is None


@pytest.mark.parametrize(
    "text",
    [
        "2026-10-01T12:00:00.000Z",
        "2026-10-01T14:00:00.000+02:00",
        "2026-10-01T07:00:00-05:00",
        "2026-10-01 12:00:00 UTC",
        "1790856000000",
        "2026-10-01T12:00:00",
    ],
)
def test_timestamp_formats_parse_to_the_same_utc_instant(spark, text):
    [r] = classify_rows(spark, [row(event_time=text)])
    assert r.rule is None
    # PySpark hands collected timestamps back as naive datetimes in the host's time zone, whatever the session's:
    # astimezone() reads a naive datetime as local time, so this holds on any host, not only a UTC one
    assert r.n_event_ts.astimezone(UTC) == datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def test_precedence_first_rule_wins(spark):
    # breaks missing_required_field, unknown_event_type and invalid_price: reported once, under the first
    [r] = classify_rows(spark, [row(user_id="", event_type="clik", price="-1")])
    assert r.rule == "missing_required_field"
    assert RULES.index("missing_required_field") < RULES.index("unknown_event_type") < RULES.index("invalid_price")


def test_exact_duplicate_keeps_first_arrival(spark):
    rows = [row(0), row(1, event_id="e0"), row(2, event_id="e0")]
    got = [r.rule for r in classify_rows(spark, rows)]
    assert got == [None, "duplicate_event_id", "duplicate_event_id"]


def test_a_correction_wins_over_earlier_copies(spark):
    rows = [
        row(0, file="ingest_date=2026-10-01/part-0.csv.gz", price="10.00"),
        row(1, file="ingest_date=2026-10-05/part-0.csv.gz", correction=True, price="12.00", event_id="e0"),
        row(2, file="ingest_date=2026-10-09/part-0.csv.gz", correction=True, price="13.00", event_id="e0"),
        row(3, file="ingest_date=2026-10-12/part-0.csv.gz", price="99.00", event_id="e0"),  # a late plain copy
    ]
    got = {(r["_row"], r.rule) for r in classify_rows(spark, rows)}
    # the newest correction wins; the original, the older correction and the later plain copy are duplicates
    assert got == {(0, "duplicate_event_id"), (1, "duplicate_event_id"), (2, None), (3, "duplicate_event_id")}


def test_near_duplicate_has_new_id_same_event(spark):
    rows = [row(0), row(1, event_type="PURCHASE ", brand="LEGO"), row(2, event_time="2026-10-01T12:00:01.000Z")]
    got = [r.rule for r in classify_rows(spark, rows)]
    assert got == [None, "near_duplicate", None]  # one second later is another event


def test_rejected_row_does_not_shadow_the_valid_copy(spark):
    # the first arrival is broken; the later valid row with the same id must be kept
    rows = [row(0, price="-1"), row(1, event_id="e0")]
    assert [r.rule for r in classify_rows(spark, rows)] == ["invalid_price", None]


def test_missing_event_id_gets_a_deterministic_one(spark):
    a, b = classify_rows(spark, [row(0, event_id=None), row(1, event_id=None, product_id="7")])
    assert a.rule is None and b.rule is None
    assert len(a.n_event_id) == 32 and a.n_event_id != b.n_event_id


# --- a source spec's rules: filters, an open vocabulary, time zones ---------------------------------

OPEN = """spec_version: 1
input: {columns: [event_id, event_time, event_type, product_id, category_id, category_code, brand, price,
                  user_id, user_session, currency, platform, country, app_version, channel]}
filters:
  not_ios: "platform != 'ios'"
fields: {event_id: event_id, event_time: event_time, event_type: event_type, user_id: user_id,
         session_id: user_session, price: price, platform: platform, country: country}
time_zone: Europe/London
checks: {integer: [user_id]}
roles: {revenue: [purchase]}
"""


def classify_with(spark, rows: list[tuple], text: str) -> list:
    raw = spark.createDataFrame(rows, SCHEMA)
    compiled = compile_spec(spark, specs.parse(text), raw, inputs=RAW_COLUMNS)
    return check_rows(raw, compiled).orderBy("_row").collect()


def test_a_filter_leaves_rows_out_without_judging_them(spark):
    rows = [
        row(0, platform="ios", user_id="not-a-number"),
        row(1, platform="android"),
        row(2, platform="ios", event_time="2026-10-01T12:00:05Z"),
    ]
    got = [(r._filtered, r.rule) for r in classify_with(spark, rows, OPEN)]
    assert got == [("not_ios", None), (None, None), ("not_ios", None)]  # counted apart: neither kept nor quarantined
    assert [r.rule for r in classify_rows(spark, rows)] == ["wrong_type", None, None]  # the demo layout has no filter


@pytest.mark.parametrize(
    ("written", "name", "rule"),
    [
        ("Add To Cart", "add_to_cart", None),  # lower snake case; no synonym but the spec's own
        ("addToCart", "add_to_cart", None),
        ("Page View", "page_view", None),  # the demo layout's synonym (page_view -> view) is not this source's
        ("wishlist_v0", "wishlist_v0", None),  # no vocabulary: any name
        ("first-open", "first_open", None),
        ("x" * 101, "x" * 101, "unknown_event_type"),
        ("view\u0007", "view\u0007", "unknown_event_type"),  # a control character
    ],
)
def test_an_open_vocabulary_takes_any_name_that_is_text(spark, written, name, rule):
    [r] = classify_with(spark, [row(platform="android", event_type=written)], OPEN)
    assert (r.n_event_type, r.rule) == (name, rule)


def test_naive_times_are_read_in_the_specs_zone_and_offsets_as_given(spark):
    rows = [
        row(0, platform="web", event_time="2026-06-01 10:00:00"),  # London summer time: 09:00 UTC
        row(1, platform="web", event_time="2026-01-15 10:00:00"),  # winter: 10:00 UTC
        row(2, platform="web", event_time="2026-06-01T10:00:00+02:00"),  # an offset wins over the zone
    ]
    rows = [(*r[:-4], "2026-06-02", *r[-3:]) for r in rows]  # ingest day after the events
    raw = spark.createDataFrame(rows, SCHEMA)
    checked = check_rows(raw, compile_spec(spark, specs.parse(OPEN), raw, inputs=RAW_COLUMNS))
    # formatted by Spark (session zone UTC): PySpark would turn a collected timestamp into the host's zone
    utc = checked.orderBy("_row").select(F.date_format("n_event_ts", "yyyy-MM-dd HH:mm").alias("t")).collect()
    assert [r.t for r in utc] == ["2026-06-01 09:00", "2026-01-15 10:00", "2026-06-01 08:00"]


def test_zero_and_negative_prices_are_amounts_unless_the_spec_requires_positive(spark):
    rows = [row(0, platform="web", price="0"), row(1, platform="web", price="-12.50", event_type="refund")]
    assert [r.rule for r in classify_with(spark, rows, OPEN)] == [None, None]
    assert [r.rule for r in classify_rows(spark, rows)] == ["invalid_price", "unknown_event_type"]  # the demo layout's rules


def test_ids_are_text_and_an_integer_checked_id_is_its_decimal_text(spark):
    rows = [
        row(0, platform="web", user_id="007"),  # OPEN checks user_id is an integer: 007 is user 7
        row(1, platform="web", user_id="7", user_session="s-" + "x" * 300),  # a session id over 200 characters
    ]
    got = [(r.n_user_id, r.rule) for r in classify_with(spark, rows, OPEN)]
    assert got == [("7", None), ("7", "wrong_type")]
    text_ids = OPEN.replace("checks: {integer: [user_id]}", "checks: {}")
    [r] = classify_with(spark, [row(0, platform="web", user_id=" 13085.0 ")], text_ids)
    assert (r.n_user_id, r.rule) == ("13085.0", None)  # trimmed, otherwise as given
