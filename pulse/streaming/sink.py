"""One micro-batch of Kafka messages -> judged by the cleaning rules -> ClickHouse, idempotently.

Spark parses each message with an explicit schema and runs the *same* rule expressions as the
batch job (``pulse.staging.rules.check_rows``: a message that is not JSON is a ``malformed_line``),
plus the stream's own ``too_late``: an event that reached Kafka more than the configured lateness
after it happened (Kafka's record timestamp is fixed at produce time, so the verdict is the same
on every replay). Copies of an event_id are ``duplicate_event_id``: inside the batch the lowest
offset wins; across batches the copy loses to an event already stored by an *earlier* batch
(``batch_id < this one``, so a replayed batch never mistakes its own rows for copies). A copy is
looked for in the minutes of the batch's events: a re-sent event carries its original event_time.

The driver then writes the batch (see ``tables`` for why a replay changes nothing), commits the
batch's end offsets to the ``pulse-realtime`` consumer group (so Kafka tools and ``pulse status``
see the lag; Spark itself resumes from its checkpoint), and records the batch in the ledger.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.external import ExternalData
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from pulse.config import Settings
from pulse.domain import RAW_COLUMNS
from pulse.sources import spec as specs
from pulse.sources.compile import compile_spec
from pulse.staging.rules import check_rows
from pulse.streaming import tables

CONSUMER_GROUP = "pulse-realtime"
# the JSON fields of a message (all read as text: the rules judge types, as for CSV)
MESSAGE_FIELDS = ["event_id", "event_time", "user_id", "session_id", "event_type", "product_id", "price", "currency",
                  "platform", "country"]  # fmt: skip
FIELD_OF_COLUMN = {"user_session": "session_id"}  # RAW column -> message field, where the names differ
CORRUPT = "_corrupt"

LOG = logging.getLogger("pulse.kafka")  # librdkafka's own lines go to logging, not the terminal


def _checked(raw: DataFrame, spec: specs.Spec) -> DataFrame:
    """The stream carries Pulse's columns as JSON: the batch job's spec compiler and rules judge them."""
    compiled = compile_spec(raw.sparkSession, spec, raw, inputs=RAW_COLUMNS)
    return check_rows(raw, compiled, passthrough=["_payload", "partition", "_produced_at"])


def judge(messages: DataFrame, lateness_minutes: int, spec: specs.Spec | None = None) -> DataFrame:
    """Kafka rows (value, topic, partition, offset, timestamp) -> one row per message with the
    normalised fields, ``rule``/``detail`` (NULL when accepted) and the message as it came."""
    schema = ", ".join(f"{f} string" for f in MESSAGE_FIELDS) + f", {CORRUPT} string"
    parsed = F.from_json("_payload", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    msg = messages.select(
        F.col("value").cast("string").alias("_payload"),
        "partition",
        "offset",
        F.col("timestamp").alias("_produced_at"),
    ).withColumn("_m", parsed)
    malformed = F.col("_m").isNull() | F.col(f"_m.{CORRUPT}").isNotNull()
    present = set(MESSAGE_FIELDS)
    raw = msg.select(
        *[
            F.when(~malformed, F.col(f"_m.{FIELD_OF_COLUMN.get(c, c)}")).alias(c)
            if FIELD_OF_COLUMN.get(c, c) in present
            else F.lit(None).cast("string").alias(c)
            for c in RAW_COLUMNS
        ],
        F.date_format("_produced_at", "yyyy-MM-dd").alias("_ingest_date"),
        F.concat(F.lit("kafka:"), F.col("partition")).alias("_file"),
        F.when(malformed, F.col("_payload")).alias("_malformed"),
        F.col("offset").alias("_row"),
        F.lit(False).alias("_correction"),
        "_payload",
        "partition",
        "_produced_at",
    )
    checked = _checked(raw, spec or specs.load("open_events"))
    too_late = F.col("n_event_ts") < F.col("_produced_at") - F.expr(f"INTERVAL {int(lateness_minutes)} MINUTES")
    checked = checked.withColumn(
        "detail",
        F.when(F.col("rule").isNull() & too_late, F.concat(F.lit("event_time="), F.col("n_event_ts").cast("string"))).otherwise(
            F.col("detail")
        ),
    ).withColumn("rule", F.when(F.col("rule").isNull() & too_late, F.lit("too_late")).otherwise(F.col("rule")))
    return checked.select(
        "rule",
        "detail",
        F.col("n_event_id").alias("event_id"),
        F.xxhash64("n_event_id").alias("event_key"),
        F.col("n_event_ts").alias("event_time"),
        F.date_trunc("minute", "n_event_ts").alias("minute"),
        F.to_date("n_event_ts").alias("day"),
        F.col("n_user_id").alias("user_id"),  # text, as the spec gives it
        F.col("n_user_session").alias("session_id"),
        F.col("n_event_type").alias("event_type"),
        F.col("n_product_id").alias("product_id"),
        F.col("n_price").alias("price"),
        F.col("n_currency").alias("currency"),
        F.col("n_price_usd").alias("price_usd"),
        F.col("n_platform").alias("platform"),
        F.col("n_country").alias("country"),
        F.col("partition").alias("kafka_partition"),
        F.col("_row").alias("kafka_offset"),
        F.col("_produced_at").alias("produced_at"),
        F.col("_payload").alias("payload"),
    )


class RealtimeSink:
    """``foreachBatch`` target: called on the driver with each micro-batch and its id."""

    def __init__(self, settings: Settings, query_id: str = "") -> None:
        self.settings = settings
        self.lateness = settings.stream.lateness_minutes
        self.spec = specs.load(settings.stream.spec)  # a wrong spec fails here, before the query starts
        self.query_id = query_id
        self._ch: Any = None
        self._committer: Any = None
        self.last: dict = {}

    @property
    def ch(self) -> Any:
        if self._ch is None:
            tables.ensure(self.settings)
            self._ch = tables.client(self.settings)
        return self._ch

    def __call__(self, messages: DataFrame, batch_id: int) -> None:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        batch = judge(messages, self.lateness, self.spec).toArrow()
        ends: dict[int, int] = {}  # partition -> last offset of the batch
        if batch.num_rows:
            batch = self._mark_copies(batch, batch_id)
            self._write(batch, batch_id)
            last = batch.group_by("kafka_partition").aggregate([("kafka_offset", "max")])
            ends = dict(zip(last["kafka_partition"].to_pylist(), last["kafka_offset_max"].to_pylist(), strict=True))
            self._commit_offsets(ends)
        self._record(batch, batch_id, started, ends)
        self.last = {"batch_id": batch_id, "rows": batch.num_rows, "seconds": round(time.perf_counter() - t0, 3)}

    def _token(self, batch_id: int, table: str) -> dict:
        return {"insert_deduplication_token": f"{self.query_id}:{batch_id}:{table}"}

    def _mark_copies(self, batch: pa.Table, batch_id: int) -> pa.Table:
        """Accepted events whose event_id came earlier become ``duplicate_event_id``: earlier in this
        batch (lower partition/offset; a user's events share a partition), or stored by an earlier batch.
        Done here on the batch's Arrow table: a window in Spark would cost a shuffle per micro-batch."""
        accepted = pc.is_null(batch["rule"])
        idx = pc.indices_nonzero(accepted)
        if not len(idx):
            return batch
        ok = batch.take(idx).select(["event_id", "event_key", "minute", "kafka_partition", "kafka_offset"])
        order = pc.sort_indices(ok, [("event_id", "ascending"), ("kafka_partition", "ascending"), ("kafka_offset", "ascending")])
        ids = ok["event_id"].take(order)
        repeat = pc.equal(ids[1:], ids[:-1]) if len(ids) > 1 else pa.array([], pa.bool_())
        copies = set(idx.take(order).to_numpy()[1:][repeat.to_numpy(zero_copy_only=False)].tolist())
        minutes = sorted({m.strftime("%Y-%m-%d %H:%M:%S") for m in pc.unique(ok["minute"]).to_pylist()})
        keys = pc.unique(ok["event_key"]).to_numpy()
        stored = self.ch.query(  # candidates by 64-bit key (the primary index), confirmed by event_id
            "SELECT DISTINCT event_id FROM realtime_events WHERE minute IN {minutes:Array(DateTime)} "
            "AND batch_id < {batch:Int64} AND event_key IN (SELECT key FROM batch_keys)",
            parameters={"minutes": minutes, "batch": batch_id},
            external_data=ExternalData(
                file_name="batch_keys", data="\n".join(map(str, keys.tolist())).encode(), fmt="TSV", structure=["key Int64"]
            ),
        ).result_columns
        if stored and stored[0]:
            seen = pc.is_in(ok["event_id"], pa.array(stored[0], pa.string())).to_numpy(zero_copy_only=False)
            copies.update(idx.to_numpy()[seen].tolist())
        if not copies:
            return batch
        mask = pa.array([i in copies for i in range(batch.num_rows)], pa.bool_())
        detail = pc.binary_join_element_wise(pa.scalar("event_id="), batch["event_id"], "")
        batch = batch.set_column(
            batch.schema.get_field_index("rule"), "rule", pc.if_else(mask, "duplicate_event_id", batch["rule"])
        )
        return batch.set_column(batch.schema.get_field_index("detail"), "detail", pc.if_else(mask, detail, batch["detail"]))

    def _write(self, batch: pa.Table, batch_id: int) -> None:
        ok = batch.filter(pc.is_null(batch["rule"]))
        bad = batch.filter(pc.is_valid(batch["rule"]))
        if bad.num_rows:
            minute = pc.floor_temporal(bad["produced_at"], unit="minute")
            quarantine = pa.table(
                {
                    "kafka_partition": bad["kafka_partition"],
                    "kafka_offset": bad["kafka_offset"],
                    "produced_at": bad["produced_at"],
                    "minute": minute,
                    "reason": bad["rule"],
                    "detail": pc.fill_null(bad["detail"], ""),
                    "payload": bad["payload"],
                    "batch_id": pa.array([batch_id] * bad.num_rows, pa.int64()),
                }
            )
            self.ch.insert_arrow("realtime_quarantine", quarantine, settings=self._token(batch_id, "quarantine"))
        if not ok.num_rows:
            return
        events = ok.drop_columns(["rule", "detail", "payload"]).append_column(
            "batch_id", pa.array([batch_id] * ok.num_rows, pa.int64())
        )
        self.ch.insert_arrow("realtime_events", events, settings=self._token(batch_id, "events"))
        counts = ok.group_by(["minute", "event_type"]).aggregate([("event_id", "count")])
        counts = pa.table(
            {
                "minute": counts["minute"],
                "event_type": counts["event_type"],
                "batch_id": pa.array([batch_id] * counts.num_rows, pa.int64()),
                "events": counts["event_id_count"].cast(pa.uint64()),
            }
        )
        self.ch.insert_arrow("realtime_minute_counts", counts, settings=self._token(batch_id, "counts"))
        activity = ok.group_by(["minute", "day", "event_type", "user_id"]).aggregate([("event_time", "min")])
        activity = activity.rename_columns(["minute", "day", "event_type", "user_id", "event_time"])
        self.ch.insert_arrow("realtime_activity_input", activity)  # sets: a replay adds nothing

    def _commit_offsets(self, ends: dict[int, int]) -> None:
        from confluent_kafka import Consumer, TopicPartition

        if self._committer is None:
            self._committer = Consumer(
                {**self.settings.kafka.client_config(), "group.id": CONSUMER_GROUP, "enable.auto.commit": False},
                logger=LOG,
            )
        offsets = [TopicPartition(self.settings.stream.topic, p, o + 1) for p, o in ends.items()]
        with contextlib.suppress(Exception):  # visibility only: Spark's checkpoint is what resumes the stream
            self._committer.commit(offsets=offsets, asynchronous=False)

    def _record(self, batch: pa.Table, batch_id: int, started: datetime, ends: dict[int, int]) -> None:
        accepted = pc.sum(pc.is_null(batch["rule"]).cast(pa.int64())).as_py() if batch.num_rows else 0
        quarantined = batch.num_rows - accepted
        offsets = ",".join(f"{p}:{o}" for p, o in sorted(ends.items()))
        self.ch.insert(
            "realtime_batches",
            [
                [
                    batch_id,
                    self.query_id,
                    batch.num_rows,
                    batch.num_rows - quarantined,
                    quarantined,
                    pc.max(batch["produced_at"]).as_py() if batch.num_rows else None,
                    started,
                    datetime.now(UTC),
                    offsets,
                ]
            ],
            column_names=[
                "batch_id",
                "query_id",
                "messages",
                "events",
                "quarantined",
                "max_produced_at",
                "started_at",
                "finished_at",
                "offsets",
            ],
        )
