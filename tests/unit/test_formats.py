"""Sources in JSON lines, Parquet and XLSX: ingest keeps (or, for a workbook, converts once) what came,
dates the partition by the spec's time column, and the reader numbers every record as RAW holds it."""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from pulse.lake import workbook
from pulse.lake.ingest_file import IngestError, ingest_file
from pulse.lake.raw import build_manifest
from pulse.sources import spec as specs
from pulse.sources.compile import compile_spec
from pulse.staging import raw_reader
from pulse.staging.rules import check_rows

RETAIL_HEADER = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]


def with_format(name: str, fmt: str, **changes) -> specs.Spec:
    spec = specs.load(name)
    return dataclasses.replace(spec, input=dataclasses.replace(spec.input, format=fmt, **changes))


def ga4_line(n: int, name: str = "view_item") -> dict:
    return {"event_timestamp": str(1_790_000_000_000_000 + n * 86_400_000_000), "event_name": name, "user_pseudo_id": f"u{n}",
            "event_params": [{"key": "ga_session_id", "value": {"int_value": str(n)}}],
            "device": {"category": "mobile", "operating_system": "Android"},
            "geo": {"country": "India"}, "items": [{"item_id": f"SKU_{n}"}], "traffic_source": {"medium": "cpc"},
            "app_info": {"version": "1.0"},
            "ecommerce": {"purchase_revenue_in_usd": 9.5} if name == "purchase" else None}  # fmt: skip


