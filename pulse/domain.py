"""The event vocabulary every stage shares: raw layout, event types, currencies, quarantine rules."""

from __future__ import annotations

import re
from decimal import Decimal

SCHEMA_VERSION = 1

# A source names S3 prefixes, Postgres partitions and ClickHouse databases: validated wherever it enters
SOURCE_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def source_name(value: str) -> str:
    """``value`` if it is a valid source name, else ValueError (argparse shows it as a usage error)."""
    if not SOURCE_NAME_RE.fullmatch(value) or "__" in value:  # "__" separates suffixes such as __build
        raise ValueError(f"source name {value!r}: use 1-40 of a-z, 0-9 and single underscores, starting with a letter")
    if value in RESERVED_SOURCE_NAMES:
        raise ValueError(f"source name {value!r} is reserved (the streaming stage's database); choose another")
    return value


RESERVED_SOURCE_NAMES = ("realtime",)

# RAW CSV layout (schema_version 1): the public e-commerce event-log columns plus app context.
PUBLIC_COLUMNS = [
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
]
RAW_COLUMNS = ["event_id", *PUBLIC_COLUMNS, "currency", "platform", "country", "app_version", "channel"]

# epoch timestamps by their digits (a number of another length is no timestamp): seconds, milliseconds,
# microseconds (or nanoseconds) since 1970 — 9-10, 12-13, 15-16, 18-19 digits cover 1973-2262 in each unit
EPOCH_DIGITS = {1: (9, 10), 1_000: (12, 13), 1_000_000: (15, 16), 1_000_000_000: (18, 19)}  # s, ms, µs, ns

EVENT_TYPES = ("view", "click", "cart", "remove_from_cart", "purchase")  # the demo layout's closed vocabulary

# Fixed reference rates (USD per unit); a real deployment would load a daily rates table.
FX_TO_USD: dict[str, Decimal] = {
    "USD": Decimal("1.000000"),
    "EUR": Decimal("1.080000"),
    "GBP": Decimal("1.270000"),
    "INR": Decimal("0.012000"),
    "BRL": Decimal("0.200000"),
    "CAD": Decimal("0.740000"),
}
COUNTRY_CURRENCY = {"US": "USD", "DE": "EUR", "FR": "EUR", "GB": "GBP", "IN": "INR", "BR": "BRL", "CA": "CAD"}

# Quarantine rules in precedence order: a row is reported under the first rule it breaks.
RULES = (
    "malformed_line",  # CSV line with the wrong number of fields
    "missing_required_field",  # event_time, event_type or user_id empty
    "wrong_type",  # ids the spec checks not integers, price not a number
    "invalid_timestamp",  # event_time in no accepted format
    "future_timestamp",  # event_time after the end of the ingest day + 1 day
    "unknown_event_type",  # not in the spec's vocabulary (normalised); without one: over 100 characters or a control character
    "unknown_currency",  # currency code without a rate
    "invalid_price",  # a revenue event without a price; price <= 0 where the spec requires positive prices
    "duplicate_event_id",  # the same event_id seen earlier
    "near_duplicate",  # same user/session/type/product/price/time as an earlier event
)
# The stream judges messages by the same rules (a malformed JSON message is a ``malformed_line``)
# plus one of its own: an event that reaches Kafka more than the configured lateness after it happened.
STREAM_RULES = (*RULES[:-1], "too_late")  # no near_duplicate: a stream has no arrival order across batches
