"""One SparkSession builder for every Spark job (master URL from config: local or a cluster)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pulse.config import S3Config, Settings
from pulse.jvm import SPARK as SPARK_JARS

LOG4J = Path(__file__).with_name("log4j2.properties")


def session(settings: Settings, app: str, extra_conf: dict[str, str] | None = None):
    # the executors' Python must be the one that has pulse, boto3 and pyarrow installed
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if settings.spark.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local mode: bind loopback, no hostname warning
    from pyspark.sql import SparkSession

    local_dir = settings.home / "spark"
    local_dir.mkdir(parents=True, exist_ok=True)
    cfg = settings.spark
    builder = (
        SparkSession.builder.appName(app)
        .master(cfg.master)
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.local.dir", str(local_dir))
        .config("spark.sql.warehouse.dir", str(local_dir / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={local_dir} -Dlog4j2.configurationFile=file:{LOG4J}")
        .config("spark.python.worker.reuse", "true")
        # cached rows are short-lived; building compressed column batches cost more than the memory saved
        .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
    )
    # Maven-resolved connectors (S3A, Kafka) from .jvm/spark, plus the Postgres JDBC driver: passed as
    # files, so a cluster's executors get them from the driver and nothing is downloaded at job start
    jars = [str(p) for p in SPARK_JARS.jars()]
    if Path(cfg.jdbc_jar).exists():
        jars.append(cfg.jdbc_jar)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))

    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    use_s3a(spark, settings.s3)
    return spark


def use_s3a(spark, s3: S3Config) -> None:
    """Point Spark's S3A connector at this S3 (also on a session that already exists). Hadoop caches
    one S3A client per bucket: when the endpoint or keys change, the cached clients are dropped."""
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    changed = False
    for key, value in s3a_conf(s3).items():
        key = key.removeprefix("spark.hadoop.")
        if hadoop.get(key) != value:
            hadoop.set(key, value)
            changed = True
    if changed:
        spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.closeAll()


def s3a_conf(s3: S3Config) -> dict[str, str]:
    """Spark's own S3 connector (hadoop-aws) on the configured endpoint: path-style, keys from the
    config (Spark redacts them in its UI and event logs; they never go into URLs)."""
    return {
        "spark.hadoop.fs.s3a.endpoint": s3.url,
        "spark.hadoop.fs.s3a.endpoint.region": s3.region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(s3.url.startswith("https")).lower(),
        "spark.hadoop.fs.s3a.access.key": s3.access_key,
        "spark.hadoop.fs.s3a.secret.key": s3.secret_key,
        "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "spark.hadoop.fs.s3a.change.detection.mode": "none",  # RAW objects are immutable (manifests carry sha256)
    }
