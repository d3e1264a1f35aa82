"""``pulse stream produce``: live events as JSON into Kafka, at a held rate, with a known share of bad
messages and an exact record of what was sent (the ground truth the tests compare results with).

Messages are keyed by user id (a user's events stay in order on one partition) and sent by an
idempotent producer (``acks=all``): broker restarts and retries never duplicate or reorder them.
The duplicates in the stream are the application's own re-sends of an event (``retry_duplicate``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from pulse.common.progress import say
from pulse.config import Settings
from pulse.domain import RAW_COLUMNS
from pulse.lake.layout import part_file, partition_dir
from pulse.streaming.sessions import SessionModel

# defect kind -> the rule the stream must quarantine it under (None: accepted, a late but valid event)
LOG = logging.getLogger("pulse.kafka")
DEFECTS: dict[str, str | None] = {
    "malformed_json": "malformed_line",
    "missing_field": "missing_required_field",
    "unknown_event_type": "unknown_event_type",
    "negative_price": "invalid_price",
    "future_timestamp": "future_timestamp",
    "retry_duplicate": "duplicate_event_id",
    "too_late": "too_late",
    "late": None,
}
REQUIRED = ("event_time", "event_type", "user_id")


@dataclass
class ProduceParams:
    rate: float = 1_000.0  # messages per second (the mean, for a bursty pattern)
    duration: float = 10.0  # seconds
    users: int = 20_000
    dirty_rate: float = 0.02  # share of messages with a defect (see DEFECTS)
    seed: int = 7
    bursty: bool = False  # 5 s at 1.8x the rate, 5 s at 0.2x
    raw_dir: Path | None = None  # also write the well-formed events as RAW CSV partitions (batch path)


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass
class GroundTruth:
    """What the stream must show: accepted events per minute and per day, bad messages per rule."""

    sent: int = 0
    events: int = 0
    late_accepted: int = 0
    bad: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bad_minute: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # (minute sent, rule)
    minute_events: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    minute_users: dict[tuple[str, str], set] = field(default_factory=lambda: defaultdict(set))
    day_events: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    day_users: dict[str, set] = field(default_factory=lambda: defaultdict(set))
    delivery_errors: int = 0

    def reject(self, rule: str, sent_ms: int) -> None:
        self.bad[rule] += 1
        self.bad_minute[(iso_ms(sent_ms)[:16], rule)] += 1

    def accept(self, event: dict, ms: int) -> None:
        stamp = iso_ms(ms)
        minute, day = stamp[:16], stamp[:10]
        kind = event["event_type"]  # any name: the stream's spec has no vocabulary and no synonyms
        self.events += 1
        self.minute_events[(minute, kind)] += 1
        self.minute_users[(minute, kind)].add(event["user_id"])
        self.day_events[(day, kind)] += 1
        self.day_users[day].add(event["user_id"])

    def as_dict(self) -> dict:
        return {
            "sent": self.sent,
            "events": self.events,
            "late_accepted": self.late_accepted,
            "delivery_errors": self.delivery_errors,
            "bad": dict(sorted(self.bad.items())),
            "bad_per_minute": [{"minute": m, "reason": r, "messages": n} for (m, r), n in sorted(self.bad_minute.items())],
            "per_minute": [
                {"minute": m, "event_type": t, "events": n, "users": len(self.minute_users[(m, t)])}
                for (m, t), n in sorted(self.minute_events.items())
            ],
            "per_day": [{"day": d, "event_type": t, "events": n} for (d, t), n in sorted(self.day_events.items())],
            "dau": {d: len(u) for d, u in sorted(self.day_users.items())},
        }


@dataclass(frozen=True)
class ProduceResult:
    sent: int
    seconds: float
    achieved_rate: float
    truth: dict
    truth_path: Path | None


class StreamProducer:
    def __init__(self, settings: Settings, params: ProduceParams, **kafka_overrides: str) -> None:
        self.settings, self.params = settings, params
        self.topic = settings.stream.topic
        self.producer = Producer(
            {
                **settings.kafka.client_config(),
                "enable.idempotence": True,  # implies acks=all and in-order, duplicate-free retries
                "acks": "all",
                "linger.ms": 20,
                "compression.type": "lz4",
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 1_000_000,
                "delivery.report.only.error": True,
                "on_delivery": self._delivered,
                **kafka_overrides,
            },
            logger=LOG,  # librdkafka's own lines (e.g. retrying while a broker restarts) go to logging, not the terminal
        )
        self.model = SessionModel(users=params.users, concurrent=max(50, min(params.users // 4, 5_000)), seed=params.seed)
        self.rng = np.random.default_rng(params.seed + 1)
        self.truth = GroundTruth()
        self.recent: deque[tuple[bytes, bytes]] = deque(maxlen=500)  # valid messages a retry may repeat
        self.raw_rows: dict[str, list[list[str]]] = defaultdict(list)
        self.lateness_ms = settings.stream.lateness_minutes * 60_000

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.truth.delivery_errors += 1

    def _defect(self) -> str | None:
        if self.model._random() >= self.params.dirty_rate:
            return None
        kinds = list(DEFECTS)
        return kinds[int(self.rng.integers(0, len(kinds)))]

    def next_message(self, now_ms: int) -> tuple[bytes, bytes]:
        """The next message (key, value) to send at ``now_ms``, counted in the ground truth (as sent, and
        as the event or the rejection it will be)."""
        self.truth.sent += 1
        defect = self._defect()
        if defect == "retry_duplicate":
            if not self.recent:
                defect = None
            else:
                key, value = self.recent[int(self.rng.integers(0, len(self.recent)))]
                self.truth.reject("duplicate_event_id", now_ms)
                self._mirror(json.loads(value))
                return key, value
        event, ms = self.model.next_event(now_ms)
        if defect == "late":  # minutes old, within the lateness: accepted into its own minute
            ms -= int(self.rng.integers(60_000, max(self.lateness_ms - 120_000, 60_001)))
        elif defect == "too_late":
            ms -= self.lateness_ms + int(self.rng.integers(120_000, 1_800_000))
        elif defect == "future_timestamp":
            ms += int(self.rng.integers(30, 60)) * 86_400_000
        elif defect == "unknown_event_type":
            event["event_type"] = "hover\u0007"  # a control character: no event name (any other name is)
        elif defect == "negative_price":
            event["price"] = -abs(event["price"]) or -1.0
        payload = {"event_id": os.urandom(16).hex(), "event_time": iso_ms(ms), **event}
        if defect == "missing_field":
            del payload[REQUIRED[int(self.rng.integers(0, len(REQUIRED)))]]
        key = str(event["user_id"]).encode()
        value = json.dumps(payload, separators=(",", ":")).encode()
        if defect == "malformed_json":
            value = value[: len(value) // 2]
        elif defect != "too_late":
            self._mirror(payload)
        rule = DEFECTS.get(defect) if defect else None
        if rule:
            self.truth.reject(rule, now_ms)
        else:
            self.truth.accept(event, ms)
            self.truth.late_accepted += defect == "late"
            self.recent.append((key, value))
        return key, value

    def _mirror(self, payload: dict) -> None:
        """The batch path's copy of a well-formed message: a RAW CSV row under the day it was sent."""
        if self.params.raw_dir is None:
            return
        row = {"user_session": payload.get("session_id", ""), **{k: v for k, v in payload.items() if k != "session_id"}}
        day = datetime.now(UTC).date().isoformat()
        self.raw_rows[day].append(["" if row.get(c) is None else str(row.get(c, "")) for c in RAW_COLUMNS])

    def _rate_at(self, t: float) -> float:
        if not self.params.bursty:
            return self.params.rate
        return self.params.rate * (1.8 if (t // 5) % 2 == 0 else 0.2)

    def run(self, echo=say) -> ProduceResult:
        p = self.params
        t0 = time.monotonic()
        budget, last_tick, last_report, sent_at_report = 0.0, t0, t0, 0
        while (now := time.monotonic()) - t0 < p.duration:
            budget += self._rate_at(now - t0) * (now - last_tick)
            last_tick = now
            for i in range(int(budget)):
                if i % 500 == 0:  # a fresh produce time every 500 messages, and never past the duration
                    now_ms = int(time.time() * 1000)
                    if time.monotonic() - t0 >= p.duration:
                        budget = 0.0
                        break
                key, value = self.next_message(now_ms)
                while True:
                    try:
                        self.producer.produce(self.topic, value=value, key=key, timestamp=now_ms)
                        break
                    except BufferError:  # the local queue is full (broker away): wait for room, keep order
                        self.producer.poll(0.1)
            budget -= int(budget)
            self.producer.poll(0)
            if now - last_report >= 2:
                echo(
                    f"    sent {self.truth.sent:,} ({(self.truth.sent - sent_at_report) / (now - last_report):,.0f}/s), "
                    f"bad {sum(self.truth.bad.values()):,}, delivery errors {self.truth.delivery_errors}, "
                    f"queued {len(self.producer):,}"
                )
                last_report, sent_at_report = now, self.truth.sent
            time.sleep(max(0.0, 0.005 - (time.monotonic() - now)))
        seconds = time.monotonic() - t0
        left = self.producer.flush(120)
        self.truth.delivery_errors += left
        truth = self.truth.as_dict()
        rate = self.truth.sent / seconds
        echo(f"    done: {self.truth.sent:,} messages in {seconds:.1f}s = {rate:,.0f}/s (target {p.rate:,.0f}/s)")
        if self.params.raw_dir is not None:
            write_raw(self.params.raw_dir, self.raw_rows)
        return ProduceResult(self.truth.sent, round(seconds, 2), round(rate), truth, None)


def write_raw(root: Path, rows_by_day: dict[str, list[list[str]]]) -> list[Path]:
    """RAW partitions (``ingest_date=…/part-…csv.gz``) the batch path loads with ``pulse upload``."""
    paths = []
    for day, rows in sorted(rows_by_day.items()):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(RAW_COLUMNS)
        writer.writerows(rows)
        path = partition_dir(root, day) / part_file(int(time.time() * 1000), digits=13)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))
        paths.append(path)
    return paths


def produce(settings: Settings, params: ProduceParams, truth_path: Path | None = None, echo=say) -> ProduceResult:
    """Ensure the topic exists, send, and write the ground truth (JSON) next to the run."""
    from pulse.streaming.topic import ensure_topic

    ensure_topic(settings)
    echo(
        f"==> producing {params.rate:,.0f} msg/s for {params.duration:.0f}s to {settings.stream.topic} "
        f"({'bursty' if params.bursty else 'steady'}, {params.dirty_rate:.0%} bad, {params.users:,} users)"
    )
    result = StreamProducer(settings, params).run(echo)
    if truth_path is not None:
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        truth_path.write_text(json.dumps(result.truth, indent=1))
    return ProduceResult(result.sent, result.seconds, result.achieved_rate, result.truth, truth_path)
