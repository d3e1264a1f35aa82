"""Bring a user's own event file (CSV, JSON lines, Parquet or an XLSX workbook) into the RAW layout.

Only the header is rewritten (mapping the user's column names to Pulse's); every other line is
copied byte for byte, so nothing is lost or "fixed" on the way in: malformed lines reach the
cleaning job and end up in the quarantine with a reason. Columns Pulse knows but the file lacks
(event_id, currency, platform…) are read as empty and handled by the cleaning rules.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pulse.common.progress import step
from pulse.domain import EPOCH_DIGITS, PUBLIC_COLUMNS, RAW_COLUMNS
from pulse.lake import workbook
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
    event_time reads (None when it reads none: the partition is then dated by ``ingest_date``)."""
    if spec is None:
        missing = [c for c in PUBLIC_COLUMNS if c not in header and c != "user_session"]
        if missing:
            raise IngestError(f"{path.name}: no column for {missing}; map them with --map PULSE_COLUMN=FILE_COLUMN")
        return header.index("event_time")
    text = spec.fields["event_time"]
    name = text.strip().strip("`")
    if name in header:
        return header.index(name)
    # an expression: the first column it reads (InvoiceDate in to_timestamp(InvoiceDate, 'M/d/yyyy H:mm'))
    read = [i for i, h in enumerate(header) if h and re.search(rf"(?<![\w`]){re.escape(h)}(?![\w`])|`{re.escape(h)}`", text)]
    return read[0] if read else None


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
    """Write ``path`` as out_root/ingest_date=…/part-NNNNN.<format>; returns rows, parts, ingest date.

    Without ``ingest_date`` the file's latest event date is used, so a multi-day export does not
    look like events from the future. With one, a file whose events mostly lie after it (+1 day, the
    job's clock-skew allowance) is refused: they would all end in quarantine as future_timestamp.
    With a source ``spec`` the header stays as it is too (the spec names the file's own columns); JSON
    lines are split into gzip'd parts as they are, a Parquet file is copied, an XLSX workbook is
    converted to CSV (``workbook``)."""
    if spec is not None and mapping:
        raise IngestError("--map renames columns of Pulse's own layout; with --spec, the spec's fields name the columns")
    staging_dir = out_root / f".ingest-{path.name}.tmp"
    shutil.rmtree(staging_dir, ignore_errors=True)
    staging_dir.mkdir(parents=True)
    try:
        fmt = spec.input.format if spec else "csv"
        with step(f"ingest {path.name}") as s:
            if fmt == "jsonl":
                parts, rows, dates = _jsonl_parts(path, staging_dir, spec, lines_per_part, s)  # type: ignore[arg-type]
            elif fmt == "parquet":
                parts, rows, dates = _parquet_part(path, staging_dir, spec, s)  # type: ignore[arg-type]
            elif fmt == "xlsx":
                converted = workbook.to_csv(path, staging_dir / f"{path.stem}.csv", spec.input.sheets)  # type: ignore[union-attr]
                try:
                    parts, rows, dates = _csv_parts(converted, staging_dir, {}, converted_csv(spec), lines_per_part, s)
                finally:
                    converted.unlink()
            else:
                parts, rows, dates = _csv_parts(path, staging_dir, mapping or {}, spec, lines_per_part, s)
    except (workbook.WorkbookError, ValueError, OSError) as exc:
        shutil.rmtree(staging_dir, ignore_errors=True)  # nothing half-written: one clear line instead
        raise exc if isinstance(exc, IngestError) else IngestError(f"{path.name}: {exc}") from None
    return _commit(path, out_root, staging_dir, ingest_date, dates, parts, rows, max_future_share)


def converted_csv(spec: Spec | None) -> Spec | None:
    """The spec as the converted workbook's CSV is written (comma, UTF-8, a header)."""
    if spec is None:
        return None
    csv_input = dataclasses.replace(spec.input, format="csv", delimiter=",", quote='"', encoding="utf-8")
    return dataclasses.replace(spec, input=csv_input)


def _commit(
    path: Path, out_root: Path, staging_dir: Path, ingest_date, dates, parts: int, rows: int, max_future_share: float
) -> dict:
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


