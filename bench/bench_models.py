"""Modelling benchmark: dbt build of the marts, per-model times, ClickHouse service memory, and
latency of typical dashboard queries (p50/p95) against the ClickHouse HTTP service.

Needs a cleaning load of the source first (bench/bench_stage1.py loads `bench<N>` sources):

    .venv/bin/python bench/bench_models.py --source bench1000000 [--source bench10000000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import PeakRss, write_results

from pulse.common.clickhouse import client as ch_client
from pulse.config import ensure_secrets, settings
from pulse.modeling import dbt_runner
from pulse.services import registry
from pulse.services.clickhouse import ClickHouse

DASHBOARD_QUERIES = {
    "KPI block (last day)": "SELECT dau, wau, mau, stickiness FROM user_daily_metrics ORDER BY metric_date DESC LIMIT 1",
    "DAU/WAU/MAU line": "SELECT metric_date, dau, wau, mau FROM user_daily_metrics ORDER BY metric_date",
    "retention curve": "SELECT day_n, retention_rate FROM user_retention_curve ORDER BY day_n",
    "cohort heatmap": "SELECT cohort_month, months_since_first, retained_pct FROM cohorts_monthly",
    "revenue trend 7d avg": "SELECT revenue_date, avg(revenue_usd) OVER (ORDER BY revenue_date ROWS 6 PRECEDING) "
    "FROM revenue_daily ORDER BY revenue_date",
    "segments by platform": "SELECT platform, sum(active_users), sum(revenue_usd) FROM segments_daily GROUP BY platform",
    "ad-hoc on events": "SELECT country, uniqExact(user_id), sum(price_usd) FROM {build_db}.stg_pulse__events "
    "WHERE event_type = 'purchase' GROUP BY country",
}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def bench(source: str, repeat: int, results: list[dict]) -> None:
    s = settings()
    svc = ClickHouse(s)
    print(f"\n== source {source} ==")
    service = psutil.Process(svc.pid())
    with PeakRss(lambda: service.memory_info().rss / 2**20) as rss:
        t0 = time.perf_counter()
        result = dbt_runner.build(s, source, full_refresh=True, quiet=True)
        seconds = time.perf_counter() - t0
    if not result.ok:
        sys.exit(f"dbt build failed for {source}: {result.failures}")
    run_results = json.loads((s.dbt_target(source) / "run_results.json").read_text())
    models = {
        r["unique_id"].split(".")[-1]: r["execution_time"] for r in run_results["results"] if r["unique_id"].startswith("model.")
    }
    tests = sum(r["execution_time"] for r in run_results["results"] if r["unique_id"].startswith("test."))
    print(
        f"  dbt build (full refresh, models + {len(run_results['results']) - len(models)} tests): {seconds:.1f} s, "
        f"ClickHouse service peak RSS {rss.peak:,.0f} MiB"
    )
    for name, secs in sorted(models.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<28} {secs:6.2f} s")
    print(f"    {'(all tests)':<28} {tests:6.2f} s")
    results.append(
        {
            "source": source,
            "dbt_build_seconds": round(seconds, 2),
            "models": models,
            "tests_seconds": round(tests, 2),
            "clickhouse_peak_rss_mb": round(rss.peak),
        }
    )

    cfg = s.clickhouse
    client = ch_client(cfg, database=cfg.marts_database(source))
    print(f"  dashboard queries, {repeat} runs each (ms):   p50      p95")
    for name, sql in DASHBOARD_QUERIES.items():
        sql = sql.replace("{build_db}", cfg.build_database(source))
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            client.query(sql)
            times.append((time.perf_counter() - t0) * 1000)
        p50, p95 = statistics.median(times), percentile(times, 95)
        print(f"    {name:<34} {p50:7.1f}  {p95:7.1f}")
        results.append({"source": source, "query": name, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1)})

    # concurrency: the service runs one query at a time; throughput with 1 vs 4 clients
    for clients in (1, 4):
        done, t0 = [0], time.perf_counter()

        def worker(done=done) -> None:
            c = ch_client(cfg, database=cfg.marts_database(source))
            for _ in range(repeat):
                c.query(DASHBOARD_QUERIES["DAU/WAU/MAU line"])
                done[0] += 1

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        qps = done[0] / (time.perf_counter() - t0)
        print(f"  {clients} concurrent client(s): {qps:,.0f} queries/s")
        results.append({"source": source, "concurrent_clients": clients, "queries_per_s": round(qps)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", help="source to model (repeatable; default bench1000000)")
    parser.add_argument("--repeat", type=int, default=30, help="runs per dashboard query (default 30)")
    args = parser.parse_args()
    s = settings()
    registry.up(s, ["postgres", "clickhouse"], echo=lambda _m: None)
    results: list[dict] = []
    for source in args.source or ["bench1000000"]:
        bench(source, args.repeat, results)
    write_results("models", results)


if __name__ == "__main__":
    ensure_secrets()  # the installation's credentials, before any settings load
    main()
