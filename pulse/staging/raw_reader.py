"""The cleaning job reads RAW with Spark's own S3A connector: every committed line, with its file and line number.

Spark's CSV file source cannot say which line a record came from, so each file is read as text
(one task per file: gzip is not splittable, and the planner is told never to pack two files in
one task), numbered by its position in the task, and parsed with ``from_csv`` against the file's
own header (files may order or omit columns; ``pulse ingest`` only renames them). Lines are joined
into records where a quoted field holds a line break (``records``; only for files whose manifest says
they hold one, or does not say). A record whose field count does
not match its header comes out with ``_malformed`` holding the text, for the quarantine. Before
anything is parsed, every object is checked against its manifest (ETag = MD5, else a full sha256):
RAW is immutable, and a changed object must stop the run, not slip into staging.
"""

from __future__ import annotations

import csv
import functools
import gzip
import os
import re
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pulse.common import s3 as s3util
from pulse.common.spark import use_s3a
from pulse.config import S3Config
from pulse.domain import RAW_COLUMNS
from pulse.lake.raw import RawFile

CORRUPT = "_corrupt"
META_SCHEMA = "_ingest_date string, _file string, _malformed string, _row long, _correction boolean"
META = ("_ingest_date", "_file", "_malformed", "_row", "_correction")
# what ``read`` returns for Pulse's own layout: RAW_COLUMNS as text (NULL when a file lacks the column or
# the line is malformed), then META; another layout has its files' own columns
SCHEMA = ", ".join(f"{c} string" for c in RAW_COLUMNS) + ", " + META_SCHEMA
HEADER_PROBE_BYTES = 64 << 10
ROW_BITS = 33  # monotonically_increasing_id(): partition index in the upper 31 bits, record in the lower 33


class RawReadError(RuntimeError):
    pass


@dataclass(frozen=True)
class Dialect:
    """How a source's CSV is written (its spec's ``input``): Pulse's own layout is the default."""

    delimiter: str = ","
    quote: str = '"'


COMMA = Dialect()


def s3a_path(cfg: S3Config, key: str) -> str:
    return f"s3a://{cfg.raw_bucket}/{key}"


def read_header(s3, bucket: str, key: str, dialect: Dialect = COMMA) -> list[str]:
    """The column names on the first line of one object, from its first bytes only."""
    body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_PROBE_BYTES - 1}")["Body"].read()
    text = zlib.decompressobj(wbits=31).decompress(body) if key.endswith(".gz") else body
    first = text.decode("utf-8-sig", errors="replace").splitlines()[:1]  # -sig: a byte-order mark is no part of a name
    if not first:
        raise RawReadError(f"RAW object {key} has no header line")
    return [name.strip() for name in next(csv.reader(first, delimiter=dialect.delimiter, quotechar=dialect.quote))]


def headers(
    cfg: S3Config, files: list[RawFile], dialect: Dialect = COMMA, threads: int = 8
) -> dict[tuple[str, ...], list[RawFile]]:
    """Files grouped by header (usually one group: every file of a source has the same one)."""
    s3 = s3util.client(cfg)
    with ThreadPoolExecutor(threads) as pool:
        names = list(pool.map(lambda f: tuple(read_header(s3, cfg.raw_bucket, f.key, dialect)), files))
    groups: dict[tuple[str, ...], list[RawFile]] = defaultdict(list)
    for f, header in zip(files, names, strict=True):
        groups[header].append(f)
    return groups


def columns_of(groups: dict[tuple[str, ...], list[RawFile]], optional: tuple[str, ...] = ()) -> list[str]:
    """The columns ``read`` gives: every name of every header, in first-seen order, then the ``optional``
    ones no file has (a layout whose files may leave them out: read as NULL)."""
    seen: dict[str, None] = {}
    for header in groups:
        seen.update(dict.fromkeys(name for name in header if name))
    return [*seen, *(c for c in optional if c not in seen)]


