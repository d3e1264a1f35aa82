"""Incremental vs full refresh: what one new day costs on N events of history.

On the same data in the same run: N events of history are loaded (a full refresh) and built; one new
day of about ``--day-share`` x N events arrives and is loaded incrementally, then built (T1); then
the whole RAW is refreshed in full and rebuilt in full (T2). Both end in the same state, checked.
Prints seconds, rows/s and peak RSS per step, writes JSON to bench/results/, and ends with
``incremental T1 s vs full refresh T2 s for one new day (n events) on N events of history: ratio R``.

    .venv/bin/python bench/bench_incremental.py --history 1000000 [--day-share 0.01]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import PeakRss, agree, exit_code, write_results

from pulse.common import pg
from pulse.common.progress import tree_rss_mb
from pulse.common.spark import session
from pulse.config import ensure_secrets, settings
from pulse.datagen import generate_dataset
from pulse.datagen.events import GenParams
from pulse.lake.raw import delete_source, upload_dataset
from pulse.modeling import dbt_runner
from pulse.services import registry
from pulse.staging import job
from pulse.staging.migrate import migrate

RESULTS: list[dict] = []


@contextmanager
def measured(step: str, history: int):
    info: dict = {"rows": 0}
    with PeakRss(tree_rss_mb) as rss:
        t0 = time.perf_counter()
        yield info
        seconds = time.perf_counter() - t0
    rows = info["rows"] or 0
    RESULTS.append({"history": history, "step": step, "seconds": round(seconds, 2), "rows": rows,
                    "rows_per_s": round(rows / seconds) if seconds else 0, "peak_rss_mb": round(rss.peak)})  # fmt: skip
    print(f"  {step:<42} {seconds:8.2f} s  {rows:>11,} rows  {RESULTS[-1]['rows_per_s']:>10,} rows/s  "
          f"peak RSS {RESULTS[-1]['peak_rss_mb']:>6,} MiB", flush=True)  # fmt: skip


END = date(2026, 10, 31)  # the generated data's last event day: the new day


def split_days(out: Path, tmp: Path) -> tuple[Path, Path]:
    """The generated partitions as history (every ingest date before the last event day) and the new day
    (that day and the late arrivals after it)."""
    history, new = tmp / "history", tmp / "new-day"
    for folder in (history, new):
        shutil.rmtree(folder, ignore_errors=True)
    for day in sorted(p for p in out.iterdir() if p.is_dir()):
        shutil.copytree(day, (history if day.name < f"ingest_date={END}" else new) / day.name)
    return history, new


def node_name(unique_id: str) -> str:
    """A dbt node's name: a model's or test's own, a unit test's with its model's (``unit_test.pulse.<model>.<test>``)."""
    kind, _package, name, *rest = unique_id.split(".")
    return f"{name} (unit test {rest[0]})" if kind == "unit_test" and rest else name


def dbt_breakdown(s, source: str) -> None:
    """Where the last build's time went (dbt's run_results.json), added to the last result and printed:
    dbt's own elapsed time (the rest of the step is process start and the publish), the nodes' summed
    time, and the slowest nodes."""
    run = json.loads((s.dbt_target(source) / "run_results.json").read_text())
    nodes = sorted(((r["execution_time"], node_name(r["unique_id"])) for r in run["results"]), reverse=True)
    summed = sum(t for t, _ in nodes)
    RESULTS[-1].update(dbt_elapsed_s=round(run["elapsed_time"], 2), dbt_nodes=len(nodes), dbt_node_seconds=round(summed, 2),
                       slowest_nodes=[[name, round(t, 2)] for t, name in nodes[:6]])  # fmt: skip
    slowest = ", ".join(f"{name} {t:.1f}" for t, name in nodes[:4])
    print(f"    dbt {run['elapsed_time']:.1f} s for {len(nodes)} nodes ({summed:.1f} s summed on its threads); "
          f"slowest: {slowest}", flush=True)  # fmt: skip


