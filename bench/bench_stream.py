"""Streaming benchmark: producer -> Kafka -> Spark Structured Streaming -> ClickHouse on this machine.

For each target rate the producer (its own process) sends clean events for ``--duration`` seconds
while the streaming job runs as its service. Printed per rate: the rate the producer achieved, the
rate the job processed, the backlog left when the producer stopped (seconds of traffic), end-to-end
latency p50/p95/p99 from the Kafka produce time to the row being visible in ClickHouse (measured
per event: ``visible_at - produced_at``), micro-batch duration p50/p95, and CPU (% of one core) and
peak RSS per process (broker, streaming job = Python driver + JVM, ClickHouse, producer). Then a
catch-up run measures the job's maximum throughput: a backlog produced with the job stopped, then
drained. Goal: >= 20k events/s sustained with p95 <= 5 s.

Uses its own topic and checkpoint and RESETS the realtime tables.

    .venv/bin/python bench/bench_stream.py [--rates 5000,20000,50000] [--duration 90] [--backlog 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PULSE_STREAM_TOPIC", "pulse.bench")
os.environ.setdefault("PULSE_STREAM_PARTITIONS", "4")

from measure import Sampler, agree, exit_code, write_results

from pulse.config import ensure_secrets, load_settings
from pulse.services import registry
from pulse.services.clickhouse import ClickHouse
from pulse.services.kafka import Kafka
from pulse.services.stream import StreamJob
from pulse.streaming import live, tables
from pulse.streaming.topic import ensure_topic

RESULTS: list[dict] = []


def end_offsets(s) -> int:
    """Messages ever written to the topic (the sum of its partitions' end offsets)."""
    return sum(live.end_offsets(s).values())


def processed(ch) -> int:
    return ch.query("SELECT sum(messages) FROM realtime_batches FINAL").result_rows[0][0] or 0


def produce(rate: float, duration: float, seed: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pulse.cli", "stream", "produce", "--rate", str(rate), "--duration", str(duration),
           "--dirty-rate", "0", "--users", "200000", "--seed", str(seed)]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_drained(s, ch, target: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if processed(ch) >= target:
            return time.monotonic() - t0
        time.sleep(0.5)
    return float("nan")


def step(s, ch, rate: float, duration: float, pids: dict[str, int], seed: int) -> dict:
    start_total, start_processed = end_offsets(s), processed(ch)
    t_start = time.time()
    proc = produce(rate, duration, seed)
    with Sampler({**pids, "producer": proc.pid}) as sampler:
        out, _ = proc.communicate()
        t_end = time.time()
        sent = end_offsets(s) - start_total
        backlog = end_offsets(s) - processed(ch)
        drain = wait_drained(s, ch, end_offsets(s), 300)
    agree(f"{rate:,.0f}/s: messages the job processed vs sent to Kafka", processed(ch) - start_processed, sent)
    achieved = sent / (t_end - t_start)
    lat = ch.query(
        "SELECT quantiles(0.5, 0.95, 0.99)(toFloat64(visible_at) - toFloat64(produced_at)), count() FROM realtime_events "
        "WHERE produced_at >= fromUnixTimestamp64Milli({a:Int64}) AND produced_at <= fromUnixTimestamp64Milli({b:Int64})",
        parameters={"a": int(t_start * 1000), "b": int(t_end * 1000)},
    ).result_rows[0]
    batches = ch.query(
        "SELECT quantiles(0.5, 0.95)(dateDiff('millisecond', started_at, finished_at)), count() FROM realtime_batches FINAL "
        "WHERE started_at >= fromUnixTimestamp64Milli({a:Int64})",
        parameters={"a": int(t_start * 1000)},
    ).result_rows[0]
    (p50, p95, p99), events = lat
    row = {
        "target_rate": rate,
        "sent": sent,
        "achieved_rate": round(achieved),
        "processed_rate": round(sent / (t_end - t_start + (drain if drain == drain else 0))),
        "backlog_at_end": backlog,
        "backlog_seconds": round(backlog / max(achieved, 1), 2),
        "drain_s": round(drain, 1),
        "latency_p50_s": round(p50, 2),
        "latency_p95_s": round(p95, 2),
        "latency_p99_s": round(p99, 2),
        "events_measured": events,
        "batch_ms_p50": round(batches[0][0]),
        "batch_ms_p95": round(batches[0][1]),
        "batches": batches[1],
        **{f"cpu_{k}_pct": round(sum(v) / max(len(v), 1)) for k, v in sampler.cpu.items()},
        **{f"rss_{k}_mb": round(v) for k, v in sampler.rss.items()},
    }
    row["sustained"] = achieved >= 0.95 * rate and row["backlog_seconds"] <= 5
    if not row["sustained"]:
        print("    producer said: " + out.strip().splitlines()[-1][:200])
    return row


def catch_up(s, ch, backlog: int, pids: dict[str, int], job: StreamJob) -> dict:
    """The job's ceiling: drain a backlog produced while it was stopped (large batches)."""
    job.stop()
    start_total, start_processed = end_offsets(s), processed(ch)
    proc = produce(backlog / 10, 10 * 1.05, 99)  # as fast as the producer goes
    proc.communicate()
    sent = end_offsets(s) - start_total
    target = end_offsets(s)
    t0 = time.monotonic()
    job.start()
    with Sampler({"stream": job.pid(), "clickhouse": pids["clickhouse"]}) as sampler:
        drain = wait_drained(s, ch, target, 900)
    agree("catch-up: messages the job processed vs sent to Kafka", processed(ch) - start_processed, sent)
    return {
        "backlog": sent,
        "drain_s_incl_start": round(drain + (time.monotonic() - t0 - drain), 1),
        "throughput": round(sent / (time.monotonic() - t0)),
        **{f"cpu_{k}_pct": round(sum(v) / max(len(v), 1)) for k, v in sampler.cpu.items()},
        **{f"rss_{k}_mb": round(v) for k, v in sampler.rss.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="5000,20000,50000", help="target rates, events/s (comma-separated)")
    parser.add_argument("--duration", type=float, default=90, help="seconds per rate")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="messages for the catch-up run (0 = skip)")
    args = parser.parse_args()
    s = load_settings()
    os.environ["PULSE_STREAM_CHECKPOINT"] = str(s.home / "checkpoints" / "bench")
    s = load_settings()
    print(f"Pulse streaming benchmark — {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"topic {s.stream.topic} ({s.stream.partitions} partitions), trigger {s.stream.trigger_seconds}s")  # fmt: skip
    registry.up(s, ["clickhouse", "kafka"], echo=lambda _m: None)
    job = StreamJob(s)
    job.stop()
    tables.reset(s)
    shutil.rmtree(s.stream.checkpoint, ignore_errors=True)
    ensure_topic(s)
    job.start()
    pids = {"kafka": Kafka(s).pid(), "stream": job.pid(), "clickhouse": ClickHouse(s).pid()}
    ch = tables.client(s)
    header = (f"{'target/s':>9} {'sent/s':>8} {'done/s':>8} {'backlog':>8} {'p50 s':>6} {'p95 s':>6} {'p99 s':>6} "
              f"{'batch p50/p95 ms':>17} {'CPU% kafka/job/CH/prod':>24} {'peak RSS MiB kafka/job/CH/prod':>31} ok")  # fmt: skip
    print(header)
    for i, rate in enumerate(float(r) for r in args.rates.split(",")):
        r = step(s, ch, rate, args.duration, pids, seed=i)
        RESULTS.append(r)
        print(
            f"{rate:>9,.0f} {r['achieved_rate']:>8,} {r['processed_rate']:>8,} {r['backlog_seconds']:>7}s "
            f"{r['latency_p50_s']:>6} {r['latency_p95_s']:>6} {r['latency_p99_s']:>6} "
            f"{r['batch_ms_p50']:>8}/{r['batch_ms_p95']:<8} "
            f"{r['cpu_kafka_pct']:>6}/{r['cpu_stream_pct']}/{r['cpu_clickhouse_pct']}/{r['cpu_producer_pct']:<8} "
            f"{r['rss_kafka_mb']:>9}/{r['rss_stream_mb']}/{r['rss_clickhouse_mb']}/{r['rss_producer_mb']:<9} "
            f"{'yes' if r['sustained'] else 'NO'}",
            flush=True,
        )
    sustained = [r["achieved_rate"] for r in RESULTS if r["sustained"]]
    print(
        f"\nhighest sustained rate: {max(sustained, default=0):,} events/s (backlog <= 5 s of traffic when the producer stopped)"
    )
    if args.backlog:
        c = catch_up(s, ch, args.backlog, pids, job)
        RESULTS.append({"catch_up": c})
        print(
            f"catch-up: {c['backlog']:,} messages drained at {c['throughput']:,} events/s (incl. job start-up); "
            f"CPU% job {c['cpu_stream_pct']}, ClickHouse {c['cpu_clickhouse_pct']}; peak RSS job {c['rss_stream_mb']:,} MiB"
        )
    job.stop()
    write_results("stream", RESULTS)
    return exit_code()


if __name__ == "__main__":
    ensure_secrets()  # the installation's credentials, before any settings load
    sys.exit(main())
