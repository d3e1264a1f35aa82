"""Timestamp parsing (``parse_event_time``, the cleaning job's and the stream's) against Python's datetime
on generated instants: every form the docs promise, any offset (half-hour and 45-minute ones too), 0-9
fractional digits, epoch seconds/milliseconds/microseconds/nanoseconds, zone names across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from pulse.domain import EPOCH_DIGITS
from pulse.staging.rules import parse_event_time

# zones with DST (Lord Howe moves by 30 min), half-hour and 45-minute offsets
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "Asia/Kolkata",
         "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham", "UTC"]  # fmt: skip
WALL = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2199, 12, 31))
FMT = "%Y-%m-%dT%H:%M:%S.%f"
SPARK_FMT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"  # the same, in Spark's pattern letters


@st.composite
def with_offset(draw) -> tuple[str, datetime]:
    """Wall time + fraction of 0-9 digits + an offset of any minutes within ±14:00 (or Z, ' UTC', none)."""
    wall = draw(WALL).replace(microsecond=0)
    digits = draw(st.text("0123456789", max_size=9))
    zone = draw(st.sampled_from(["offset", "offset_nocolon", "Z", " UTC", ""]))
    minutes = draw(st.integers(-14 * 60, 14 * 60)) if zone.startswith("offset") else 0
    sign, m = ("+" if minutes >= 0 else "-"), abs(minutes)
    suffix = {"offset": f"{sign}{m // 60:02d}:{m % 60:02d}", "offset_nocolon": f"{sign}{m // 60:02d}{m % 60:02d}"}.get(zone, zone)
    sep = draw(st.sampled_from(["T", " "]))
    text = wall.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{digits}" if digits else "") + suffix
    micros = int((digits + "000000")[:6])  # Spark keeps microseconds: further digits are cut, not rounded
    return text, wall - timedelta(minutes=minutes) + timedelta(microseconds=micros)


@st.composite
def in_zone(draw) -> tuple[str, datetime]:
    """A zone's wall time by name: a time the clocks skip or repeat is read as Python's fold=0 reads it
    (the offset before the change), which is also what java.time does."""
    wall = draw(WALL)
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    text = wall.strftime(FMT) + draw(st.sampled_from(["", " "])) + zone.key
    return text, wall.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


@st.composite
def epoch(draw) -> tuple[str, datetime]:
    per_second, (lo, hi) = draw(st.sampled_from(sorted(EPOCH_DIGITS.items())))
    n = draw(st.integers(10 ** (lo - 1), min(10**hi - 1, 2**63 - 1)))  # nanoseconds: as far as a bigint goes
    return str(n), datetime(1970, 1, 1) + timedelta(microseconds=n * 1_000_000 // per_second)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(with_offset(), in_zone(), epoch()), min_size=1, max_size=25))
def test_parse_event_time_agrees_with_python(spark, cases):
    frame = spark.createDataFrame([(text,) for text, _ in cases], "t string")
    # formatted in the session's zone (UTC), so the host's zone plays no part
    got = [r.u for r in frame.select(F.date_format(parse_event_time(F.col("t")), SPARK_FMT).alias("u")).collect()]
    want = [w.strftime(FMT) for _, w in cases]
    assert list(zip((t for t, _ in cases), got, strict=True)) == list(zip((t for t, _ in cases), want, strict=True))