def workbook_file(path: Path, sheets: dict[str, list[list]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_json_lines_go_in_as_they_came_dated_by_the_specs_time_field(tmp_path):
    lines = [json.dumps(ga4_line(n)) for n in range(3)] + ["not json"]
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(lines) + "\n")
    done = ingest_file(src, tmp_path / "raw", spec=specs.load("ga4_export"))
    [part] = Path(done["dir"]).iterdir()
    assert part.name == "part-00000.jsonl.gz" and gzip.decompress(part.read_bytes()) == src.read_bytes()
    assert (done["rows"], done["ingest_date"]) == (4, "2026-09-23")  # the latest event's day (µs since 1970)
    manifest = build_manifest("s", done["ingest_date"], [part])
    assert (manifest["format"], manifest["rows"], manifest["files"][0]["multiline"]) == ("jsonl.gz", 4, False)


def test_json_lines_are_read_with_nested_fields_and_a_bad_line_is_malformed(spark, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(ga4_line(1)) + "\n\n[1, 2]\n" + json.dumps(ga4_line(2, "purchase") | {"extra": 5}) + "\n{oops\n")
    raw = raw_reader.read_local(spark, [path], fmt="jsonl")
    rows = {r._row: r for r in raw.collect()}
    assert sorted(rows) == [1, 3, 4, 5]  # physical line numbers; the blank line carries nothing
    assert rows[1].device.category == "mobile" and rows[4].extra == 5 and rows[1].extra is None
    assert (rows[3]._malformed, rows[5]._malformed, rows[1]._malformed) == ("[1, 2]", "{oops", None)
    checked = check_rows(raw, compile_spec(spark, specs.load("ga4_export"), raw))
    got = {r._row: (r.rule, r.n_user_id, r.n_product_id) for r in checked.collect()}
    assert got == {1: (None, "u1", "SKU_1"), 3: ("malformed_line", None, None), 4: (None, "u2", "SKU_2"),
                   5: ("malformed_line", None, None)}  # fmt: skip
    detail = {r.detail for r in checked.filter("rule is not null").collect()}
    assert detail == {"not a JSON object"}


def test_a_parquet_file_is_copied_and_read_typed_with_row_numbers(spark, tmp_path):
    frame = pd.DataFrame({"event_time": pd.to_datetime(["2026-10-01 10:00", "2026-10-02 11:00"], utc=True),
                          "event_type": ["view", "purchase"], "user_id": [7, 8], "price": [1.5, 20.25],
                          "product_id": ["A1", "B2"], "user_session": ["s1", "s2"]})  # fmt: skip
    src = tmp_path / "events.parquet"
    frame.to_parquet(src)
    spec = with_format("ecommerce_events", "parquet")
    done = ingest_file(src, tmp_path / "raw", spec=spec)
    [part] = Path(done["dir"]).iterdir()
    assert part.read_bytes() == src.read_bytes() and (done["rows"], done["ingest_date"]) == (2, "2026-10-02")
    assert build_manifest("s", done["ingest_date"], [part])["format"] == "parquet"
    raw = raw_reader.read_local(spark, [part], spec.input.columns, fmt="parquet")  # category and brand: absent, as NULL
    checked = check_rows(raw, compile_spec(spark, spec, raw, spec.input.columns)).orderBy("_row").collect()
    assert [(r._row, r.rule, r.n_user_id, r.n_price, r.n_event_type) for r in checked] == [
        (1, None, "7", pytest.approx(1.5), "view"), (2, None, "8", pytest.approx(20.25), "purchase"),
    ]  # fmt: skip


def test_a_file_that_is_not_parquet_gets_one_clear_line_and_nothing_is_written(tmp_path):
    src = tmp_path / "events.parquet"
    src.write_text("event_time,user_id\n")
    with pytest.raises(IngestError, match=r"events.parquet: not a readable Parquet file"):
        ingest_file(src, tmp_path / "raw", spec=with_format("ecommerce_events", "parquet"))
    assert not any((tmp_path / "raw").iterdir())


def test_a_workbook_is_converted_once_its_sheets_one_after_another(tmp_path):
    first = [RETAIL_HEADER, ["489434", "85048", "LIGHTS", 12, datetime(2009, 12, 1, 7, 45), 6.95, 13085.0, "United Kingdom"]]
    second = [RETAIL_HEADER, ["C489449", "22087", "CARD", -12, datetime(2010, 12, 9, 10, 33), 0.85, None, "Germany"], [None] * 8]
    book = workbook_file(tmp_path / "online_retail_II.xlsx", {"Year 2009-2010": first, "Year 2010-2011": second})
    done = ingest_file(book, tmp_path / "raw", spec=with_format("online_retail", "xlsx"))
    [part] = Path(done["dir"]).iterdir()
    assert part.name == "part-00000.csv.gz" and done["ingest_date"] == "2010-12-09"
    assert gzip.decompress(part.read_bytes()).decode().splitlines() == [
        ",".join(RETAIL_HEADER),
        "489434,85048,LIGHTS,12,2009-12-01 07:45:00,6.95,13085,United Kingdom",  # a whole number is stored as one
        "C489449,22087,CARD,-12,2010-12-09 10:33:00,0.85,,Germany",  # the empty row at the end carries nothing
    ]
    only = ingest_file(book, tmp_path / "raw2", spec=with_format("online_retail", "xlsx", sheets=("Year 2009-2010",)))
    assert only["rows"] == 1 and only["ingest_date"] == "2009-12-01"


@pytest.mark.parametrize(
    ("sheets", "written", "message"),
    [
        (("Year 2011",), None, r"no sheet 'Year 2011'; its sheets: Year 2009-2010"),
        ((), [RETAIL_HEADER[:-1]], r"sheet 'Sheet2' has the columns .*, not those of the first sheet"),
        ((), "not a zip", r"not a readable XLSX workbook"),
    ],
)
def test_a_workbook_that_cannot_be_read_as_one_table_is_refused_before_anything_is_written(tmp_path, sheets, written, message):
    path = tmp_path / "book.xlsx"
    if isinstance(written, str):
        path.write_text(written)
    else:
        workbook_file(path, {"Year 2009-2010": [RETAIL_HEADER], **({"Sheet2": written} if written else {})})
    with pytest.raises(IngestError, match=message):
        ingest_file(path, tmp_path / "raw", spec=with_format("online_retail", "xlsx", sheets=sheets))
    assert not any((tmp_path / "raw").iterdir())


def test_a_dry_run_reads_the_first_rows_of_a_workbook(spark, tmp_path):
    from pulse.staging.dry_run import check

    rows = [["48943" + str(i), "85048", "LIGHTS", 2, datetime(2009, 12, 1, 7, i), 1.25, 13085.0 + i, "France"] for i in range(5)]
    book = workbook_file(tmp_path / "book.xlsx", {"Year 2009-2010": [RETAIL_HEADER, *rows]})
    report = check(spark, with_format("online_retail", "xlsx", sheets=("Year 2009-2010",)), [book], rows=3)
    assert (report.rows, report.clean, report.event_types) == (3, 3, {"purchase": 3})


def test_workbook_cells_are_written_as_the_workbook_holds_them():
    assert [workbook._cell(v) for v in (None, 13085.0, 12, "x", datetime(2010, 1, 2, 3, 4, 5))] == [
        "", "13085.0", "12", "x", "2010-01-02 03:04:05",
    ]  # fmt: skip
