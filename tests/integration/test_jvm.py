"""The Maven-resolved JVM pieces inside Spark: Spark's own S3A connector reads the RAW layer from the
local S3 with the configured keys, and Spark's Kafka source reads the local broker over SASL."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import date

import pytest
from confluent_kafka import Producer
from py4j.protocol import Py4JJavaError

from pulse.common.spark import use_s3a
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.domain import RAW_COLUMNS
from pulse.jvm import check_spark_extras
from pulse.lake import raw
from pulse.services.kafka import Kafka
from pulse.staging import raw_reader

pytestmark = pytest.mark.integration
SOURCE = "jvmtest"


def test_jars_line_up_with_pyspark():
    assert "hadoop-aws" in check_spark_extras()


def test_spark_reads_raw_through_s3a_with_configured_keys(stack, spark, tmp_path):
    out = tmp_path / SOURCE
    generate_dataset(out, GenParams(n_events=3_000, days=5, end_date=date(2026, 10, 31), seed=3), DirtParams(rate=0.02))
    raw.upload_dataset(stack.s3, out, SOURCE)
    files = sorted(out.rglob("*.csv.gz"))
    expected = 0
    for path in files:  # lines as Hadoop's line reader splits them (\n, \r\n or \r)
        with gzip.open(path, "rb") as fh:
            expected += len(fh.read().replace(b"\r\n", b"\n").replace(b"\r", b"\n").rstrip(b"\n").split(b"\n"))
    use_s3a(spark, stack.s3)
    prefix = f"s3a://{stack.s3.raw_bucket}/{raw.source_prefix(stack.s3, SOURCE)}"
    lines = spark.read.text(f"{prefix}/ingest_date=*/*.csv.gz")
    assert lines.count() == expected and expected > len(files)
    # the keys come from the configuration, not the URL: a wrong secret is refused by S3
    try:
        spark.sparkContext._jsc.hadoopConfiguration().set("fs.s3a.secret.key", "wrong")
        spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.closeAll()  # drop the cached, authenticated client
        # Hadoop's S3A maps S3's 403 (SignatureDoesNotMatch) to java.nio.file.AccessDeniedException
        with pytest.raises(Py4JJavaError, match=r"(?s)java\.nio\.file\.AccessDeniedException.*(403|SignatureDoesNotMatch)"):
            spark.read.text(f"{prefix}/ingest_date=*/*.csv.gz").count()
    finally:
        use_s3a(spark, stack.s3)
        spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.closeAll()


def _expected_rows(key: str, text: str) -> dict[int, dict]:
    """An independent reading of one file with Python's csv module: line number -> fields by name,
    or {"_malformed": line} when the field count differs from the header's."""
    lines = text.replace("\r\n", "\n").split("\n")
    header = next(csv.reader([lines[0]]))
    out = {}
    for number, line in enumerate(lines[1:], start=2):
        if line == "":
            continue
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            out[number] = {"_malformed": line}
        else:
            row = dict(zip(header, fields, strict=True))
            out[number] = {c: row.get(c) for c in RAW_COLUMNS} | {"_malformed": None}
    return out


def test_cleaning_reader_keeps_every_line_with_its_file_and_line_number(stack, spark, tmp_path):
    good = "e1,2026-10-01T12:00:00Z,view,1,2,a.b,x,1.00,42,s1,USD,ios,US,5.0,organic"
    files = {
        # Pulse's own header: short, long and HTML lines, a quoted comma, an empty field, a blank line, CRLF
        "part-00000.csv.gz": ",".join(f'"{c}"' for c in RAW_COLUMNS)
        + "\r\n"
        + "\r\n".join([good, "broken,line", good + ",,extra", "<html>502</html>", "", good.replace("a.b,x", '"a,b",')])
        + "\r\n",
        # a user's file: fewer columns, another order (``pulse ingest`` only renames the header)
        "part-00001.csv.gz": "user_id,event_type,event_time,price\n7,purchase,2026-10-01 10:00:00 UTC,3.50\n8,view\n",
    }
    part = tmp_path / "reader" / "ingest_date=2026-10-01"
    part.mkdir(parents=True)
    for name, text in files.items():
        (part / name).write_bytes(gzip.compress(text.encode()))
    raw.upload_dataset(stack.s3, tmp_path / "reader", "readertest")
    committed = raw.list_committed(stack.s3, "readertest")
    got = {(r["_file"].rsplit("/", 1)[1], r["_row"]): r.asDict() for r in raw_reader.read(spark, stack.s3, committed).collect()}
    expected = {(name, n): row for name, text in files.items() for n, row in _expected_rows(name, text).items()}
    assert set(got) == set(expected)
    for key, row in expected.items():
        assert {c: got[key][c] for c in row} == row, key
        assert (got[key]["_ingest_date"], got[key]["_correction"]) == ("2026-10-01", False)
    assert got[("part-00000.csv.gz", 7)]["category_code"] == "a,b" and got[("part-00000.csv.gz", 7)]["brand"] == ""


def test_spark_reads_the_broker_with_its_kafka_source_over_sasl(stack_home, spark):
    kafka = Kafka(stack_home)
    kafka.start()
    cfg = stack_home.kafka
    topic = "jvm-spark-kafka"
    kafka.create_topic(topic, partitions=2)
    producer = Producer({**cfg.client_config(), "enable.idempotence": True})
    for i in range(50):
        producer.produce(topic, key=str(i), value=json.dumps({"i": i}))
    assert producer.flush(30) == 0
    frame = (
        spark.read.format("kafka")
        .options(**cfg.spark_options())
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    values = sorted(json.loads(r.value)["i"] for r in frame.selectExpr("CAST(value AS STRING) AS value").collect())
    assert values == list(range(50))


def test_the_progress_line_reads_spark_status_store_and_counts_shuffled_rows(spark):
    """The names the progress line calls exist on Spark's own StageData, and a stage that reads only the
    shuffle (a group-by's second stage) counts its rows."""
    from pulse.common.spark import progress_line

    sc = spark.sparkContext
    sc.setJobGroup("progress-line-test", "the progress line's test job")
    try:
        spark.range(0, 10_000, numPartitions=4).selectExpr("id % 7 as k").groupBy("k").count().collect()
    finally:  # the session is the suite's: later jobs belong to no group
        sc.setLocalProperty("spark.jobGroup.id", None)
    tracker, store = sc.statusTracker(), sc._jsc.sc().statusStore()
    stage_ids = [i for job in tracker.getJobIdsForGroup("progress-line-test") for i in tracker.getJobInfo(job).stageIds]
    stages = [store.lastStageAttempt(i) for i in stage_ids]
    after_shuffle = [st for st in stages if st.shuffleReadRecords() > 0]
    assert after_shuffle, "no stage read a shuffle"
    rows = sum(st.shuffleReadRecords() for st in after_shuffle)
    assert f"{rows:,} rows read" in progress_line("test", after_shuffle, 1.0)
