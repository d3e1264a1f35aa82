"""Write RAW chunks as gzip'd CSV files laid out by ingest date: ingest_date=YYYY-MM-DD/part-NNNNN.csv.gz."""

from __future__ import annotations

import gzip
import io
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from pulse.datagen.dirty import RawChunk
from pulse.domain import RAW_COLUMNS
from pulse.lake.layout import part_file, partition_dir


def write_chunk(root: Path, chunk: RawChunk, start: date, part: int) -> int:
    """Write one chunk; returns the number of files written."""
    idx = np.lexsort((chunk.order, chunk.ingest_day))
    days = chunk.ingest_day[idx]
    bad_by_day: dict[int, list[str]] = {}
    for day, line in chunk.malformed:
        bad_by_day.setdefault(day, []).append(line)
    bounds = np.flatnonzero(np.diff(days)) + 1
    groups = {int(chunk.ingest_day[g[0]]): g for g in np.split(idx, bounds) if len(g)}
    for day in sorted(set(groups) | set(bad_by_day)):
        rows = groups.get(day, np.array([], dtype=np.int64))
        table = pa.table({c: pa.array(chunk.cols[c][rows].tolist(), type=pa.string()) for c in RAW_COLUMNS})
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="needed"))
        body = buf.getvalue()
        if bad_by_day.get(day):
            body += ("\n".join(bad_by_day[day]) + "\n").encode()
        path = partition_dir(root, start + timedelta(days=day)) / part_file(part)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(body, compresslevel=3, mtime=0))  # mtime=0: same seed, same bytes
    return len(set(groups) | set(bad_by_day))