Parts = tuple[int, int, dict[date, int]]  # parts written, rows, rows per event date


def _count(dates: dict[date, int], day: date | None) -> None:
    if day:
        dates[day] = dates.get(day, 0) + 1


def _csv_parts(path: Path, staging_dir: Path, mapping: dict[str, str], spec: Spec | None, lines_per_part: int, s) -> Parts:
    dates: dict[date, int] = {}
    with _open(path) as src:
        encoding = spec.input.encoding if spec else "utf-8"
        utf8 = encoding.replace("_", "-").lower() in ("utf-8", "utf8")
        dialect = {"delimiter": spec.input.delimiter, "quotechar": spec.input.quote} if spec else {}
        header_text, time_col = _header(path, src.readline().decode("utf-8-sig" if utf8 else encoding), mapping, spec)
        parts = rows = 0
        while lines := [line for _, line in zip(range(lines_per_part), src, strict=False)]:
            if not utf8:  # RAW text is UTF-8: another encoding is converted, nothing else changes
                lines = [line.decode(encoding).encode() for line in lines]
            for line in lines:
                fields = next(csv.reader([line.decode("utf-8", "replace")], **dialect), [])
                _count(dates, event_date(fields[time_col].encode()) if time_col is not None and len(fields) > time_col else None)
            body = header_text.encode() + b"".join(lines)
            (staging_dir / part_file(parts)).write_bytes(gzip.compress(body, compresslevel=3, mtime=0))
            parts += 1
            rows += len(lines)
            s.update(len(lines))
    return parts, rows, dates


def _time_path(spec: Spec) -> list[str] | None:
    """The event time's column (a dotted path into nested records), when the spec's expression is one."""
    text = spec.fields["event_time"].strip()
    return [p.strip("`") for p in text.split(".")] if re.fullmatch(r"[\w`.]+", text) else None


def _json_day(line: bytes, time_path: list[str] | None) -> date | None:
    if time_path is None:
        return None
    try:
        value = json.loads(line)
        for key in time_path:
            value = value[key]
    except (ValueError, KeyError, TypeError):
        return None  # the job judges the line
    return event_date(str(value).encode()) if isinstance(value, str | int) else None


def _jsonl_parts(path: Path, staging_dir: Path, spec: Spec, lines_per_part: int, s) -> Parts:
    """JSON lines in gzip'd parts, every line as it came (converted to UTF-8 where the spec says another encoding)."""
    dates: dict[date, int] = {}
    encoding = spec.input.encoding.replace("_", "-").lower()
    time_path = _time_path(spec)
    parts = rows = 0
    with _open(path) as src:
        while lines := [line for _, line in zip(range(lines_per_part), src, strict=False)]:
            if encoding not in ("utf-8", "utf8"):
                lines = [line.decode(encoding).encode() for line in lines]
            for line in lines:
                _count(dates, _json_day(line, time_path))
            body = gzip.compress(b"".join(lines), compresslevel=3, mtime=0)
            (staging_dir / part_file(parts, suffix="jsonl.gz")).write_bytes(body)
            parts += 1
            rows += len(lines)
            s.update(len(lines))
    return parts, rows, dates


def _parquet_part(path: Path, staging_dir: Path, spec: Spec, s) -> Parts:
    """A Parquet file copied as it is, once it is known to be one (its footer read); dated by its time column."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's ArrowInvalid and friends: not a Parquet file
        raise IngestError(f"{path.name}: not a readable Parquet file ({exc})") from None
    dates: dict[date, int] = {}
    time_path = _time_path(spec)
    if time_path and time_path[0] in meta.schema_arrow.names:
        for batch in meta.iter_batches(columns=[time_path[0]]):
            column = batch.column(0)
            for key in time_path[1:]:
                column = column.field(key) if hasattr(column, "field") else column
            for value in column.to_pylist():
                if value is not None:
                    _count(dates, value.date() if isinstance(value, datetime) else event_date(str(value).encode()))
    rows = meta.metadata.num_rows
    shutil.copyfile(path, staging_dir / part_file(0, suffix="parquet"))
    s.update(rows)
    return 1, rows, dates
