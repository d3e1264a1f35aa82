"""The RAW layout, owned here: ``ingest_date=YYYY-MM-DD/part-NNNNN.csv.gz`` (``.jsonl.gz``, ``.parquet``)
partitions, locally and in S3, and the manifest that commits each one (``_manifests/ingest_date=YYYY-MM-DD.json``)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

PARTITION_RE = re.compile(r"ingest_date=(\d{4}-\d{2}-\d{2})$")
MANIFESTS = "_manifests"


def partition_name(day: date | str) -> str:
    return f"ingest_date={day if isinstance(day, str) else day.isoformat()}"


def partition_dir(root: Path, day: date | str) -> Path:
    return root / partition_name(day)


def part_file(n: int, digits: int = 5, suffix: str = "csv.gz") -> str:
    """The name of a partition's n-th file (``csv.gz``; a source of JSON lines ``jsonl.gz``, of Parquet ``parquet``)."""
    return f"part-{n:0{digits}d}.{suffix}"


def manifest_name(day: date | str) -> str:
    return f"{MANIFESTS}/{partition_name(day)}.json"
