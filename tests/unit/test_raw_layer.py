"""RAW manifests: rows, bytes and checksums of what was committed."""

from __future__ import annotations

import gzip
import hashlib

from pulse.domain import RAW_COLUMNS
from pulse.lake.raw import build_manifest, spans_lines

HEADER = ",".join(RAW_COLUMNS)
GOOD = "e1,2026-10-01T12:00:00Z,view,1,2,a.b,x,1.00,42,s1,USD,ios,US,5.0,organic"


def test_manifest_counts_rows_bytes_and_checksums(tmp_path):
    body = gzip.compress(f"{HEADER}\n{GOOD}\n{GOOD}\n".encode())
    (tmp_path / "part-00000.csv.gz").write_bytes(body)
    m = build_manifest("demo", "2026-10-01", [tmp_path / "part-00000.csv.gz"])
    assert (m["rows"], m["bytes"], m["schema_version"]) == (2, len(body), 1)
    [f] = m["files"]
    assert (f["sha256"], f["md5"]) == (hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest())
    assert f["multiline"] is False


def test_a_quoted_line_break_is_told_apart_from_quotes_on_one_line():
    assert spans_lines(b'h1,h2\n"a\nb",1\n') and spans_lines(b'h\n"open') and spans_lines(b'h\n"\n\n"\n')
    assert not spans_lines(b'h1,h2\n"a,b","c""d"\n') and not spans_lines(b"no quotes\nat all") and not spans_lines(b"")
