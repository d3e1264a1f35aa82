"""The RAW layer: immutable event files in S3, partitioned by source and ingest date, with manifests.

Layout under ``s3://<raw_bucket>/<raw_prefix>/source=<source>/``:
  ingest_date=YYYY-MM-DD/part-NNNNN.csv.gz      the files, never rewritten once committed
  _manifests/ingest_date=YYYY-MM-DD.json         written last: a partition exists only once this does
  _spec.yaml                                     the source spec the cleaning job applies (none: Pulse's layout)

So a partial upload never looks complete (readers list manifests, not files), and uploading
the same partition again is a no-op; different bytes for a committed partition are refused.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from pulse.common import s3 as s3util
from pulse.common.progress import say, step
from pulse.config import S3Config
from pulse.domain import SCHEMA_VERSION
from pulse.lake.layout import PARTITION_RE, manifest_name, partition_name
from pulse.sources import spec as specs

SPEC_FILE = "_spec.yaml"
DEFAULT_SPEC = "demo"  # a source stored without a spec is in Pulse's own layout (every release before specs)


class RawLayerError(RuntimeError):
    pass


@dataclass(frozen=True)
class RawFile:
    key: str
    ingest_date: str
    bytes: int
    sha256: str  # from the manifest: readers verify what they fetched
    correction: bool = False  # the partition corrects earlier ones (its events win over earlier copies)
    md5: str | None = None  # what S3 reports as the ETag of a single-part upload (manifests written since the streaming release)
    multiline: bool | None = None  # a quoted field holds a line break (None: a manifest from before this was recorded)


def source_prefix(cfg: S3Config, source: str) -> str:
    return f"{cfg.raw_prefix}/source={source}"


def manifest_key(cfg: S3Config, source: str, ingest_date: str) -> str:
    return f"{source_prefix(cfg, source)}/{manifest_name(ingest_date)}"


def describe_file(path: Path) -> dict:
    """A RAW file's manifest entry: size, hashes, rows (CSV: lines after the header; JSON lines: lines;
    Parquet: rows in its footer) and whether a CSV record spans lines."""
    body = path.read_bytes()
    entry = {
        "file": path.name,
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "md5": hashlib.md5(body).hexdigest(),  # = the ETag S3 reports: a cheap check that the object is unchanged
    }
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return entry | {"rows": pq.ParquetFile(path).metadata.num_rows, "multiline": False}
    try:
        text = gzip.decompress(body) if path.suffix == ".gz" else body
    except (OSError, EOFError) as exc:
        raise RawLayerError(f"{path}: not a readable gzip file ({exc})") from exc
    lines = text.count(b"\n") + (0 if text.endswith(b"\n") or not text else 1)
    if path.name.endswith(".jsonl.gz"):
        return entry | {"rows": lines, "multiline": False}
    # minus the header line (physical lines: a multi-line record counts each)
    return entry | {"rows": max(lines - 1, 0), "multiline": spans_lines(text)}


def spans_lines(text: bytes) -> bool:
    """Whether some line has an odd number of double quotes: then a quoted field holds a line break (a
    record on one line always has an even number). The cleaning job joins such lines into records only in
    files where this is true, so the common case pays nothing for it."""
    if b'"' not in text:
        return False
    data = np.frombuffer(text, dtype=np.uint8)
    quotes = np.flatnonzero(data == ord('"'))
    line_ends = np.append(np.flatnonzero(data == ord("\n")), len(data))
    return bool((np.searchsorted(quotes, line_ends) % 2).any())  # quotes before each line end, odd anywhere


def raw_files(partition: Path) -> list[Path]:
    """The RAW files of a local partition: CSV (plain or gzip), gzip'd JSON lines, Parquet."""
    return [p for p in partition.iterdir() if ".csv" in p.name or p.name.endswith((".jsonl.gz", ".parquet"))]


def _format(files: list[Path]) -> str:
    """What a partition's files are: ``csv.gz`` (Pulse's own and most sources), ``jsonl.gz`` or ``parquet``."""
    kinds = {p.name.split(".", 1)[1] if "." in p.name else "" for p in files}
    return kinds.pop() if len(kinds) == 1 else "csv.gz"


def build_manifest(source: str, ingest_date: str, files: list[Path]) -> dict:
    entries = [describe_file(p) for p in sorted(files)]
    return {
        "source": source,
        "ingest_date": ingest_date,
        "schema_version": SCHEMA_VERSION,
        "format": _format(files),
        "files": entries,
        "rows": sum(e["rows"] for e in entries),
        "bytes": sum(e["bytes"] for e in entries),
    }


def _same_content(a: dict, b: dict) -> bool:
    return [(f["file"], f["sha256"]) for f in a["files"]] == [(f["file"], f["sha256"]) for f in b["files"]]


def spec_key(cfg: S3Config, source: str) -> str:
    return f"{source_prefix(cfg, source)}/{SPEC_FILE}"


def put_spec(cfg: S3Config, source: str, spec: specs.Spec) -> bool:
    """Store the spec the source's next cleaning run applies (its name as object metadata); returns
    whether it changed."""
    current = source_spec(cfg, source)
    if (current.name, current.text) == (spec.name, spec.text):
        return False
    body = spec.text.encode()
    s3util.client(cfg).put_object(Bucket=cfg.raw_bucket, Key=spec_key(cfg, source), Body=body, Metadata={"spec-name": spec.name})
    return True


