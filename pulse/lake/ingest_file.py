"""Bring a user's own event file (the common public e-commerce event-log CSV) into the RAW layout.

Only the header is rewritten (mapping the user's column names to Pulse's); every other line is
copied byte for byte, so nothing is lost or "fixed" on the way in: malformed lines reach the
cleaning job and end up in the quarantine with a reason. Columns Pulse knows but the file lacks
(event_id, currency, platform…) are read as empty and handled by the cleaning rules.
"""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from datetime import date
from pathlib import Path

from pulse.common.progress import step
from pulse.datagen.writer import partition_dir
from pulse.domain import PUBLIC_COLUMNS, RAW_COLUMNS


class IngestError(ValueError):
    pass


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``["event_time=ts", …]`` -> {"ts": "event_time"} (file column -> Pulse column)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        pulse_col, sep, file_col = pair.partition("=")
        if not sep or pulse_col not in RAW_COLUMNS:
            raise IngestError(f"bad mapping {pair!r}: expected PULSE_COLUMN=FILE_COLUMN, PULSE_COLUMN in {RAW_COLUMNS}")
        mapping[file_col] = pulse_col
    return mapping


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def ingest_file(
    path: Path, out_root: Path, ingest_date: date, mapping: dict[str, str] | None = None, lines_per_part: int = 1_000_000
) -> dict:
    """Write ``path`` as out_root/ingest_date=…/part-NNNNN.csv.gz; returns rows and parts written."""
    mapping = mapping or {}
    part_dir = partition_dir(out_root, ingest_date)
    shutil.rmtree(part_dir, ignore_errors=True)
    part_dir.mkdir(parents=True)
    with _open(path) as src, step(f"ingest {path.name} as ingest_date={ingest_date}") as s:
        header_line = src.readline().decode("utf-8-sig").rstrip("\r\n")
        header = [mapping.get(h.strip(), h.strip()) for h in next(csv.reader([header_line]))]
        missing = [c for c in PUBLIC_COLUMNS if c not in header and c != "user_session"]
        if missing:
            raise IngestError(f"{path.name}: no column for {missing}; map them with --map PULSE_COLUMN=FILE_COLUMN")
        out_header = io.StringIO()
        csv.writer(out_header, lineterminator="\n").writerow(header)
        parts = rows = 0
        while True:
            lines = [line for _, line in zip(range(lines_per_part), src, strict=False)]
            if not lines:
                break
            body = out_header.getvalue().encode() + b"".join(lines)
            (part_dir / f"part-{parts:05d}.csv.gz").write_bytes(gzip.compress(body, compresslevel=3, mtime=0))
            parts += 1
            rows += len(lines)
            s.update(len(lines))
    return {"rows": rows, "parts": parts, "dir": str(part_dir)}
