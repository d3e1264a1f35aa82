"""A Spark 4 Python data source that reads RAW CSV objects straight from S3.

pyspark ships neither hadoop-aws nor an AWS SDK (no ``s3a://``) and Maven Central is out of
reach, so executors fetch objects with boto3 and hand Spark Arrow batches. Objects are packed
into a few Spark partitions by size; the object list comes from the RAW manifests, so uncommitted files are never read.
Lines with the wrong number of fields are not dropped: they come out as rows whose
``_malformed`` column holds the raw text, for the quarantine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

from pulse.domain import RAW_COLUMNS

SOURCE_NAME = "pulse_raw_csv"
META_COLUMNS = ["_ingest_date", "_file", "_malformed"]
SCHEMA = ", ".join(f"{c} string" for c in RAW_COLUMNS + META_COLUMNS) + ", _row long, _correction boolean"


class RawFilesPartition(InputPartition):
    """Several RAW objects read by one task: small daily files would otherwise cost a task each."""

    def __init__(self, files: list[tuple[str, str, str, bool]]) -> None:
        super().__init__(files)
        self.files = files  # (key, ingest_date, sha256 from the manifest, is a correction)


def pack(files: list[dict], n_partitions: int) -> list[list[tuple[str, str, str, bool]]]:
    """Spread files over at most n_partitions bins, largest first into the lightest bin."""
    bins: list[list[tuple[str, str, str, bool]]] = [[] for _ in range(max(1, min(n_partitions, len(files))))]
    weight = [0] * len(bins)
    for f in sorted(files, key=lambda f: (-f["bytes"], f["key"])):
        i = weight.index(min(weight))
        bins[i].append((f["key"], f["ingest_date"], f["sha256"], bool(f.get("correction"))))
        weight[i] += f["bytes"]
    return [sorted(b) for b in bins if b]


def parse_csv(body: bytes, key: str, ingest_date: str, correction: bool = False):
    """Parse one RAW object into an Arrow table of RAW_COLUMNS + meta columns (all rows kept)."""
    import gzip
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    if key.endswith(".gz"):
        body = gzip.decompress(body)
    bad: list[tuple[int | None, str]] = []

    def on_invalid(row) -> str:
        bad.append((row.number, row.text))
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(body),
        # one thread: the task is the unit of parallelism, and only then does pyarrow report the
        # line number of a malformed row, which the quarantine keeps
        read_options=pacsv.ReadOptions(block_size=16 << 20, use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in RAW_COLUMNS},
            include_columns=RAW_COLUMNS,
            include_missing_columns=True,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    n, m = table.num_rows, len(bad)
    # `_row` is the line in the file (header = line 1): the malformed lines' numbers come from the
    # parser, every other line keeps its place in order
    bad_lines = {number for number, _ in bad if number is not None}
    lines = (ln for ln in range(2, n + m + 2) if ln not in bad_lines)
    table = table.append_column("_ingest_date", pa.array([ingest_date] * n, pa.string()))
    table = table.append_column("_file", pa.array([key] * n, pa.string()))
    table = table.append_column("_malformed", pa.nulls(n, pa.string()))
    table = table.append_column("_row", pa.array([next(lines) for _ in range(n)], pa.int64()))
    table = table.append_column("_correction", pa.array([correction] * n, pa.bool_()))
    if bad:
        spare = iter(sorted(set(range(2, n + m + 2)) - set(table.column("_row").to_pylist()) - bad_lines))
        extra = {c: pa.nulls(m, pa.string()) for c in RAW_COLUMNS}
        extra.update(
            {
                "_ingest_date": pa.array([ingest_date] * m, pa.string()),
                "_file": pa.array([key] * m),
                "_malformed": pa.array([text for _, text in bad], pa.string()),
                "_row": pa.array([number if number is not None else next(spare) for number, _ in bad], pa.int64()),
                "_correction": pa.array([correction] * m, pa.bool_()),
            }
        )
        table = pa.concat_tables([table, pa.table(extra, schema=table.schema)])
    return table


class RawCsvReader(DataSourceReader):
    def __init__(self, options: dict[str, str]) -> None:
        self.options = options

    def partitions(self) -> list[InputPartition]:
        files = json.loads(self.options["files"])
        return [RawFilesPartition(b) for b in pack(files, int(self.options.get("partitions", "4")))]

    def read(self, partition: RawFilesPartition) -> Iterator:
        from pulse.common import s3 as s3util

        o = self.options
        s3 = s3util.connect(o["endpoint"], o["access_key"], o["secret_key"], o["region"], retries=5)
        for key, ingest_date, sha256, correction in partition.files:
            body = s3.get_object(Bucket=o["bucket"], Key=key)["Body"].read()
            if hashlib.sha256(body).hexdigest() != sha256:
                raise ValueError(
                    f"RAW object s3://{o['bucket']}/{key} does not match the sha256 in its manifest: it was changed "
                    "after commit (RAW is immutable); restore it or load the data as a new ingest date"
                )
            yield from parse_csv(body, key, ingest_date, correction).to_batches(max_chunksize=65_536)


class RawCsvDataSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def schema(self) -> str:
        return SCHEMA

    def reader(self, schema) -> DataSourceReader:
        return RawCsvReader(dict(self.options))
