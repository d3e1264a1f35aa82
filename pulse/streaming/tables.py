"""The realtime tables in ClickHouse, and why replaying a micro-batch never changes a figure.

Every table is idempotent for a batch written twice (a crash after the sink wrote and before Spark
committed the batch replays it, with the same offsets):

- ``realtime_events`` (one row per accepted event) and ``realtime_quarantine`` (one per rejected
  message) are ReplacingMergeTrees keyed by the event / the Kafka offset, and every insert carries
  ``insert_deduplication_token`` = query id + batch id + table, so a replayed insert is dropped whole.
- ``realtime_minute_counts`` holds each batch's events per (minute, type) keyed by batch id: a
  replay replaces the same row with the same number; readers sum with FINAL.
- Distinct users are *sets*, and a set does not grow when the same members are added again:
  ``realtime_minute_users`` (uniqExact state per minute and type) and ``realtime_user_days`` (one
  row per (day, user) with the first time seen, for "DAU so far") are fed through a Null table.
  Exact, not approximate, so the stream reconciles with the batch marts to the user.
- ``realtime_batches`` is the ledger, written last: what each batch read and wrote.
"""

from __future__ import annotations

from typing import Any

from pulse.common.clickhouse import client as ch_client
from pulse.common.quoting import ident
from pulse.config import Settings

DEDUP_WINDOW = "non_replicated_deduplication_window = 1000"

TABLES = {
    "realtime_events": f"""(
        event_id String, event_key Int64, event_time DateTime64(3, 'UTC'), minute DateTime('UTC'), day Date,
        user_id String, session_id String, event_type LowCardinality(String), product_id Nullable(String),
        price Nullable(Decimal(14, 2)), currency LowCardinality(String), price_usd Nullable(Decimal(14, 2)),
        platform LowCardinality(Nullable(String)), country LowCardinality(Nullable(String)),
        kafka_partition Int32, kafka_offset Int64, produced_at DateTime64(3, 'UTC'), batch_id Int64,
        visible_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree PARTITION BY day ORDER BY (minute, event_key) SETTINGS {DEDUP_WINDOW}""",
    "realtime_quarantine": f"""(
        kafka_partition Int32, kafka_offset Int64, produced_at DateTime64(3, 'UTC'), minute DateTime('UTC'),
        reason LowCardinality(String), detail String, payload String, batch_id Int64
    ) ENGINE = ReplacingMergeTree PARTITION BY toDate(minute) ORDER BY (kafka_partition, kafka_offset)
      SETTINGS {DEDUP_WINDOW}""",
    "realtime_minute_counts": """(
        minute DateTime('UTC'), event_type LowCardinality(String), batch_id Int64, events UInt64
    ) ENGINE = ReplacingMergeTree ORDER BY (minute, event_type, batch_id)""",
    "realtime_activity_input": """(
        minute DateTime('UTC'), day Date, event_type LowCardinality(String), user_id String,
        event_time DateTime64(3, 'UTC')
    ) ENGINE = Null""",
    "realtime_minute_users": """(
        minute DateTime('UTC'), event_type LowCardinality(String), users AggregateFunction(uniqExact, String)
    ) ENGINE = AggregatingMergeTree ORDER BY (minute, event_type)""",
    "realtime_user_days": """(
        day Date, user_id String, first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
    ) ENGINE = AggregatingMergeTree ORDER BY (day, user_id)""",
    "realtime_batches": """(
        batch_id Int64, query_id String, messages UInt64, events UInt64, quarantined UInt64,
        max_produced_at Nullable(DateTime64(3, 'UTC')), started_at DateTime64(3, 'UTC'),
        finished_at DateTime64(3, 'UTC'), offsets String
    ) ENGINE = ReplacingMergeTree ORDER BY batch_id""",
}

MATERIALIZED_VIEWS = {
    "realtime_minute_users_mv": """TO realtime_minute_users AS
        SELECT minute, event_type, uniqExactState(user_id) AS users FROM realtime_activity_input GROUP BY minute, event_type""",
    "realtime_user_days_mv": """TO realtime_user_days AS
        SELECT day, user_id, min(event_time) AS first_seen FROM realtime_activity_input GROUP BY day, user_id""",
}

