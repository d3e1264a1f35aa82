"""The RAW reader's CSV parsing (``records`` + ``parse_records``, what the cleaning job runs on every file)
against Python's ``csv`` module on generated files: quotes, commas and line breaks inside quoted fields,
a byte-order mark, CRLF line ends, blank lines between records, records with the wrong field count."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from pulse.staging.raw_reader import parse_records, records

HEADER = ("event_id", "event_type", "user_id")
FIELD = st.text(alphabet=st.sampled_from(list('ab ,"\\\n;é\t')), max_size=8)  # no CR inside a field: it becomes LF
ROW = st.lists(FIELD, min_size=2, max_size=4)  # 3 = the header's count; 2 and 4 are malformed


@st.composite
def csv_file(draw) -> tuple[bytes, list[list[str]]]:
    rows = draw(st.lists(ROW, max_size=12))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=end)
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow(row)
        if draw(st.booleans()) and draw(st.booleans()):
            out.write(end)  # a blank line between records
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + out.getvalue()).encode(), rows


def spark_rows(spark, path: Path) -> list[tuple]:
    lines = spark.read.text(str(path)).select(
        "value", F.col("_metadata.file_path").alias("_path"), (F.monotonically_increasing_id() + 1).alias("_row")
    )
    parsed = parse_records(records(lines.filter(F.col("_row") > 1)), HEADER).orderBy("_row")
    return [
        (r._malformed is not None, *(() if r._malformed is not None else tuple(r[c] for c in HEADER))) for r in parsed.collect()
    ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(csv_file())
def test_records_and_fields_agree_with_pythons_csv(spark, tmp_path, case):
    body, _ = case
    path = tmp_path / "part-00000.csv"
    path.write_bytes(body)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        header, *rows = [r for r in csv.reader(fh) if r]  # Python skips nothing but blank lines: []
    assert tuple(header) == HEADER
    want = [(True,) if len(r) != len(HEADER) else (False, *r) for r in rows]
    assert spark_rows(spark, path) == want
