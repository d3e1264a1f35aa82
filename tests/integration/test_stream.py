"""Streaming against real services: the producer -> Kafka -> Spark Structured Streaming -> ClickHouse.

One scenario: a known stream with every kind of bad message, the streaming job killed with
SIGKILL half-way and restarted, the broker restarted while the producer sends. At the end every
per-minute and per-day figure equals the producer's ground truth. Then the same events go through
the batch path (RAW -> Spark -> staging -> dbt marts) and ``reconcile`` finds no difference.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from pulse import pipeline
from pulse.bi import assets
from pulse.bi.client import SupersetClient
from pulse.common.clickhouse import client as ch_client
from pulse.common.waiting import wait_until
from pulse.services.clickhouse import ClickHouse
from pulse.services.kafka import Kafka
from pulse.services.stream import StreamJob
from pulse.staging import job
from pulse.streaming import tables
from pulse.streaming.producer import ProduceParams
from pulse.streaming.sink import RealtimeSink

from .browser import dashboards_report

pytestmark = pytest.mark.integration
SOURCE = "streamrc"


def figures(settings, day: str | None = None) -> dict:
    ch = tables.client(settings)
    where = f"WHERE toDate(minute) = '{day}'" if day else ""
    per_minute = ch.query(
        f"SELECT formatDateTime(minute, '%Y-%m-%dT%H:%i'), event_type, events, users FROM realtime_events_per_minute {where} "
        "ORDER BY 1, 2"
    ).result_rows
    return {
        "per_minute": [{"minute": m, "event_type": t, "events": e, "users": u} for m, t, e, u in per_minute],
        "per_day": [
            {"day": d.isoformat(), "event_type": t, "events": e}
            for d, t, e in ch.query("SELECT day, event_type, events FROM realtime_events_per_day ORDER BY 1, 2").result_rows
        ],
        "dau": {d.isoformat(): n for d, n in ch.query("SELECT day, dau FROM realtime_dau ORDER BY 1").result_rows},
        "bad": dict(ch.query("SELECT reason, sum(messages) FROM realtime_quarantine_per_minute GROUP BY reason").result_rows),
        "bad_per_minute": [
            {"minute": m, "reason": r, "messages": n}
            for m, r, n in ch.query(
                "SELECT formatDateTime(minute, '%Y-%m-%dT%H:%i'), reason, messages FROM realtime_quarantine_per_minute "
                "ORDER BY 1, 2"
            ).result_rows
        ],
        "events": ch.query("SELECT count() FROM realtime_events FINAL").result_rows[0][0],
    }


@pytest.fixture(scope="module")
def live(stack):
    ClickHouse(stack).start()
    Kafka(stack).start()
    tables.reset(stack)
    yield stack
    StreamJob(stack).stop()


KILLED_AT: list[datetime] = []  # when the streaming job was SIGKILLed


@pytest.fixture(scope="module")
def streamed(live, tmp_path_factory):
    """Produce while the job is SIGKILLed and restarted and the broker restarts; returns (truth, raw dir)."""
    raw_dir = tmp_path_factory.mktemp("stream-raw")
    params = ProduceParams(rate=300, duration=45, users=2_000, dirty_rate=0.08, seed=5, raw_dir=raw_dir)
    job = StreamJob(live)
    job.start()  # healthy = it has made progress on the (empty) topic
    results = {}
    producer = threading.Thread(
        target=lambda: results.update(truth=pipeline.produce_stream(live, params, echo=lambda _m: None).truth)
    )
    producer.start()
    # kill only once the job has committed a batch with messages (its first one can take longer on a busy
    # machine), and while the producer is still sending: the kill must interrupt a query mid-stream.
    # Committed = a later batch exists: Spark writes batch N's commit log before it plans N+1, and a batch
    # killed before its commit is replayed under the same id, replacing its ledger row.
    ledger = (
        "SELECT countIf(messages > 0 AND batch_id < (SELECT max(batch_id) FROM realtime_batches)) FROM realtime_batches FINAL"
    )
    wait_until(
        lambda: tables.client(live).query(ledger).result_rows[0][0] > 0, what="a committed batch with messages", timeout=60
    )
    assert producer.is_alive(), "the producer finished before the job wrote anything: nothing left to interrupt"
    KILLED_AT.append(datetime.now(UTC))
    os.killpg(job.pid(), signal.SIGKILL)  # no clean shutdown: a batch may be half written
    wait_until(lambda: job.pid() is None, what="the killed job to be gone", timeout=10)
    job.start()
    after_kill = "SELECT countIf(messages > 0 AND started_at > {k:DateTime64(3)}) FROM realtime_batches FINAL"
    wait_until(
        lambda: tables.client(live).query(after_kill, parameters={"k": KILLED_AT[0].replace(tzinfo=None)}).result_rows[0][0],
        what="the restarted job to write a batch with messages",
        timeout=120,
    )
    broker = Kafka(live)
    broker.stop()  # the idempotent producer buffers and retries; the job's Kafka source waits
    broker.start()
    producer.join(timeout=120)
    truth = results["truth"]
    assert truth["delivery_errors"] == 0
    wait_until(
        lambda: (f := figures(live))["events"] == truth["events"] and sum(f["bad"].values()) == sum(truth["bad"].values()),
        what="the stream to catch up with what was sent",
        timeout=180,
    )
    return truth, raw_dir


def test_every_figure_equals_the_ground_truth_after_a_kill_and_a_broker_restart(streamed, live):
    truth, _ = streamed
    got = figures(live)
    days = set(truth["dau"])
    assert [m for m in got["per_minute"] if m["minute"][:10] in days] == truth["per_minute"]
    assert [d for d in got["per_day"] if d["day"] in days] == truth["per_day"]
    assert {d: n for d, n in got["dau"].items() if d in days} == truth["dau"]
    assert got["bad"] == truth["bad"]
    assert [b for b in got["bad_per_minute"] if b["minute"][:10] in days] == truth["bad_per_minute"]
    assert set(truth["bad"]) == {"malformed_line", "missing_required_field", "unknown_event_type", "invalid_price",
                                 "future_timestamp", "duplicate_event_id", "too_late"}  # fmt: skip
    assert truth["late_accepted"] > 0
    # the kill really interrupted one query: batches with messages finished before it, and its batches
    # continue after it under the same query id (how many depends on how fast the JVM restarts)
    [(queries, before, after)] = (
        tables.client(live)
        .query(
            "SELECT uniqExact(query_id), countIf(finished_at < {k:DateTime64(3)} AND messages > 0), "
            "countIf(started_at > {k:DateTime64(3)} AND messages > 0) FROM realtime_batches FINAL",
            parameters={"k": KILLED_AT[0].replace(tzinfo=None)},
        )
        .result_rows
    )
    assert queries == 1 and before >= 1 and after >= 1, (queries, before, after)


def test_bad_messages_keep_their_payload_and_reason(streamed, live):
    rows = (
        tables.client(live)
        .query("SELECT reason, detail, payload FROM realtime_quarantine FINAL WHERE reason IN ('malformed_line', 'too_late')")
        .result_rows
    )
    for reason, detail, payload in rows:
        if reason == "malformed_line":
            with pytest.raises(ValueError):
                json.loads(payload)
        else:
            assert json.loads(payload)["event_id"] and detail.startswith("event_time=")
    assert {r for r, _, _ in rows} == {"malformed_line", "too_late"}


def test_status_shows_the_query_progress(streamed, live):
    up, detail = StreamJob(live).healthy()
    assert up, detail
    assert "processed" in detail and "behind" in detail
    # caught up = "behind 0": a batch's progress may lack the Kafka lag ("behind ?", seen for the last
    # batch after the kill's replay); the idle event, 10 s after the last batch with data, says 0
    wait_until(lambda: "behind 0 msgs" in StreamJob(live).healthy()[1], what="the status to say the job is caught up", timeout=30)


def own_realtime_database(settings, name: str):
    """Settings whose realtime tables live in a database of their own (dropped first): a test that
    writes through the sink never touches the tables the streamed scenario counts."""
    mine = dataclasses.replace(settings, clickhouse=dataclasses.replace(settings.clickhouse, database=f"pulse_{name}"))
    ch_client(settings.clickhouse).command(f"CREATE DATABASE IF NOT EXISTS pulse_{name}")  # the clients' default database
    tables.reset(mine)
    tables.ensure(mine)
    return mine


def test_a_replayed_batch_changes_nothing(live, spark):
    """The sink called twice with the same batch (what Spark does after a crash between writing and
    committing), and once more under another query id (no dedup token can match): same figures."""
    live = own_realtime_database(live, "replay")
    day = "2026-01-02"
    t0 = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)

    def message(i: int, event_id: str, minute: int, user: int, kind: str) -> tuple:
        body = {"event_id": event_id, "event_time": f"2026-01-02T10:0{minute}:00Z", "user_id": user, "event_type": kind}
        return json.dumps(body | {"price": 5}).encode(), "t", 0, i, t0

    kinds = ["view", "click", "add_to_cart"]
    msgs = [message(i, f"r{i}", i % 3, 100 + i % 4, kinds[i % 3]) for i in range(30)]
    msgs += [(b"{not json", "t", 0, 30, t0), message(31, "r1", 1, 101, "click")]  # a copy of r1 in the same batch
    frame = spark.createDataFrame(msgs, "value binary, topic string, partition int, offset long, timestamp timestamp")
    sink = RealtimeSink(live, query_id="replay-test")
    sink(frame, 1_000_000)
    first = figures(live, day)
    sink(frame, 1_000_000)
    RealtimeSink(live, query_id="another-query")(frame, 1_000_000)
    again = figures(live, day)
    assert again["per_minute"] == first["per_minute"]
    assert sum(r["events"] for r in first["per_minute"]) == 30
    assert {r["event_type"] for r in first["per_minute"]} == {"view", "click", "add_to_cart"}  # names as sent
    dau = tables.client(live).query(f"SELECT dau FROM realtime_dau WHERE day = '{day}'").result_rows
    assert dau == [(4,)]
    quarantined = (
        tables.client(live)
        .query("SELECT reason, count() FROM realtime_quarantine FINAL WHERE batch_id = 1000000 GROUP BY reason ORDER BY reason")
        .result_rows
    )
    assert quarantined == [("duplicate_event_id", 1), ("malformed_line", 1)]


def test_dau_yesterday_at_this_time_counts_who_was_seen_by_now_a_day_ago(live, spark):
    """The realtime "yesterday at this time" figure against the users the test itself sent: a user
    counts when their first event yesterday was at or before now minus one day."""
    live = own_realtime_database(live, "yesterday")
    now = datetime.now(UTC)
    day_ago = now - timedelta(days=1)
    start = datetime.combine(day_ago.date(), datetime.min.time(), UTC)
    rng = random.Random(7)
    sent = []  # (event_id, event time, user): times near the moving boundary (±5 min) left out
    for user in range(300):
        for k in range(rng.randint(1, 3)):
            at = start + timedelta(seconds=rng.randrange(86_400))
            if abs((at - day_ago).total_seconds()) > 300:
                sent.append((f"y{user}-{k}", at, user))
    body = [
        {"event_id": e, "event_time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "user_id": u, "event_type": "view"} for e, at, u in sent
    ]
    # each message produced a second after its event, as yesterday's stream did (else: too_late)
    produced = [at + timedelta(seconds=1) for _, at, _ in sent]
    rows = [(json.dumps(b).encode(), "t", 0, i, p) for i, (b, p) in enumerate(zip(body, produced, strict=True))]
    frame = spark.createDataFrame(rows, "value binary, topic string, partition int, offset long, timestamp timestamp")
    RealtimeSink(live, query_id="yesterday-test")(frame, 1)
    first_seen: dict[int, datetime] = {}
    for _, at, user in sent:
        first_seen[user] = min(at, first_seen.get(user, at))
    expected = sum(at <= day_ago for at in first_seen.values())
    [(got,)] = tables.client(live).query("SELECT dau_yesterday_same_time FROM realtime_dau_now").result_rows
    assert got == expected and 0 < expected < len(first_seen), (got, expected, len(first_seen))


def test_a_batch_across_utc_midnight_counts_each_event_in_its_own_day(live, spark):
    """One batch with events either side of 00:00 UTC (sent in +05:30 and -05:00 local time too): the minutes,
    days and DAU split at UTC midnight, whatever zone the event was written in."""
    live = own_realtime_database(live, "midnight")
    body = [  # (event_id, event_time as sent, user): three users before midnight, two after, one on both sides
        ("m1", "2026-03-01T23:59:10Z", 1), ("m2", "2026-03-02T05:29:40+05:30", 2), ("m3", "2026-03-01T18:59:59-05:00", 3),
        ("m4", "2026-03-02T00:00:00Z", 3), ("m5", "2026-03-01T19:00:30-05:00", 4), ("m6", "2026-03-02T05:30:59+05:30", 5),
    ]  # fmt: skip
    sent_at = datetime(2026, 3, 2, 0, 1, tzinfo=UTC)
    rows = [
        (json.dumps({"event_id": e, "event_time": t, "user_id": u, "event_type": "view"}).encode(), "t", 0, i, sent_at)
        for i, (e, t, u) in enumerate(body)
    ]
    frame = spark.createDataFrame(rows, "value binary, topic string, partition int, offset long, timestamp timestamp")
    RealtimeSink(live, query_id="midnight-test")(frame, 1)
    got = figures(live)
    assert got["per_day"] == [
        {"day": "2026-03-01", "event_type": "view", "events": 3},
        {"day": "2026-03-02", "event_type": "view", "events": 3},
    ]
    assert got["dau"] == {"2026-03-01": 3, "2026-03-02": 3}
    assert {(m["minute"], m["events"]) for m in got["per_minute"]} == {
        ("2026-03-01T23:59", 3), ("2026-03-02T00:00", 3)
    }  # fmt: skip


def test_the_batch_path_gives_the_same_dau_and_events_per_type(streamed, live, spark):
    truth, raw_dir = streamed
    pipeline.upload_raw(live, SOURCE, raw_dir, spec=live.stream.spec)  # the batch path reads the copy as the stream does
    load = job.run(live, SOURCE, spark=spark)
    build = pipeline.model(live, SOURCE)
    assert build.ok, build.failures
    for day in truth["dau"]:
        result = pipeline.reconcile_stream(live, date.fromisoformat(day), SOURCE)
        assert result.ok, result.report()
        assert result.dau_batch == truth["dau"][day]
    # the rules are one vocabulary: the batch quarantined the mirrored bad events under the same names
    mirrored = {k: v for k, v in truth["bad"].items() if k not in ("malformed_line", "too_late")}
    assert load["quarantined"] == mirrored


def test_the_realtime_dashboard_shows_the_stream_and_refreshes_itself(streamed, superset):
    deployed = assets.deploy(superset, SOURCE, warm=False)
    client = SupersetClient(superset.superset)
    bundle = assets.load()
    uuid = {
        p.removeprefix("charts/").removesuffix(".yaml"): str(o["uuid"]) for p, o in bundle.items() if p.startswith("charts/rt_")
    }
    ch = tables.client(superset)

    def data(chart: str) -> list[dict]:
        return client.chart_data(deployed.charts[uuid[chart]], force=True)["result"][0]["data"]

    # each chart's own query (last 60 minutes) against the realtime views, independently
    last_hour = "minute >= now() - INTERVAL 60 MINUTE AND minute < now()"
    [(events,)] = ch.query(f"SELECT sum(events) FROM realtime_events_per_minute WHERE {last_hour}").result_rows
    assert sum(r["events"] for r in data("rt_events_per_minute")) == events > 0
    [(bad,)] = ch.query(f"SELECT sum(messages) FROM realtime_quarantine_per_minute WHERE {last_hour}").result_rows
    assert sum(r["messages"] for r in data("rt_quarantine_per_minute")) == bad > 0
    [(today, yesterday)] = ch.query("SELECT dau_today, dau_yesterday_same_time FROM realtime_dau_now").result_rows
    today_key = datetime.now(UTC).date().isoformat()
    assert today_key in streamed[0]["dau"], sorted(streamed[0]["dau"])  # the producer sent events today
    assert data("rt_dau_today")[0]["dau_today"] == today == streamed[0]["dau"][today_key]
    assert data("rt_dau_yesterday")[0]["dau_yesterday_same_time"] == yesterday
    report = dashboards_report(superset, "realtime", timeout=300, WATCH_REFRESH_S="35")["realtime"]
    assert report["errors"] == [] and report["failed_requests"] == [] and report["charts"] == 4
    # every 10 s the dashboard asks again for every chart, untouched: in 35 s at least twice each
    assert len(report["refresh_by_slice"]) == 4, report["refresh_by_slice"]
    assert min(report["refresh_by_slice"].values()) >= 2 and report["refresh_failed"] == 0, report["refresh_by_slice"]
