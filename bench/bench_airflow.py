"""Orchestration benchmark: the platform's daily run through Airflow vs the same steps called directly.

1. Airflow at rest: CPU (% of one core) and RSS of each component (api-server, scheduler, dag-processor,
   triggerer) over ``--idle`` seconds, all services up.
2. The baseline, measured in the same run: the daily steps called in-process through ``pulse.pipeline``
   (clean, dbt build, forecast, segment, ml_output, BI refresh) on a ``--events`` dataset.
3. ``pulse_daily`` for the same day through Airflow's REST API: end-to-end seconds, seconds per task,
   trigger-to-start latency (run queued → first task started), and the asset-triggered BI refresh.
Prints the table and the ratio Airflow / direct; writes bench/results/airflow-<time>.json.

With ``--onto SOURCE`` (a source already loaded, e.g. ``benchinc10000000`` after bench_incremental.py) it
measures the daily path for *one new day* on that history instead: two new days of ``--day-events`` events
are generated after the source's last RAW day; the first goes through the direct steps (the baseline), the
second through ``pulse_daily`` (goal: ≤ 90 s end to end on 10M events of history).

    .venv/bin/python bench/bench_airflow.py [--events 1000000] [--idle 60]
    .venv/bin/python bench/bench_airflow.py --onto benchinc10000000 [--day-events 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Sampler, write_results

from pulse import dag_tasks as tasks
from pulse import pipeline
from pulse.config import ensure_secrets, load_settings
from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.lake import raw
from pulse.orchestration.airflow_api import BI_DAG, DAILY_DAG, AirflowClient, parse_ts
from pulse.services import registry
from pulse.services.airflow import AIRFLOW_SERVICES

DAY = date(2026, 10, 31)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--onto", help="a source already loaded: measure one new day on its history (see above)")
    ap.add_argument("--day-events", type=int, default=100_000, help="with --onto: events of each new day")
    args = ap.parse_args()
    s = load_settings()
    source = args.onto or f"bench{args.events}"
    gib = psutil.virtual_memory().total / 2**30
    print(f"Pulse orchestration benchmark — {psutil.cpu_count()} cores, {gib:.0f} GiB, source {source}")
    registry.up(s, ["s3", "postgres", "clickhouse", "superset", "airflow"], echo=lambda m: None)
    client = AirflowClient(s.airflow)
    client.wait_for_dag(DAILY_DAG)
    client.set_paused(BI_DAG, False)

    if args.onto:
        direct_day, airflow_day, upload_airflow_day = new_days(s, source, args.day_events)
    else:
        direct_day = airflow_day = DAY
        upload_airflow_day = None
        out = s.datasets_dir / source
        if not out.exists():
            print(f"==> generating {args.events:,} events")
            gen = GenParams(n_events=args.events, days=180, end_date=DAY, seed=42)
            generate_dataset(out, gen, DirtParams(rate=0.02))
        raw.upload_dataset(s.s3, out, source)

    print(f"==> Airflow at rest for {args.idle:.0f}s")
    time.sleep(10)  # let start-up parsing settle
    pids = {cls(s).component: cls(s).pid() for cls in AIRFLOW_SERVICES}
    with Sampler(pids) as idle:
        time.sleep(args.idle)
    rest = {c: (sum(v) / max(len(v), 1), idle.rss[c]) for c, v in idle.cpu.items()}

    print("==> baseline: the same steps called directly (pulse.pipeline, in this process)")
    direct: dict[str, float] = {}
    day = direct_day.isoformat()
    steps = [
        ("clean", lambda: tasks.clean(source)),
        ("build_marts", lambda: tasks.build_marts(source)),
        ("forecast", lambda: tasks.forecast(source, day)),
        ("segment", lambda: tasks.segment(source, day)),
        ("ml_output", lambda: tasks.ml_output(source, day, "bench-direct")),
        ("refresh_bi", lambda: tasks.refresh_bi(source)),
    ]
    for name, fn in steps:
        t0 = time.perf_counter()
        fn()
        direct[name] = time.perf_counter() - t0
        print(f"    {name:<12} {direct[name]:7.1f}s")

    if upload_airflow_day:
        upload_airflow_day()
    print(f"==> pulse_daily through Airflow for {airflow_day}")
    asked = datetime.now(UTC)
    with Sampler({c: p for c, p in pids.items() if p}) as busy:
        result = pipeline.orchestrate_day(s, airflow_day, source, echo=print)
    run = client.run(DAILY_DAG, result.run_id)
    tis = client.task_instances(DAILY_DAG, result.run_id)
    first_start = min(parse_ts(t["start_date"]) for t in tis if t.get("start_date"))
    latency = (first_start - parse_ts(run.queued_at)).total_seconds()
    bi = client.next_run(BI_DAG, asked, appear_within=0)  # orchestrate_day has followed it to its end already
    bi_seconds = bi.seconds if bi else None
    bi_lag = (parse_ts(bi.queued_at) - parse_ts(run.end_date)).total_seconds() if bi and bi.queued_at and run.end_date else None

    print(f"\n{'Airflow component':<16} {'idle CPU %':>10} {'idle RSS MiB':>13} {'peak RSS MiB (run)':>19}")
    for c, (cpu, rss) in rest.items():
        print(f"{c:<16} {cpu:10.1f} {rss:13.0f} {busy.rss.get(c, 0):19.0f}")
    print(f"{'total':<16} {sum(v[0] for v in rest.values()):10.1f} {sum(v[1] for v in rest.values()):13.0f}")
    airflow_steps = {t["task_id"]: t.get("duration") or 0.0 for t in tis}
    airflow_steps["refresh_bi"] = bi_seconds or 0.0
    print(f"\n{'step':<14} {'direct s':>9} {'Airflow task s':>15}")
    for name in ["wait_for_raw", *direct, "data_alert"]:
        d = f"{direct[name]:9.1f}" if name in direct else f"{'-':>9}"
        print(f"{name:<14} {d} {airflow_steps.get(name, 0.0):15.1f}")
    total_direct = sum(direct.values())
    total_airflow = (run.seconds or 0) + (bi_seconds or 0)
    parts = f"pulse_daily {run.seconds:.1f}s + BI refresh {bi_seconds or 0:.1f}s"
    print(f"{'end to end':<14} {total_direct:9.1f} {total_airflow:15.1f}   ({parts})")
    print(f"ratio Airflow / direct: {total_airflow / total_direct:.2f}x; trigger-to-start latency {latency:.1f}s; "
          f"ml_output asset -> BI refresh queued {bi_lag if bi_lag is not None else float('nan'):.1f}s")  # fmt: skip
    write_results(
        "airflow",
        [{"events": None if args.onto else args.events, "onto": args.onto, "day_events": args.day_events if args.onto else None,
          "direct_day": day, "airflow_day": airflow_day.isoformat(),
          "state": result.state, "idle": rest, "peak_rss_run": busy.rss, "direct": direct,
          "airflow_tasks": airflow_steps, "dag_seconds": run.seconds, "bi_seconds": bi_seconds,
          "trigger_to_start": latency, "asset_to_bi": bi_lag, "ratio": total_airflow / total_direct}],
    )  # fmt: skip
    return 0 if result.state == "success" else 1


def new_days(s, source: str, events: int):
    """Two new days of ``events`` each after the source's last RAW day (its late arrivals included), generated
    apart so that neither's partitions overlap the other's or the history's: the first is uploaded now (the
    direct steps load it), the second only by the returned callable (pulse_daily loads it)."""
    history = s.datasets_dir / source
    last = max(date.fromisoformat(p.name.split("=")[1]) for p in history.iterdir() if p.name.startswith("ingest_date="))
    days = (last + timedelta(days=1), last + timedelta(days=8))  # late copies arrive up to 5 days after
    folders = []
    for i, day in enumerate(days):
        out = s.datasets_dir / f"{source}-newday-{day}"
        generate_dataset(out, GenParams(n_events=events, days=1, end_date=day, seed=900 + i), DirtParams(rate=0.02))
        folders.append(out)
    raw.upload_dataset(s.s3, folders[0], source)
    return days[0], days[1], lambda: raw.upload_dataset(s.s3, folders[1], source)


if __name__ == "__main__":
    ensure_secrets()  # the installation's credentials, before any settings load
    sys.exit(main())
