"""An XLSX workbook as CSV text, for ``pulse ingest-file``: RAW holds text, and a workbook is read once.

The sheets a spec names (all when it names none) must have the same header; their rows follow one
another. Cells are written as the workbook holds them: a date-time cell as ``YYYY-MM-DD HH:MM:SS``
(the spec's time zone applies, as to any naive time), a number as Python prints it (``13085.0``), an
empty cell as an empty field.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path


class WorkbookError(ValueError):
    pass


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds" if not value.microsecond else "microseconds")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def rows(path: Path, sheets: tuple[str, ...] = (), limit: int | None = None) -> Iterator[list[str]]:
    """The header, then every data row of the chosen sheets (at most ``limit`` rows, for a dry run)."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise WorkbookError(f"{path.name}: not a readable XLSX workbook ({type(exc).__name__}: {exc})") from None
    try:
        missing = [s for s in sheets if s not in book.sheetnames]
        if missing:
            names = ", ".join(book.sheetnames)
            raise WorkbookError(f"{path.name}: no sheet {', '.join(map(repr, missing))}; its sheets: {names}")
        header: list[str] | None = None
        emitted = 0
        for name in sheets or book.sheetnames:
            lines = book[name].iter_rows(values_only=True)
            first = [_cell(v).strip() for v in next(lines, ())]
            if header is None:
                header = first
                yield header
            elif first != header:
                raise WorkbookError(f"{path.name}: sheet {name!r} has the columns {first}, not those of the first sheet {header}")
            for line in lines:
                if limit is not None and emitted >= limit:
                    return
                if any(v is not None for v in line):  # trailing empty rows a workbook often carries
                    yield [_cell(v) for v in line[: len(header)]]
                    emitted += 1
    finally:
        book.close()


def to_csv(path: Path, out: Path, sheets: tuple[str, ...] = (), limit: int | None = None) -> Path:
    """Write the workbook's rows as UTF-8 CSV (comma, double quotes) at ``out``."""
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        for row in rows(path, sheets, limit):
            writer.writerow(row)
    return out
