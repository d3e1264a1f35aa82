"""The Maven-resolved JVM pieces inside Spark: Spark's own S3A connector reads the RAW layer from the
local S3 with the configured keys, and Spark's Kafka source reads the local broker over SASL."""

from __future__ import annotations

import gzip
import json
from datetime import date

import pytest
from confluent_kafka import Producer

from pulse.common.spark import use_s3a
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.jvm import check_spark_extras
from pulse.lake import raw
from pulse.services.kafka import Kafka

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
    use_s3a(spark, stack)
    prefix = f"s3a://{stack.s3.raw_bucket}/{raw.source_prefix(stack.s3, SOURCE)}"
    lines = spark.read.text(f"{prefix}/ingest_date=*/*.csv.gz")
    assert lines.count() == expected and expected > len(files)
    # the keys come from the configuration, not the URL: a wrong secret is refused by S3
    try:
        spark.sparkContext._jsc.hadoopConfiguration().set("fs.s3a.secret.key", "wrong")
        spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.closeAll()  # drop the cached, authenticated client
        with pytest.raises(Exception, match=r"(?i)403|signature|forbidden|denied"):
            spark.read.text(f"{prefix}/ingest_date=*/*.csv.gz").count()
    finally:
        use_s3a(spark, stack)
        spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.closeAll()


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
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{cfg.user}" password="{cfg.password}";'
    )
    frame = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", cfg.servers)
        .option("kafka.security.protocol", cfg.security_protocol)
        .option("kafka.sasl.mechanism", cfg.mechanism)
        .option("kafka.sasl.jaas.config", jaas)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    values = sorted(json.loads(r.value)["i"] for r in frame.selectExpr("CAST(value AS STRING) AS value").collect())
    assert values == list(range(50))
