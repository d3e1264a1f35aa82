"""ClickHouse service under load: dashboard query latency idle, during a `dbt build`, and while a
writer inserts 20k rows/s — the three situations of the dashboards, dbt and streaming (Superset, dbt, the streaming sink).

The baseline is the idle figure measured in the same run; the goal is dashboard p95 under load
≤ 3× idle. Needs marts built for the source (bench/bench_models.py or `pulse model build`):

    .venv/bin/python bench/bench_clickhouse_load.py --source bench1000000 [--seconds 20] [--rate 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_models import DASHBOARD_QUERIES, percentile
from measure import PeakRss, write_results

from pulse.common.clickhouse import client as ch_client
from pulse.config import ensure_secrets, settings
from pulse.modeling import dbt_runner
from pulse.services import registry
from pulse.services.clickhouse import ClickHouse

MART_QUERIES = {k: v for k, v in DASHBOARD_QUERIES.items() if "ad-hoc" not in k}
INGEST_TABLE = "bench_ingest"


def dashboard_latencies(source: str, stop: threading.Event, min_rounds: int = 0) -> list[float]:
    """Milliseconds per dashboard query on the source's published marts, cycling through the mart
    queries until ``stop`` (and at least ``min_rounds`` rounds)."""
    cfg = settings().clickhouse
    client = ch_client(cfg, database=cfg.marts_database(source))
    out: list[float] = []
    rounds = 0
    while not stop.is_set() or rounds < min_rounds:
        for sql in MART_QUERIES.values():
            t0 = time.perf_counter()
            client.query(sql)
            out.append((time.perf_counter() - t0) * 1000)
        rounds += 1
    return out


def writer(stop: threading.Event, rate: int, batch: int, stats: dict) -> None:
    """Insert ``rate`` rows/s in batches (as the streaming sink does) until ``stop``."""
    client = ch_client(settings().clickhouse)
    sent, t_start = 0, time.perf_counter()
    now = datetime.now(UTC).replace(tzinfo=None)
    while not stop.is_set():
        rows = [[now, f"u{(sent + i) % 5000}", "view", (sent + i) % 997] for i in range(batch)]
        client.insert(INGEST_TABLE, rows, column_names=["event_time", "user_id", "event_type", "product_id"])
        sent += batch
        lag = t_start + sent / rate - time.perf_counter()
        if lag > 0:
            time.sleep(lag)
    stats["rows"], stats["seconds"] = sent, time.perf_counter() - t_start


def run_scenario(source: str, name: str, load, seconds: float) -> dict:
    """Dashboard latencies while ``load(stop)`` runs (None: idle for ``seconds``)."""
    stop = threading.Event()
    box: dict = {}
    reader = threading.Thread(target=lambda: box.update(ms=dashboard_latencies(source, stop, min_rounds=5)))
    svc = psutil.Process(ClickHouse(settings()).pid())
    with PeakRss(lambda: svc.memory_info().rss / 2**20) as rss:
        reader.start()
        extra = load(stop) if load else (time.sleep(seconds), {})[1]
        stop.set()
        reader.join()
    ms = box["ms"]
    return {
        "scenario": name,
        "queries": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "clickhouse_peak_rss_mb": round(rss.peak),
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="bench1000000", help="source whose marts are built")
    parser.add_argument("--seconds", type=float, default=20, help="length of the idle and writer scenarios")
    parser.add_argument("--rate", type=int, default=20_000, help="rows/s the writer inserts")
    args = parser.parse_args()
    s = settings()
    registry.up(s, ["postgres", "clickhouse"], echo=lambda _m: None)
    admin = ch_client(s.clickhouse)
    admin.command(f"DROP TABLE IF EXISTS {INGEST_TABLE}")
    admin.command(
        f"CREATE TABLE {INGEST_TABLE} (event_time DateTime64(3), user_id String, event_type LowCardinality(String), "
        "product_id UInt32) ENGINE = MergeTree ORDER BY (event_time, user_id)"
    )

    def dbt_build(stop: threading.Event) -> dict:
        t0 = time.perf_counter()
        result = dbt_runner.build(s, args.source, full_refresh=True, quiet=True)
        if not result.ok:
            sys.exit(f"dbt build failed: {result.failures}")
        return {"dbt_build_seconds": round(time.perf_counter() - t0, 1)}

    def ingest(stop: threading.Event) -> dict:
        stats: dict = {}
        t = threading.Thread(target=writer, args=(stop, args.rate, 2000, stats))
        t.start()
        time.sleep(args.seconds)
        stop.set()
        t.join()
        return {"writer_rows_per_s": round(stats["rows"] / stats["seconds"])}

    print(f"ClickHouse service under load — source {args.source}, {len(MART_QUERIES)} dashboard queries per round")
    results = [
        run_scenario(args.source, "idle", None, args.seconds),
        run_scenario(args.source, "during dbt build --full-refresh", dbt_build, args.seconds),
        run_scenario(args.source, f"writer at {args.rate:,} rows/s", ingest, args.seconds),
    ]
    admin.command(f"DROP TABLE IF EXISTS {INGEST_TABLE}")
    idle = results[0]["p95_ms"]
    print(f"\n{'scenario':<36} {'queries':>8} {'p50 ms':>8} {'p95 ms':>8} {'p95/idle':>9} {'CH RSS MiB':>11}  load")
    for r in results:
        r["p95_vs_idle"] = round(r["p95_ms"] / idle, 2)
        load = (
            f"dbt {r['dbt_build_seconds']} s"
            if "dbt_build_seconds" in r
            else f"{r['writer_rows_per_s']:,} rows/s written"
            if "writer_rows_per_s" in r
            else ""
        )
        print(
            f"{r['scenario']:<36} {r['queries']:>8} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p95_vs_idle']:>8}x "
            f"{r['clickhouse_peak_rss_mb']:>11}  {load}"
        )
    worst = max(r["p95_vs_idle"] for r in results)
    print(f"\ngoal: dashboard p95 under load <= 3x idle -> worst {worst}x: {'met' if worst <= 3 else 'NOT met'}")
    write_results("clickhouse-load", results)


if __name__ == "__main__":
    ensure_secrets()  # the installation's credentials, before any settings load
    main()