def state(s, source: str) -> tuple:
    """What both paths must agree on: staging counts and sums, and the marts' DAU and revenue."""
    with pg.connect(s.postgres) as conn:
        tables = ("count(*) from staging.events", "count(*) from staging.quarantine", "sum(events) from staging.users",
                  "sum(dau) from staging.daily_active_users", "sum(revenue_usd) from staging.daily_revenue")  # fmt: skip
        query = ", ".join(f"(select {t} where source = %(s)s)" for t in tables)
        staging = conn.execute(f"select {query}", {"s": source}).fetchone()
    from pulse.common.clickhouse import client

    ch = client(s.clickhouse, database=s.clickhouse.marts_database(source))
    marts = ch.query("SELECT sum(dau), count() FROM user_daily_metrics").result_rows[0]
    return (*staging, *marts)


def bench(history: int, share: float, spark) -> None:
    s = settings()
    source = f"benchinc{history}"
    days = round(1 / share)
    out = s.datasets_dir / source
    print(f"\n== {history:,} events of history, one new day of ~{share:.1%} ==")
    generate_dataset(out, GenParams(n_events=round(history * (1 + share)), days=days + 1, end_date=END, seed=17))
    hist, new = split_days(out, s.datasets_dir / f"{source}-split")
    delete_source(s.s3, source)
    upload_dataset(s.s3, hist, source)
    migrate(s.postgres)
    with pg.connect(s.postgres) as conn:  # a fresh start: no earlier loads of this source
        conn.execute("delete from staging.load_runs where source = %s", (source,))
    with measured("history: clean (full refresh)", history) as m:
        m["rows"] = job.run(s, source, spark=spark, force=True)["rows_in"]
    with measured("history: model build (full)", history):
        assert dbt_runner.build(s, source, full_refresh=True, quiet=True).ok
    dbt_breakdown(s, source)
    upload_dataset(s.s3, new, source)
    with measured("new day: clean (incremental)", history) as m:
        summary = job.run(s, source, spark=spark)
        m["rows"] = day_rows = summary["rows_in"]
    agree("the new day's load is incremental", summary["mode"], "incremental")
    with measured("new day: model build (incremental)", history):
        assert dbt_runner.build(s, source, quiet=True).ok
    dbt_breakdown(s, source)
    after_incremental = state(s, source)
    t1 = sum(r["seconds"] for r in RESULTS[-2:])
    with measured("all: clean --full-refresh", history) as m:
        m["rows"] = job.run(s, source, spark=spark, full_refresh=True)["rows_in"]
    with measured("all: model build --full-refresh", history):
        assert dbt_runner.build(s, source, full_refresh=True, quiet=True).ok
    dbt_breakdown(s, source)
    t2 = sum(r["seconds"] for r in RESULTS[-2:])
    agree(f"{history:,}: incremental and full refresh end in the same state", after_incremental, state(s, source))
    ratio = t1 / t2
    RESULTS.append({"history": history, "step": "ratio incremental/full", "value": round(ratio, 3), "day_rows": day_rows})
    print(f"incremental {t1:.1f} s vs full refresh {t2:.1f} s for one new day ({day_rows:,} events) "
          f"on {history:,} events of history: ratio {ratio:.3f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, action="append", help="events of history (repeatable; default 1000000)")
    parser.add_argument("--day-share", type=float, default=0.01, help="the new day's size as a share of the history")
    args = parser.parse_args()
    s = settings()
    print(f"Pulse incremental benchmark — {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")
    registry.up(s, ["s3", "postgres", "clickhouse"], echo=lambda _m: None)
    spark = session(s, "pulse-bench-incremental")
    for n in args.history or [1_000_000]:
        bench(n, args.day_share, spark)
    spark.stop()
    write_results("incremental", RESULTS)
    return exit_code()


if __name__ == "__main__":
    ensure_secrets()  # the installation's credentials, before any settings load
    sys.exit(main())