def verify_checksums(spark: SparkSession, cfg: S3Config, files: list[RawFile]) -> int:
    """Check that every object is the one its manifest committed; returns how many needed a full hash.

    The cheap way first: one LIST gives each object's ETag, which S3 (AWS, MinIO, SeaweedFS) sets to
    the MD5 of a single-part upload, and manifests record that MD5. Objects without an MD5 in their
    manifest (older manifests), with a multipart or encrypted ETag, or whose ETag differs are then
    hashed in full by the executors (sha256, as the manifest says), so nothing is judged on the ETag alone.
    """
    prefix = os.path.commonpath([os.path.dirname(f.key) for f in files]) + "/"  # the source's folder: one LIST
    etags = s3util.list_etags(s3util.client(cfg), cfg.raw_bucket, prefix)
    for f in files:
        if f.key not in etags:
            raise RawReadError(f"RAW object {s3a_path(cfg, f.key)} was removed after commit (RAW is immutable); restore it")
    doubtful = [f for f in files if not f.md5 or etags[f.key] != f.md5]
    if not doubtful:
        return 0
    want = {s3a_path(cfg, f.key): f.sha256 for f in doubtful}
    got = {
        r["path"]: r["sha256"]
        for r in spark.read.format("binaryFile").load(list(want)).select("path", F.sha2("content", 256).alias("sha256")).collect()
    }
    for path, sha in want.items():
        if got.get(path) != sha:
            raise RawReadError(
                f"RAW object {path} does not match the sha256 in its manifest: it was changed after commit "
                "(RAW is immutable); restore it or load the data as a new ingest date"
            )
    return len(doubtful)


def one_file_per_task(spark: SparkSession, files: list[RawFile]) -> None:
    """Make the planner give every file its own task, never split: line numbers are then positions in a task."""
    size = str(max(128 << 20, max(f.bytes for f in files) + 1))
    spark.conf.set("spark.sql.files.maxPartitionBytes", size)
    spark.conf.set("spark.sql.files.openCostInBytes", size)  # a file "costs" a whole task: none is packed with another


def records(lines: DataFrame, quote: str = '"') -> DataFrame:
    """Physical lines (value, _path, _row) -> CSV records (value, _path, _row of the first line).

    A quoted field may hold line breaks, so a record is a run of lines inside which the double
    quotes are unbalanced: a line continues a record while the quotes counted since the record
    began are odd. Such lines are joined with "\n" (a CRLF inside a field becomes LF); every other
    line is its own record. Blank lines between records carry nothing and are dropped."""
    odd = ((F.length("value") - F.length(F.regexp_replace("value", re.escape(quote), ""))) % 2).cast("int")
    before = Window.partitionBy("_path").orderBy("_row").rowsBetween(Window.unboundedPreceding, -1)
    upto = Window.partitionBy("_path").orderBy("_row").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    marked = lines.withColumn("_odd", odd).withColumn("_open", F.coalesce(F.sum("_odd").over(before), F.lit(0)) % 2 == 1)
    marked = marked.withColumn("_start", F.last(F.when(~F.col("_open"), F.col("_row")), ignorenulls=True).over(upto))
    single = marked.filter(~F.col("_open") & (F.col("_odd") == 0) & (F.col("value") != ""))
    joined = (
        marked.filter(F.col("_open") | (F.col("_odd") == 1))
        .groupBy("_path", "_start")
        .agg(F.array_sort(F.collect_list(F.struct("_row", "value"))).alias("_lines"))
        .select(F.array_join(F.col("_lines.value"), "\n").alias("value"), "_path", F.col("_start").alias("_row"))
    )
    return single.select("value", "_path", "_row").unionByName(joined)


def parse_records(
    recs: DataFrame, header: tuple[str, ...], names: list[str] | tuple[str, ...] = RAW_COLUMNS, dialect: Dialect = COMMA
) -> DataFrame:
    """CSV records -> the columns ``names`` as text by the file's own header, plus ``_malformed`` (the record's
    text when its field count does not match the header) and the columns ``recs`` carried along."""
    # names may repeat or be blank in a foreign header: parse by position under safe names
    fields = [f"_f{i}" for i in range(len(header))]
    schema = ", ".join(f"{name} string" for name in fields) + f", {CORRUPT} string"
    parsed = F.from_csv(
        F.col("value"),
        schema,
        {
            "mode": "PERMISSIVE",
            "columnNameOfCorruptRecord": CORRUPT,
            "multiLine": "true",
            "sep": dialect.delimiter,
            "quote": dialect.quote,
            "escape": dialect.quote,
        },
    )
    position = {name: i for i, name in reversed(list(enumerate(header)))}  # the first of a repeated name wins
    malformed = F.col(f"_p.{CORRUPT}").isNotNull()
    columns = [
        # Spark reads an empty unquoted field as NULL; in a well-formed line every field is text, so
        # "" stays "" (the quarantine shows rows as they came, content-derived event ids hash "" too)
        F.when(~malformed, F.coalesce(F.col(f"_p.{fields[position[c]]}"), F.lit(""))).alias(c)
        if c in position
        else F.lit(None).cast("string").alias(c)
        for c in names
    ]
    rest = [c for c in recs.columns if c != "value"]
    return recs.withColumn("_p", parsed).select(*columns, F.when(malformed, F.col("value")).alias("_malformed"), *rest)