def source_spec(cfg: S3Config, source: str) -> specs.Spec:
    """The source's spec as stored with its RAW files (validated again: it is read by a job)."""
    try:
        obj = s3util.client(cfg).get_object(Bucket=cfg.raw_bucket, Key=spec_key(cfg, source))
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
            return specs.load(DEFAULT_SPEC)
        raise
    name = obj.get("Metadata", {}).get("spec-name", source)
    return specs.parse(obj["Body"].read().decode(), name=name, where=f"s3://{cfg.raw_bucket}/{spec_key(cfg, source)}")


def read_manifest(s3: Any, cfg: S3Config, source: str, ingest_date: str) -> dict | None:
    try:
        body = s3.get_object(Bucket=cfg.raw_bucket, Key=manifest_key(cfg, source, ingest_date))["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return json.loads(body)


def upload_dataset(cfg: S3Config, local_root: Path, source: str, threads: int = 8, correction: bool = False) -> dict:
    """Upload every ingest_date=… partition of ``local_root``; returns counts of what was done.
    ``correction``: the partitions correct earlier ones: their events replace earlier copies of the
    same event_id (the newest correction wins), instead of being quarantined as duplicates."""
    s3 = s3util.client(cfg)
    s3util.ensure_bucket(s3, cfg.raw_bucket)
    partitions = sorted(p for p in local_root.iterdir() if p.is_dir() and PARTITION_RE.search(p.name))
    if not partitions:
        raise RawLayerError(f"no ingest_date=YYYY-MM-DD partitions under {local_root}")
    done = {"uploaded": 0, "unchanged": 0, "files": 0, "rows": 0, "bytes": 0}
    with (
        step(f"upload RAW {local_root.name} -> s3://{cfg.raw_bucket}/{source_prefix(cfg, source)}") as s,
        ThreadPoolExecutor(threads) as pool,
    ):
        for part in partitions:
            ingest_date = PARTITION_RE.search(part.name).group(1)  # type: ignore[union-attr]
            manifest = build_manifest(source, ingest_date, raw_files(part))
            if correction:
                manifest["correction"] = True
            existing = read_manifest(s3, cfg, source, ingest_date)
            if existing is not None:
                if not _same_content(existing, manifest):
                    raise RawLayerError(
                        f"RAW partition source={source}/ingest_date={ingest_date} is committed with other content; "
                        "RAW is immutable: load corrected data as a new ingest date or source"
                    )
                done["unchanged"] += 1
                continue
            prefix = f"{source_prefix(cfg, source)}/{partition_name(ingest_date)}"

            def put(entry: dict, prefix: str = prefix, part: Path = part) -> None:
                s3.put_object(
                    Bucket=cfg.raw_bucket,
                    Key=f"{prefix}/{entry['file']}",
                    Body=(part / entry["file"]).read_bytes(),
                    Metadata={"sha256": entry["sha256"]},
                )

            list(pool.map(put, manifest["files"]))
            manifest["committed_at"] = datetime.now(UTC).isoformat()
            s3.put_object(
                Bucket=cfg.raw_bucket,
                Key=manifest_key(cfg, source, ingest_date),
                Body=json.dumps(manifest, indent=1).encode(),
                ContentType="application/json",
            )
            done["uploaded"] += 1
            done["files"] += len(manifest["files"])
            done["bytes"] += manifest["bytes"]
            s.update(manifest["rows"])
        done["rows"] = s.rows
    say(f"    partitions uploaded: {done['uploaded']}, already there (no-op): {done['unchanged']}")
    return done


def list_committed(cfg: S3Config, source: str, ingest_dates: list[str] | None = None) -> list[RawFile]:
    """Files of committed partitions only (those with a manifest)."""
    s3 = s3util.client(cfg)
    files: list[RawFile] = []
    for key in s3util.list_keys(s3, cfg.raw_bucket, f"{source_prefix(cfg, source)}/_manifests/"):
        ingest_date = key.rsplit("ingest_date=", 1)[1].removesuffix(".json")
        if ingest_dates and ingest_date not in ingest_dates:
            continue
        manifest = json.loads(s3.get_object(Bucket=cfg.raw_bucket, Key=key)["Body"].read())
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise RawLayerError(f"{key}: schema_version {manifest.get('schema_version')} is not {SCHEMA_VERSION}")
        prefix = f"{source_prefix(cfg, source)}/ingest_date={ingest_date}"
        files += [
            RawFile(
                f"{prefix}/{f['file']}",
                ingest_date,
                f["bytes"],
                f["sha256"],
                bool(manifest.get("correction")),
                f.get("md5"),
                f.get("multiline"),
            )
            for f in manifest["files"]
        ]
    return files


def delete_source(cfg: S3Config, source: str) -> int:
    """Remove a whole source from RAW (manifests first, so it never looks half there); returns objects deleted."""
    s3 = s3util.client(cfg)
    prefix = source_prefix(cfg, source)
    manifests = s3util.list_keys(s3, cfg.raw_bucket, f"{prefix}/_manifests/")
    seen = set(manifests)
    keys = manifests + [k for k in s3util.list_keys(s3, cfg.raw_bucket, f"{prefix}/") if k not in seen]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=cfg.raw_bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True})
    return len(keys)
