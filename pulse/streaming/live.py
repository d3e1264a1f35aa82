"""A live burst end to end (what the demo runs): send, wait until the job has written everything,
and read the realtime figures back from ClickHouse."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import Consumer, TopicPartition

from pulse.common.waiting import wait_until
from pulse.config import Settings
from pulse.streaming import tables
from pulse.streaming.producer import ProduceParams, ProduceResult, produce

LOG = logging.getLogger("pulse.kafka")  # librdkafka's own lines go to logging, not the terminal


@dataclass
class Burst:
    produced: ProduceResult
    caught_up_s: float  # from the producer's last message to the job having written it all
    per_minute: list[tuple[str, str, int, int]] = field(default_factory=list)  # minute, type, events, users
    dau_today: int = 0
    dau_yesterday_same_time: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0

    def report(self) -> str:
        lines = [f"  {'minute (UTC)':<17} {'type':<10} {'events':>8} {'users':>7}"]
        lines += [f"  {m:<17} {t:<10} {e:>8,} {u:>7,}" for m, t, e, u in self.per_minute]
        lines.append(
            f"  DAU today so far {self.dau_today:,} (yesterday by this time {self.dau_yesterday_same_time:,}); "
            f"quarantined {sum(self.quarantined.values()):,} {self.quarantined}"
        )
        lines.append(
            f"  end-to-end latency (Kafka produce -> visible in ClickHouse) p50 {self.latency_p50_s:.2f}s, "
            f"p95 {self.latency_p95_s:.2f}s; all written {self.caught_up_s:.1f}s after the last message"
        )
        return "\n".join(lines)


def end_offsets(settings: Settings) -> dict[int, int]:
    topic = settings.stream.topic
    probe = Consumer({**settings.kafka.client_config(), "group.id": "pulse-offsets-probe"}, logger=LOG)
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        probe.close()


def written_offsets(settings: Settings) -> dict[int, int]:
    """The next offset per partition after what the streaming job has written (from its ledger)."""
    rows = tables.client(settings).query("SELECT offsets FROM realtime_batches FINAL").result_rows
    done: dict[int, int] = {}
    for (offsets,) in rows:
        for part in filter(None, offsets.split(",")):
            p, o = part.split(":")
            done[int(p)] = max(done.get(int(p), 0), int(o) + 1)
    return done


def wait_caught_up(settings: Settings, timeout: float = 120.0) -> float:
    """Seconds until the job has written every message now in the topic (raises on timeout)."""
    target, t0 = end_offsets(settings), time.monotonic()

    def caught_up() -> bool:
        done = written_offsets(settings)
        return all(done.get(p, 0) >= o for p, o in target.items())

    try:
        wait_until(caught_up, what="the streaming job to write every message in the topic", timeout=timeout, interval=0.5)
    except TimeoutError as err:
        raise TimeoutError(f"{err}: `pulse status` shows its progress, its log is {settings.logs_dir / 'stream.log'}") from None
    return time.monotonic() - t0


def burst(settings: Settings, params: ProduceParams, echo) -> Burst:
    started = datetime.now(UTC)
    produced = produce(settings, params, echo=echo)
    caught_up = wait_caught_up(settings)
    ch = tables.client(settings)
    since = {"since": started.replace(tzinfo=None, second=0, microsecond=0)}
    per_minute = ch.query(
        "SELECT formatDateTime(minute, '%Y-%m-%d %H:%i'), event_type, events, users FROM realtime_events_per_minute "
        "WHERE minute >= {since:DateTime} ORDER BY 1, 2",
        parameters=since,
    ).result_rows
    [(today, yesterday)] = ch.query("SELECT dau_today, dau_yesterday_same_time FROM realtime_dau_now").result_rows
    quarantined = dict(
        ch.query(
            "SELECT reason, sum(messages) FROM realtime_quarantine_per_minute WHERE minute >= {since:DateTime} "
            "GROUP BY reason ORDER BY reason",
            parameters=since,
        ).result_rows
    )
    [(p50, p95)] = ch.query(
        "SELECT quantile(0.5)(toFloat64(visible_at) - toFloat64(produced_at)), "
        "quantile(0.95)(toFloat64(visible_at) - toFloat64(produced_at)) "
        "FROM realtime_events WHERE produced_at >= {since:DateTime}",
        parameters=since,
    ).result_rows
    return Burst(produced, round(caught_up, 1), per_minute, today, yesterday, quarantined, p50 or 0.0, p95 or 0.0)