# what dashboards and `pulse stream reconcile` read (the BI role reads this database)
VIEWS = {
    "realtime_events_per_minute": """
        SELECT c.minute AS minute, c.event_type AS event_type, c.events AS events, u.users AS users
        FROM (SELECT minute, event_type, sum(events) AS events FROM realtime_minute_counts FINAL GROUP BY minute, event_type) AS c
        LEFT JOIN (SELECT minute, event_type, uniqExactMerge(users) AS users FROM realtime_minute_users
                   GROUP BY minute, event_type) AS u USING (minute, event_type)""",
    "realtime_events_per_day": """
        SELECT toDate(minute) AS day, event_type, sum(events) AS events FROM realtime_minute_counts FINAL
        GROUP BY day, event_type""",
    "realtime_dau": "SELECT day, uniqExact(user_id) AS dau FROM realtime_user_days GROUP BY day",
    "realtime_dau_now": """
        SELECT (SELECT uniqExact(user_id) FROM realtime_user_days WHERE day = today()) AS dau_today,
               (SELECT count() FROM (SELECT user_id, min(first_seen) AS first_seen FROM realtime_user_days
                                     WHERE day = yesterday() GROUP BY user_id)
                WHERE first_seen <= now64(3) - INTERVAL 1 DAY) AS dau_yesterday_same_time""",
    "realtime_quarantine_per_minute": """
        SELECT minute, reason, count() AS messages FROM realtime_quarantine FINAL GROUP BY minute, reason""",
}


def client(settings: Settings) -> Any:
    return ch_client(settings.clickhouse, database=settings.clickhouse.realtime_database)


def ensure(settings: Settings) -> None:
    """Create the realtime database, tables and views if missing (idempotent)."""
    db = settings.clickhouse.realtime_database
    ch_client(settings.clickhouse).command(f"CREATE DATABASE IF NOT EXISTS {ident(db)}")
    ch = client(settings)
    for name, body in TABLES.items():
        ch.command(f"CREATE TABLE IF NOT EXISTS {ident(name)} {body}")
    retype_ids(ch)
    for name, body in MATERIALIZED_VIEWS.items():
        ch.command(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ident(name)} {body}")
    for name, body in VIEWS.items():
        ch.command(f"CREATE OR REPLACE VIEW {ident(name)} AS {body}")


DERIVED = ("realtime_activity_input", "realtime_minute_users", "realtime_user_days")  # fed by the views from the events
REBUILD = {
    "realtime_minute_users": (
        "SELECT minute, event_type, uniqExactState(user_id) FROM realtime_events FINAL GROUP BY minute, event_type"
    ),
    "realtime_user_days": "SELECT day, user_id, min(event_time) FROM realtime_events FINAL GROUP BY day, user_id",
}


def retype_ids(ch: Any) -> bool:
    """Tables of a release with integer user and product ids get text ids (ADR 0028): the events in place,
    the distinct-user tables rebuilt from them (a uniqExact state of integers cannot become one of text;
    the events hold every accepted event, so the rebuilt sets are the same sets). True when it did."""
    kind = ch.query(
        "SELECT type FROM system.columns WHERE database = currentDatabase() AND table = 'realtime_events' AND name = 'user_id'"
    ).result_rows
    if not kind or kind[0][0] == "String":
        return False
    ch.command(
        "ALTER TABLE realtime_events MODIFY COLUMN user_id String, MODIFY COLUMN product_id Nullable(String)",
        settings={"mutations_sync": 1},
    )
    for name in MATERIALIZED_VIEWS:
        ch.command(f"DROP VIEW IF EXISTS {ident(name)}")
    for name in DERIVED:
        ch.command(f"DROP TABLE IF EXISTS {ident(name)}")
        ch.command(f"CREATE TABLE {ident(name)} {TABLES[name]}")
    for name, select in REBUILD.items():
        ch.command(f"INSERT INTO {ident(name)} {select}")
    return True


def reset(settings: Settings) -> None:
    """Drop every realtime table (a new checkpoint starts counting from scratch)."""
    ch_client(settings.clickhouse).command(f"DROP DATABASE IF EXISTS {ident(settings.clickhouse.realtime_database)}")
