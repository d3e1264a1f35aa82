"""``pulse stream run``: the Spark Structured Streaming query, Kafka -> ``RealtimeSink`` -> ClickHouse.

The Kafka source reads the topic with SASL from the configuration; the checkpoint (local or
``s3a://``) keeps the offsets of every planned batch, so after a crash Spark replays the batch it
had not committed with exactly the same offsets, and the sink's idempotence makes that harmless.
Progress (rates, batch duration, offsets behind) goes to ``$PULSE_HOME/run/stream-progress.json``
for ``pulse status``. ``python -m pulse.streaming.job`` is the service form (``pulse services up stream``).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

from pulse.common.progress import say
from pulse.common.spark import session
from pulse.config import Settings, settings
from pulse.streaming import tables
from pulse.streaming.sink import RealtimeSink
from pulse.streaming.topic import ensure_topic


def _listener(path: Path, sink: RealtimeSink):
    from pyspark.sql.streaming import StreamingQueryListener

    class WriteProgress(StreamingQueryListener):
        def onQueryStarted(self, event) -> None:
            pass

        def onQueryProgress(self, event) -> None:
            p = json.loads(event.progress.json)
            source = (p.get("sources") or [{}])[0]
            self._write(
                {
                    "batch_id": p.get("batchId"),
                    "timestamp": p.get("timestamp"),
                    "input_rows": p.get("numInputRows"),
                    "input_rate": round(p.get("inputRowsPerSecond") or 0.0),
                    "processed_rate": round(p.get("processedRowsPerSecond") or 0.0),
                    "batch_ms": (p.get("durationMs") or {}).get("triggerExecution"),
                    "offsets_behind": (source.get("metrics") or {}).get("maxOffsetsBehindLatest"),
                    "sink": sink.last,
                }
            )

        def onQueryIdle(self, event) -> None:
            # no new messages: still a live query, and caught up
            try:
                last = json.loads(path.read_text())
            except (OSError, ValueError):
                last = {"batch_id": None, "batch_ms": None, "sink": {}}
            self._write({**last, "input_rows": 0, "input_rate": 0, "processed_rate": 0, "offsets_behind": 0})

        def _write(self, summary: dict) -> None:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(summary))
            tmp.replace(path)

        def onQueryTerminated(self, event) -> None:
            pass

    return WriteProgress()


def streaming_session(s: Settings, sink: RealtimeSink):
    spark = session(
        s,
        "pulse-realtime",
        {
            # the micro-batches are small: a few shuffle partitions, not the batch job's
            "spark.sql.shuffle.partitions": "2",
            # the Kafka source's JAAS option carries the password: keep it out of plans and logs
            "spark.sql.redaction.options.regex": "(?i)url|jaas",
        },
    )
    spark.streams.addListener(_listener(s.stream_progress_file, sink))
    return spark


def start(s: Settings, spark=None, sink: RealtimeSink | None = None):
    """Start the query (non-blocking); returns (spark, query)."""
    cfg = s.stream
    ensure_topic(s)
    tables.ensure(s)
    sink = sink or RealtimeSink(s)
    spark = spark or streaming_session(s, sink)
    if not cfg.checkpoint.startswith("s3a://"):
        Path(cfg.checkpoint).mkdir(parents=True, exist_ok=True)
    source = (
        spark.readStream.format("kafka")
        .options(**s.kafka.spark_options())
        .option("subscribe", cfg.topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", str(cfg.max_offsets_per_trigger))
        # a broker restart takes seconds: keep asking for offsets instead of failing the query
        .option("fetchOffset.numRetries", "60")
        .option("fetchOffset.retryIntervalMs", "1000")
        .load()
    )
    query = (
        source.writeStream.queryName(cfg.query_name)
        .trigger(processingTime=f"{cfg.trigger_seconds} seconds")
        .option("checkpointLocation", cfg.checkpoint)
        .foreachBatch(sink)
        .start()
    )
    sink.query_id = str(query.id)  # the same across restarts from one checkpoint
    return spark, query


def run(s: Settings, timeout: float | None = None) -> None:
    """Run in the foreground until SIGTERM/Ctrl-C (or ``timeout`` seconds). A query that fails (a
    broker away for minutes, ClickHouse down) is restarted from its checkpoint with a growing pause:
    bad *messages* never fail it, they are quarantined."""
    sink = RealtimeSink(s)
    spark = streaming_session(s, sink)
    deadline = None if timeout is None else time.monotonic() + timeout
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pause, reported = 5.0, None
    say(f"==> streaming {s.stream.topic} -> ClickHouse {s.clickhouse.realtime_database} (checkpoint {s.stream.checkpoint})")
    try:
        while not stop.is_set():
            _, query = start(s, spark, sink)
            while not stop.is_set() and query.isActive and (deadline is None or time.monotonic() < deadline):
                stop.wait(5)
                p = query.lastProgress
                if p and p["numInputRows"] and p["batchId"] != reported:
                    reported, pause = p["batchId"], 5.0
                    say(
                        f"    batch {p['batchId']}: {p['numInputRows']:,} messages, "
                        f"{p.get('processedRowsPerSecond') or 0:,.0f}/s, {p['durationMs'].get('triggerExecution', 0)} ms"
                    )
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not stop.is_set() and query.exception() is not None:
                say(f"    query failed: {str(query.exception()).splitlines()[0][:300]}; restarting in {pause:.0f}s")
                stop.wait(pause)
                pause = min(pause * 2, 60.0)
    finally:
        for query in spark.streams.active:
            query.stop()  # graceful: the running batch finishes, the checkpoint stays consistent
        spark.stop()


if __name__ == "__main__":
    run(settings())
    sys.exit(0)
