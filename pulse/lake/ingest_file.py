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
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pulse.common.progress import step
from pulse.domain import EPOCH_DIGITS, PUBLIC_COLUMNS, RAW_COLUMNS
from pulse.lake.layout import part_file, partition_dir
from pulse.sources.spec import Spec


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


_DATE_RE = re.compile(rb'^\s*"?(\d{4}-\d{2}-\d{2})')
_US_DATE_RE = re.compile(rb'^\s*"?(\d{1,2})/(\d{1,2})/(\d{4})\b')  # M/D/YYYY, as in the retail export
_EPOCH_RE = re.compile(rb'^\s*"?(\d{9,16})"?\s*$')


def event_date(field: bytes) -> date | None:
    """The calendar date of an event_time field in any accepted form, or None (the job judges it)."""
    if m := _DATE_RE.match(field):
        try:
            return date.fromisoformat(m.group(1).decode())
        except ValueError:
            return None
    if m := _US_DATE_RE.match(field):
        try:
            return date(int(m.group(3)), int(m.group(1)), int(m.group(2)))
        except ValueError:
            return None
    if m := _EPOCH_RE.match(field):
        digits = len(m.group(1))
        for per_second, (lo, hi) in EPOCH_DIGITS.items():
            if lo <= digits <= hi:
                return datetime.fromtimestamp(int(m.group(1)) // per_second, UTC).date()
    return None


def _time_column(path: Path, header: list[str], spec: Spec | None) -> int | None:
    """Where the event time is, to date the partition: Pulse's ``event_time``, or the column a spec's
    event_time names (None when it is an expression: the partition is then dated by ``ingest_date``)."""
    if spec is None:
        missing = [c for c in PUBLIC_COLUMNS if c not in header and c != "user_session"]
        if missing:
            raise IngestError(f"{path.name}: no column for {missing}; map them with --map PULSE_COLUMN=FILE_COLUMN")
        return header.index("event_time")
    name = spec.fields["event_time"].strip().strip("`")
    return header.index(name) if name in header else None


def _header(path: Path, line: str, mapping: dict[str, str], spec: Spec | None) -> tuple[str, int | None]:
    """(the header line RAW gets, where the event time is): Pulse's names mapped, or, with a spec, as it came."""
    line = line.rstrip("\r\n")
    dialect = {"delimiter": spec.input.delimiter, "quotechar": spec.input.quote} if spec else {}
    header = [mapping.get(h.strip(), h.strip()) for h in next(csv.reader([line], **dialect))]
    if spec:
        return line + "\n", _time_column(path, header, spec)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(header)
    return out.getvalue(), _time_column(path, header, spec)


def _future_error(path: Path, future: int, rows: int, ingest_date: date, latest: date | None) -> IngestError:
    return IngestError(
        f"{path.name}: {future:,} of {rows:,} lines are dated after --ingest-date {ingest_date} + 1 day (latest "
        f"{latest}); they would all be quarantined as future_timestamp. Omit --ingest-date (the latest event date is "
        f"used) or pass --ingest-date {latest}."
    )


def ingest_file(
    path: Path,
    out_root: Path,
    ingest_date: date | None = None,
    mapping: dict[str, str] | None = None,
    lines_per_part: int = 1_000_000,
    max_future_share: float = 0.05,
    spec: Spec | None = None,
) -> dict:
    """Write ``path`` as out_root/ingest_date=…/part-NNNNN.csv.gz; returns rows, parts, ingest date.

    Without ``ingest_date`` the file's latest event date is used, so a multi-day export does not
    look like events from the future. With one, a file whose events mostly lie after it (+1 day, the
    job's clock-skew allowance) is refused: they would all end in quarantine as future_timestamp.
    With a source ``spec`` the header stays as it is too (the spec names the file's own columns)."""
    if spec is not None and mapping:
        raise IngestError("--map renames columns of Pulse's own layout; with --spec, the spec's fields name the columns")
    mapping = mapping or {}
    staging_dir = out_root / f".ingest-{path.name}.tmp"
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir(parents=True)
    dates: dict[date, int] = {}
    with _open(path) as src, step(f"ingest {path.name}") as s:
        encoding = spec.input.encoding if spec else "utf-8"
        utf8 = encoding.replace("_", "-").lower() in ("utf-8", "utf8")
        dialect = {"delimiter": spec.input.delimiter, "quotechar": spec.input.quote} if spec else {}
        header_text, time_col = _header(path, src.readline().decode("utf-8-sig" if utf8 else encoding), mapping, spec)
        parts = rows = 0
        while True:
            lines = [line for _, line in zip(range(lines_per_part), src, strict=False)]
            if not lines:
                break
            if not utf8:  # RAW text is UTF-8: another encoding is converted, nothing else changes
                lines = [line.decode(encoding).encode() for line in lines]
            for line in lines:
                fields = next(csv.reader([line.decode("utf-8", "replace")], **dialect), [])
                day = event_date(fields[time_col].encode()) if time_col is not None and len(fields) > time_col else None
                if day:
                    dates[day] = dates.get(day, 0) + 1
            body = header_text.encode() + b"".join(lines)
            (staging_dir / part_file(parts)).write_bytes(gzip.compress(body, compresslevel=3, mtime=0))
            parts += 1
            rows += len(lines)
            s.update(len(lines))
    latest = max(dates, default=None)
    if ingest_date is None:
        ingest_date = latest or datetime.now(UTC).date()
    future = sum(n for d, n in dates.items() if d > ingest_date + timedelta(days=1))
    if rows and future / rows > max_future_share:
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise _future_error(path, future, rows, ingest_date, latest)
    part_dir = partition_dir(out_root, ingest_date)
    shutil.rmtree(part_dir, ignore_errors=True)  # Pulse's own partition of this source: a re-ingest replaces it
    part_dir.parent.mkdir(parents=True, exist_ok=True)
    staging_dir.rename(part_dir)
    return {"rows": rows, "parts": parts, "dir": str(part_dir), "ingest_date": ingest_date.isoformat()}
