"""RAW manifests, file packing and the lossless CSV parse the Spark data source uses."""

from __future__ import annotations

import gzip

from pulse.domain import RAW_COLUMNS
from pulse.lake.raw import build_manifest
from pulse.staging.s3_source import pack, parse_csv

HEADER = ",".join(RAW_COLUMNS)
GOOD = "e1,2026-10-01T12:00:00Z,view,1,2,a.b,x,1.00,42,s1,USD,ios,US,5.0,organic"


def test_manifest_counts_rows_bytes_and_checksums(tmp_path):
    body = gzip.compress(f"{HEADER}\n{GOOD}\n{GOOD}\n".encode())
    (tmp_path / "part-00000.csv.gz").write_bytes(body)
    m = build_manifest("demo", "2026-10-01", [tmp_path / "part-00000.csv.gz"])
    assert (m["rows"], m["bytes"], m["schema_version"]) == (2, len(body), 1)
    assert len(m["files"][0]["sha256"]) == 64


def test_parse_keeps_malformed_lines_as_rows():
    text = f"{HEADER}\n{GOOD}\nbroken,line\n{GOOD},extra\n{GOOD}\n"
    table = parse_csv(gzip.compress(text.encode()), "k.csv.gz", "2026-10-01")
    assert table.num_rows == 4
    malformed = [m for m in table.column("_malformed").to_pylist() if m]
    assert malformed == ["broken,line", f"{GOOD},extra"]
    rows = dict(zip(table.column("_row").to_pylist(), table.column("_malformed").to_pylist(), strict=True))
    assert rows == {2: None, 3: "broken,line", 4: f"{GOOD},extra", 5: None}  # the real line in the file (header = 1)


def test_parse_file_without_pulse_only_columns():
    text = (
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde\n"
    )
    table = parse_csv(text.encode(), "k.csv", "2026-10-01")
    assert table.num_rows == 1
    assert table.column("event_id").to_pylist() == [None]
    assert table.column("brand").to_pylist() == ["shiseido"]


def test_pack_balances_bytes_and_keeps_every_file():
    files = [{"key": f"f{i}", "ingest_date": "d", "bytes": b, "sha256": "x"} for i, b in enumerate([100, 90, 10, 10, 5, 1])]
    bins = pack(files, 2)
    assert sorted(k for b in bins for k, *_ in b) == sorted(f["key"] for f in files)
    weights = [sum(next(f["bytes"] for f in files if f["key"] == k) for k, *_ in b) for b in bins]
    assert max(weights) - min(weights) <= 10
