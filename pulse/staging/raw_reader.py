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

A source whose spec reads JSON lines or Parquet is read the same way, by format (``read``'s ``fmt``):
JSON lines as numbered text lines parsed against the schema Spark infers from all of them (nested
records and lists stay typed, for the spec's expressions; a line that is not a JSON object is
``_malformed``), Parquet with the row index Spark keeps per file. XLSX was converted to CSV at ingest.
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

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pulse.common import s3 as s3util
from pulse.common.spark import use_s3a
from pulse.config import S3Config
from pulse.domain import RAW_COLUMNS
from pulse.lake.raw import RawFile
from pulse.sources.spec import Input

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


def dialect_of(given: Input) -> Dialect:
    """How a source's CSV in RAW is written: as its spec's input says, or as ingest wrote a converted workbook."""
    return Dialect(given.delimiter, given.quote) if given.format == "csv" else COMMA


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
    body = _lines(spark, meta).filter(F.col("_row") > 1)  # row 1: the header
    recs = records(body, dialect.quote) if spanning else body.filter(F.col("value") != "")
    recs = recs.join(_meta_frame(spark, meta), "_path")
    return parse_records(recs, header, names, dialect).select(*[F.col(f"`{c}`") for c in names], *META)


def _meta_frame(spark: SparkSession, meta: list[tuple[str, str, str, bool]]) -> DataFrame:
    return F.broadcast(spark.createDataFrame(meta, "_path string, _file string, _ingest_date string, _correction boolean"))


def _lines(spark: SparkSession, meta: list[tuple[str, str, str, bool]]) -> DataFrame:
    """Every physical line of the files (value, _path, _row from 1), one task per file (``one_file_per_task``)."""
    # positions are only meaningful right after the scan, so they are taken in the first projection
    return spark.read.text([m[0] for m in meta]).select(
        "value",
        F.col("_metadata.file_path").alias("_path"),
        (F.monotonically_increasing_id() - F.shiftleft(F.spark_partition_id().cast("long"), ROW_BITS) + 1).alias("_row"),
    )


def _meta(malformed: Column) -> list[Column]:
    """The META columns, ``_malformed`` as given."""
    return [malformed.alias(m) if m == "_malformed" else F.col(m) for m in META]


def _absent(names: list[str], optional: tuple[str, ...]) -> list[Column]:
    """The ``optional`` columns no file has, as NULL text."""
    lower = {n.lower() for n in names}
    return [F.lit(None).cast("string").alias(c) for c in optional if c.lower() not in lower]


def parse_json_files(spark: SparkSession, meta: list[tuple[str, str, str, bool]], optional: tuple[str, ...] = ()) -> DataFrame:
    """JSON lines files: one event per line, its keys as columns (nested ones typed), + META."""
    inferred = spark.read.json([m[0] for m in meta]).schema  # every key of every line: a rare key resolves too
    fields = [f for f in inferred.fields if f.name != "_corrupt_record"]
    schema = T.StructType([*fields, T.StructField(CORRUPT, T.StringType())])
    parsed = F.from_json("value", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    recs = _lines(spark, meta).filter(F.trim("value") != "").join(_meta_frame(spark, meta), "_path")
    recs = recs.withColumn("_p", parsed)
    malformed = F.col("_p").isNull() | F.col(f"_p.{CORRUPT}").isNotNull() | ~F.ltrim("value").startswith("{")
    names = [f.name for f in fields]
    columns = [F.when(~malformed, F.col("_p").getField(n)).alias(n) for n in names]
    return recs.select(*columns, *_absent(names, optional), *_meta(F.when(malformed, F.col("value"))))


def read_parquet_files(spark: SparkSession, meta: list[tuple[str, str, str, bool]], optional: tuple[str, ...] = ()) -> DataFrame:
    """Parquet files as they are (typed columns; files may differ in columns), numbered by row in each file."""
    # pandas writes nanosecond timestamps, which Spark's reader refuses: read them as epoch nanoseconds,
    # which the rules parse by their digits like any epoch number
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    frame = spark.read.option("mergeSchema", "true").parquet(*[m[0] for m in meta])
    names = list(frame.columns)
    return (
        frame.select(
            *[F.col(f"`{c}`") for c in names],
            F.col("_metadata.file_path").alias("_path"),
            (F.col("_metadata.row_index") + 1).alias("_row"),
        )
        .join(_meta_frame(spark, meta), "_path")
        .select(*[F.col(f"`{c}`") for c in names], *_absent(names, optional), *_meta(F.lit(None).cast("string")))
    )


def read_format(
    spark: SparkSession, meta: list[tuple[str, str, str, bool]], fmt: str, optional: tuple[str, ...] = ()
) -> DataFrame:
    """The records of JSON lines or Parquet files (CSV goes by header groups: ``parse_files``)."""
    if fmt == "jsonl":
        return parse_json_files(spark, meta, optional)
    if fmt == "parquet":
        return read_parquet_files(spark, meta, optional)
    raise RawReadError(f"no reader for format {fmt!r}")


def read_local(
    spark: SparkSession, paths: list[Path], optional: tuple[str, ...] = (), dialect: Dialect = COMMA, fmt: str = "csv"
) -> DataFrame:
    """Local files (CSV plain or gzip, JSON lines, Parquet) read as ``read`` reads RAW: for a dry run on a user's files."""
    one_file_per_task(spark, [RawFile(str(p), "", p.stat().st_size, "") for p in paths])
    if fmt != "csv":
        meta = [(f"file:{p.resolve()}", p.name, date.today().isoformat(), False) for p in paths]
        return read_format(spark, meta, fmt, optional)
    groups: dict[tuple[str, ...], list[Path]] = defaultdict(list)
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
            first = next(csv.reader(fh, delimiter=dialect.delimiter, quotechar=dialect.quote), [])
            groups[tuple(name.strip() for name in first)].append(path)
    names = columns_of(groups, optional)  # type: ignore[arg-type]
    frames = [
        parse_files(
            spark, [(f"file:{p.resolve()}", p.name, date.today().isoformat(), False) for p in group], header, names, True, dialect
        )
        for header, group in groups.items()
    ]
    return functools.reduce(DataFrame.unionByName, frames)


def read(
    spark: SparkSession,
    cfg: S3Config,
    files: list[RawFile],
    optional: tuple[str, ...] = (),
    dialect: Dialect = COMMA,
    fmt: str = "csv",
) -> DataFrame:
    """The files' columns (``columns_of``) + ``_ingest_date, _file, _malformed, _row, _correction`` of every
    record of ``files``, which are in the format ``fmt`` (csv, jsonl, parquet)."""
    use_s3a(spark, cfg)  # the session may have been built for other settings (tests, benchmarks)
    verify_checksums(spark, cfg, files)
    one_file_per_task(spark, files)
    if fmt != "csv":
        out = read_format(spark, [(s3a_path(cfg, f.key), f.key, f.ingest_date, f.correction) for f in files], fmt, optional)
    else:
        groups = headers(cfg, files, dialect)
        names = columns_of(groups, optional)
        frames = [_parse(spark, cfg, header, group, names, dialect) for header, group in groups.items()]
        out = functools.reduce(DataFrame.unionByName, frames)
    # one task per file is right for numbering lines, not for what follows (hundreds of small daily
    # files): merge them into ~16 MB of gzip'd CSV per task, at least two tasks per core. Coalescing
    # is narrow, so every file is still numbered in its own scan partition.
    tasks = max(2 * spark.sparkContext.defaultParallelism, sum(f.bytes for f in files) // (16 << 20))
    return out.coalesce(tasks)
