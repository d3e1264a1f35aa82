"""Propose a source spec from a sample of a file: the public layouts by their columns, otherwise a
guess of the time, user, event and amount columns from names and values, for the user to review."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pulse.sources.spec import PRESETS_DIR

SAMPLE_BYTES = 1 << 20
# the columns (or JSON keys) that give each preset's layout away
SIGNATURES = {
    "demo": {"event_id", "event_time", "event_type", "user_id", "user_session", "currency", "platform"},
    "ecommerce_events": {"event_time", "event_type", "product_id", "user_id", "user_session"},
    "online_retail": {"Invoice", "StockCode", "Quantity", "InvoiceDate", "Price", "Customer ID"},
    "ga4_export": {"event_timestamp", "event_name", "user_pseudo_id"},
    "netflix_viewing": {"Profile Name", "Start Time", "Duration", "Title"},
}
GUESSES = {  # field -> what its column tends to be called
    "event_time": r"(event_?)?(time|timestamp|date|datetime|ts)|created_?at|occurred_?at",
    "event_type": r"event(_?(type|name))?|action|activity|type",
    "user_id": r"(user|customer|client|member|account|profile|visitor)[ _]?(id|name|pseudo_id)?|uid",
    "session_id": r"(user_)?session(_?id)?",
    "product_id": r"(product|item|sku|stock|article)[ _]?(id|code)?",
    "price": r"price|amount|revenue|value|total",
    "currency": r"currency|curr",
    "country": r"country(_?code)?|geo",
    "platform": r"platform|os|device(_?type)?",
}


@dataclass(frozen=True)
class Proposal:
    preset: str | None  # a preset whose layout the file has
    spec: str  # YAML for the user to review


def columns_and_rows(path: Path) -> tuple[str, list[str], list[dict]]:
    """(format, column names, a few rows as text) from the file's first bytes."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read(SAMPLE_BYTES)
    text = raw.decode("utf-8-sig", errors="replace")
    first = text.lstrip()[:1]
    if first == "{":
        rows = [json.loads(line) for line in text.splitlines()[:50] if line.strip().endswith("}")]
        return "jsonl", list(dict.fromkeys(k for r in rows for k in r)), rows
    lines = text.splitlines()[:51]
    dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t|") if lines else csv.excel
    reader = csv.DictReader(io.StringIO("\n".join(lines)), dialect=dialect)
    rows = list(reader)[:-1] or list(reader)
    return "csv", [c.strip() for c in reader.fieldnames or []], rows


def infer(path: Path) -> Proposal:
    fmt, columns, rows = columns_and_rows(path)
    names = set(columns)
    for preset, signature in SIGNATURES.items():
        if signature <= names:
            return Proposal(preset, (PRESETS_DIR / f"{preset}.yaml").read_text())
    return Proposal(None, _guess(fmt, columns, rows))


def _looks_like_time(values: list[str]) -> bool:
    def parses(v: str) -> bool:
        try:
            datetime.fromisoformat(v.strip().replace(" UTC", "+00:00"))
            return True
        except ValueError:
            return bool(re.fullmatch(r"\d{9,16}", v.strip()))

    values = [v for v in values if v]
    return bool(values) and sum(map(parses, values)) >= 0.9 * len(values)


def _guess(fmt: str, columns: list[str], rows: list[dict]) -> str:
    chosen: dict[str, str] = {}
    for fld, pattern in GUESSES.items():
        for column in columns:
            if column not in chosen.values() and re.fullmatch(pattern, column.strip(), re.IGNORECASE):
                chosen[fld] = column
                break
    times = [c for c in columns if _looks_like_time([str(r.get(c) or "") for r in rows])]
    if times and chosen.get("event_time") not in times:
        chosen["event_time"] = times[0]
    lines = ["# proposed by `pulse source infer`: review every line, then `pulse source check FILE --spec this.yaml`",
             "spec_version: 1", f"input: {{format: {fmt}}}", "fields:"]  # fmt: skip
    for fld in ("event_time", "event_type", "user_id", *[f for f in GUESSES if f not in ("event_time", "event_type", "user_id")]):
        if fld in chosen:
            lines.append(f"  {fld}: {_quoted(chosen[fld])}")
        elif fld in ("event_time", "event_type", "user_id"):
            hint = "\"'view'\"" if fld == "event_type" else "REPLACE_ME"
            lines.append(f"  {fld}: {hint}   # not found: name the column (or an expression)")
    lines += ["roles:", "  active: all", "  funnel: none      # e.g. [view, cart, purchase]"]
    lines += ["  revenue: none     # e.g. [purchase]"]
    return "\n".join(lines) + "\n"


def _quoted(column: str) -> str:
    return column if column.isidentifier() else f'"`{column}`"'
