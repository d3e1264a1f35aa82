"""One SparkSession builder for every Spark job (master URL from config: local or a cluster)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pulse.config import Settings

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
    if Path(cfg.jdbc_jar).exists():
        builder = builder.config("spark.jars", cfg.jdbc_jar)
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