def _parse(
    spark: SparkSession, cfg: S3Config, header: tuple[str, ...], files: list[RawFile], names: list[str], dialect: Dialect
) -> DataFrame:
    meta = [(s3a_path(cfg, f.key), f.key, f.ingest_date, f.correction) for f in files]
    # joining lines into records needs a window over each file: only where a file may hold one (its manifest says)
    return parse_files(spark, meta, header, names, any(f.multiline is not False for f in files), dialect)


def parse_files(
    spark: SparkSession,
    meta: list[tuple[str, str, str, bool]],
    header: tuple[str, ...],
    names: list[str],
    spanning: bool = True,
    dialect: Dialect = COMMA,
) -> DataFrame:
    """The records of files that share ``header``: (path, file key, ingest date, correction) each."""
    meta_frame = spark.createDataFrame(meta, "_path string, _file string, _ingest_date string, _correction boolean")
    # positions are only meaningful right after the scan, so they are taken in the first projection
    lines = spark.read.text([m[0] for m in meta]).select(
        "value",
        F.col("_metadata.file_path").alias("_path"),
        (F.monotonically_increasing_id() - F.shiftleft(F.spark_partition_id().cast("long"), ROW_BITS) + 1).alias("_row"),
    )
    body = lines.filter(F.col("_row") > 1)  # row 1: the header
    recs = (records(body, dialect.quote) if spanning else body.filter(F.col("value") != "")).join(
        F.broadcast(meta_frame), "_path"
    )
    return parse_records(recs, header, names, dialect).select(*[F.col(f"`{c}`") for c in names], *META)


def read_local(spark: SparkSession, paths: list[Path], optional: tuple[str, ...] = (), dialect: Dialect = COMMA) -> DataFrame:
    """Local CSV files (plain or gzip) read as ``read`` reads RAW: for a dry run on a user's files."""
    groups: dict[tuple[str, ...], list[Path]] = defaultdict(list)
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
            first = next(csv.reader(fh, delimiter=dialect.delimiter, quotechar=dialect.quote), [])
            groups[tuple(name.strip() for name in first)].append(path)
    one_file_per_task(spark, [RawFile(str(p), "", p.stat().st_size, "") for p in paths])
    names = columns_of(groups, optional)  # type: ignore[arg-type]
    frames = [
        parse_files(
            spark, [(f"file:{p.resolve()}", p.name, date.today().isoformat(), False) for p in group], header, names, True, dialect
        )
        for header, group in groups.items()
    ]
    return functools.reduce(DataFrame.unionByName, frames)


def read(
    spark: SparkSession, cfg: S3Config, files: list[RawFile], optional: tuple[str, ...] = (), dialect: Dialect = COMMA
) -> DataFrame:
    """The files' columns (``columns_of``) + ``_ingest_date, _file, _malformed, _row, _correction`` of every
    record of ``files``."""
    use_s3a(spark, cfg)  # the session may have been built for other settings (tests, benchmarks)
    verify_checksums(spark, cfg, files)
    one_file_per_task(spark, files)
    groups = headers(cfg, files, dialect)
    names = columns_of(groups, optional)
    frames = [_parse(spark, cfg, header, group, names, dialect) for header, group in groups.items()]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    # one task per file is right for numbering lines, not for what follows (hundreds of small daily
    # files): merge them into ~16 MB of gzip'd CSV per task, at least two tasks per core. Coalescing
    # is narrow, so every file is still numbered in its own scan partition.
    tasks = max(2 * spark.sparkContext.defaultParallelism, sum(f.bytes for f in files) // (16 << 20))
    return out.coalesce(tasks)
