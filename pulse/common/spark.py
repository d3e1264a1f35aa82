"""One SparkSession builder for every Spark job (master URL from config: local or a cluster)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    with jvm_output_to(settings.spark_log):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    use_s3a(spark, settings.s3)
    return spark


@contextmanager
def jvm_output_to(path: Path) -> Iterator[None]:
    """Start the JVM (and its Python workers) with stderr into ``path``: its start-up noise stays out of
    the terminal. Errors still reach the caller as Python exceptions (Py4J carries the Java trace); when
    the JVM does not start at all, the end of its log is shown."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with path.open("ab") as log:
            os.dup2(log.fileno(), 2)  # the gateway's child process inherits fd 2 as it is now
        yield
    except Exception:
        os.dup2(saved, 2)
        tail = path.read_text(errors="replace").splitlines()[-20:]
        print("\n".join(["the Spark JVM failed; the end of " + str(path) + ":", *tail]), file=sys.stderr)
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def progress_line(label: str, active: list, elapsed: float) -> str | None:
    """One progress line for Spark's active stages (its status store's ``StageData``). Rows read count a
    stage's input from files and what it read from the shuffle before it: a stage after a dedup or a join
    reads only the latter. A stage over a persisted frame (the COPY) is counted in neither."""
    if not active:
        return None
    tasks = " ".join(f"stage {st.stageId()} {st.numCompleteTasks()}/{st.numTasks()}" for st in active)
    rows = sum(st.inputRecords() + st.shuffleReadRecords() for st in active)
    read = f" · {rows:,} rows read" if rows else ""
    return f"    {label}: {tasks} tasks{read} · {elapsed:.0f} s"


class _Watch(threading.Thread):
    """Polls Spark's status store: tasks done / total of the running stages, rows read, elapsed."""

    def __init__(self, spark, label: str, every: float, tty: bool) -> None:
        super().__init__(daemon=True, name=f"spark-progress-{label}")
        self.store, self.label, self.every, self.tty = spark.sparkContext._jsc.sc().statusStore(), label, every, tty
        self.started = time.perf_counter()
        self.stopping = threading.Event()
        self.shown = False

    def line(self) -> str | None:
        stages = self.store.activeStages()
        active = [stages.apply(i) for i in range(stages.size())]
        return progress_line(self.label, active, time.perf_counter() - self.started)

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                text = self.line()
            except Exception:  # the JVM went away (the job failed, the session stopped): the job says why
                return
            if text:
                self.shown = True
                print(f"\r{text}\033[K" if self.tty else text, end="" if self.tty else "\n", file=sys.stderr, flush=True)


@contextmanager
def progress(spark, label: str) -> Iterator[None]:
    """Progress of the Spark jobs run inside: a line updated in place every second on a terminal, a line
    every 15 s otherwise (nothing for a step shorter than that)."""
    tty = sys.stderr.isatty()
    watch = _Watch(spark, label, 1.0 if tty else 15.0, tty)
    watch.start()
    try:
        yield
    finally:
        watch.stopping.set()
        watch.join(timeout=5)
        if watch.shown and tty:
            print(file=sys.stderr, flush=True)


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
