"""Cleaning benchmark: generate -> upload -> Spark clean -> Postgres load, with a DuckDB baseline.

Prints rows/s, seconds and peak RSS (this process + children: the Spark JVM and its Python
workers) per step, the Spark/DuckDB time ratio, and (--jdbc) COPY vs JDBC load rates for the events table.
(The S3A reader was chosen over the former Python data source with this benchmark: see the README.)

    .venv/bin/python bench/bench_stage1.py --events 1000000 [--events 10000000] [--reuse] [--jdbc]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb_baseline
from measure import PeakRss, agree, exit_code, write_results

from pulse.common import pg
from pulse.common.progress import tree_rss_mb
from pulse.common.spark import session
from pulse.config import ensure_secrets, settings
from pulse.datagen import GROUND_TRUTH_FILE, generate_dataset
from pulse.datagen.events import GenParams
from pulse.lake.raw import delete_source, list_committed, source_spec, upload_dataset
from pulse.services import registry
from pulse.staging import job, load, rules, transform

RESULTS: list[dict] = []


@contextmanager
def measured(step: str, n_events: int, rows: int | None = None):
    info: dict = {"rows": rows}
    with PeakRss(tree_rss_mb) as rss:
        t0 = time.perf_counter()
        yield info
        seconds = time.perf_counter() - t0
    r = info["rows"] or 0
    RESULTS.append(
        {
            "events": n_events,
            "step": step,
            "seconds": round(seconds, 2),
            "rows": r,
            "rows_per_s": round(r / seconds) if seconds else 0,
            "peak_rss_mb": round(rss.peak),
        }
    )
    print(
        f"  {step:<34} {seconds:8.2f} s  {r:>11,} rows  {RESULTS[-1]['rows_per_s']:>10,} rows/s  "
        f"peak RSS {RESULTS[-1]['peak_rss_mb']:>6,} MiB",
        flush=True,
    )


def bench(n_events: int, jdbc: bool, spark, reuse: bool) -> None:
    s = settings()
    source = f"bench{n_events}"
    out = s.datasets_dir / source
    print(f"\n== {n_events:,} events ==")
    committed = list_committed(s.s3, source) if reuse else []
    if not (committed and all(f.md5 for f in committed)):  # manifests from before MD5s were recorded: re-upload
        with measured("generate", n_events) as m:
            truth = generate_dataset(out, GenParams(n_events=n_events, seed=11))
            m["rows"] = truth["raw_rows"]
        delete_source(s.s3, source)  # measure a real upload, not the no-op of a repeated one
        with measured("upload to S3 (RAW + manifests)", n_events, truth["raw_rows"]):
            upload_dataset(s.s3, out, source)
    with measured("duckdb baseline (same rules)", n_events) as m:
        base = duckdb_baseline.run(out)
        m["rows"] = base["rows_in"]
    with measured("spark job total (S3A -> staging)", n_events) as m:
        summary = job.run(s, source, spark=spark)
        m["rows"] = summary["rows_in"]
    for part, key in (
        ("parse/validate/dedup", "spark_seconds"),
        ("COPY (events, quarantine)", "copy_seconds"),
        ("aggregate in Postgres", "aggregate_seconds"),
        ("index new partitions", "index_seconds"),
        ("swap transaction", "swap_seconds"),
    ):
        RESULTS.append({"events": n_events, "step": f"  of which {part}", "seconds": summary[key]})
        print(f"    of which {part:<22} {summary[key]:8.2f} s")
    spark_clean = summary["spark_seconds"] + summary["copy_seconds"] + summary["aggregate_seconds"]
    ratio = spark_clean / base["seconds"]
    print(
        f"    spark clean+aggregate+COPY {spark_clean:.1f}s vs duckdb clean+aggregate {base['seconds']:.1f}s "
        f"-> ratio {ratio:.1f}x (goal <= 3x); kept: spark {summary['rows_out']:,} / duckdb {base['kept']:,}"
    )
    RESULTS.append({"events": n_events, "step": "ratio spark/duckdb", "value": round(ratio, 2)})
    agree(f"{n_events:,} events: rows read, spark vs duckdb", summary["rows_in"], base["rows_in"])
    agree(f"{n_events:,} events: rows kept, spark vs duckdb", summary["rows_out"], base["kept"])
    if (out / GROUND_TRUTH_FILE).exists():
        truth = json.loads((out / GROUND_TRUTH_FILE).read_text())
        agree(f"{n_events:,} events: rows kept, spark vs the generator's truth", summary["rows_out"], truth["clean_events"])
    with pg.connect(s.postgres) as conn:
        [(revenue,)] = conn.execute("select sum(revenue_usd) from staging.daily_revenue where source = %s", (source,)).fetchall()
    agree(f"{n_events:,} events: revenue (USD), spark vs duckdb", str(revenue), base["revenue_usd"])

    if not jdbc:
        return
    # COPY vs JDBC for the biggest table, from the same cached DataFrame
    raw, compiled = job.read_raw(spark, s, list_committed(s.s3, source), source_spec(s.s3, source))
    events = transform.clean_events(rules.classify(raw, compiled), source, "bench").cache()
    n = events.count()
    with pg.connect(s.postgres) as conn:
        conn.execute("create unlogged table if not exists staging_load.bench_copy (like staging.events)")
        conn.execute("truncate staging_load.bench_copy")
    with measured("load events: COPY (psycopg)", n_events, n):
        load.copy_dataframe(events, s.postgres.conninfo(), "staging_load", "bench_copy", job.new_run_id())
    if jdbc:
        with measured("load events: JDBC (Spark writer)", n_events, n):
            (
                events.write.mode("overwrite")
                .option("batchsize", 10_000)
                .option("truncate", "true")
                .jdbc(
                    s.postgres.jdbc_url,
                    "staging_load.bench_jdbc",
                    properties={"user": s.postgres.user, "password": s.postgres.password, "driver": "org.postgresql.Driver"},
                )
            )
    events.unpersist()
    with pg.connect(s.postgres) as conn:
        conn.execute("drop table if exists staging_load.bench_copy")
        conn.execute("drop table if exists staging_load.bench_jdbc")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, action="append", help="dataset size (repeatable; default 1000000)")
    parser.add_argument("--jdbc", action="store_true", help="also compare COPY with Spark's JDBC writer (events table)")
    parser.add_argument("--reuse", action="store_true", help="keep an already uploaded dataset (skip generate + upload)")
    args = parser.parse_args()
    s = settings()
    print(
        f"Pulse cleaning benchmark — {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"spark master {s.spark.master}"
    )
    registry.up(s, ["s3", "postgres"], echo=lambda _m: None)
    t0 = time.perf_counter()
    spark = session(s, "pulse-bench")
    print(f"  spark session start-up: {time.perf_counter() - t0:.1f}s (not counted below)")
    for n in args.events or [1_000_000]:
        bench(n, args.jdbc, spark, args.reuse)
    spark.stop()
    write_results("stage1", RESULTS)
    return exit_code()


if __name__ == "__main__":
    ensure_secrets()  # the installation's credentials, before any settings load
    sys.exit(main())
