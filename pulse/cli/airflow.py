"""``pulse airflow run|runs``: the daily DAG through Airflow's REST API."""

from __future__ import annotations

import argparse
from datetime import date

from pulse import pipeline
from pulse.cli.common import add_source, login_hint
from pulse.config import Settings, settings


def register(sub) -> None:
    p = sub.add_parser(
        "airflow",
        help="run the pulse_daily DAG for a day through Airflow (and follow it), or list recent runs",
        description="run: trigger pulse_daily for --day (default: the last complete day of the source's last load) "
        "through Airflow's REST API, follow its tasks, print the result (a day that has a run is run again); "
        "runs: the recent runs of pulse_daily and pulse_bi_refresh; "
        "backfill: pulse_daily for each day from --from to --to that has RAW, in order, one at a time, stopping at a "
        "failed day. `pulse services up airflow` starts Airflow.",
    )
    p.add_argument("action", choices=["run", "runs", "backfill"])
    p.add_argument("--day", type=date.fromisoformat, help="run: the day to process (YYYY-MM-DD)")
    p.add_argument("--from", dest="start", type=date.fromisoformat, help="backfill: the first day (YYYY-MM-DD)")
    p.add_argument("--to", dest="end", type=date.fromisoformat, help="backfill: the last day (YYYY-MM-DD)")
    add_source(p, help="run: the source (default %(default)s)")
    p.add_argument("--no-wait", action="store_true", help="run: trigger and return")
    p.add_argument("--limit", type=int, default=10, help="runs: how many per DAG (default %(default)s)")
    p.set_defaults(fn=run_airflow)


def day_to_run(s: Settings, source: str) -> date:
    """The newest complete day of a source's last successful load: what a daily run of it should process."""
    day = pipeline.last_complete_day(s, source)
    if day is None:
        raise SystemExit(f"no successful load of source {source} yet: give --day YYYY-MM-DD")
    return day


def print_day(s: Settings, result) -> None:
    took = f" in {result.seconds:.0f}s" if result.seconds is not None else ""
    print(f"  run {result.run_id}: {result.state}{took}")
    for task_id, (state, seconds) in result.tasks.items():
        print(f"    {task_id:<14} {state:<16} {f'{seconds:.1f}s' if seconds else ''}")
    if result.ml_output:
        print(f"  ml_output: {result.ml_output['rows']} rows in {result.ml_output['table']}")
        for check in result.ml_output["checks"]:
            print(f"  {'ALERT ' if check['outside'] else 'ok    '}{check['text']}")
    if result.data_alert and result.data_alert.get("sent"):
        print(f"  data alert sent: {result.data_alert['sent']}")
    if result.bi:
        print(f"  BI refresh (pulse_bi_refresh, set off by the ml_output asset): {result.bi}")
    print(f"  Airflow: {result.url}")
    print(login_hint(s, "airflow", s.airflow.admin_user, s.airflow.managed))


def run_airflow(args: argparse.Namespace) -> int:
    s = settings()
    if args.action == "runs":
        for dag_id, runs in pipeline.airflow_runs(s, args.limit).items():
            for run in runs:
                took = f"{run.seconds:7.1f}s" if run.seconds is not None else "      -"
                print(f"{dag_id:<17} {run.state:<8} {took}  logical {run.logical_date or '-':<21} {run.run_id}  {run.conf or ''}")
        return 0
    if args.action == "backfill":
        return run_backfill(s, args)
    day = args.day or day_to_run(s, args.source)
    print(f"[airflow] pulse_daily for {day} (source {args.source}) -> {s.airflow.base_url}")
    result = pipeline.orchestrate_day(s, day, args.source, wait=not args.no_wait, echo=print)  # task states as they change
    print_day(s, result)
    return 0 if result.state in ("success", "queued", "running") else 1


def run_backfill(s: Settings, args: argparse.Namespace) -> int:
    if not (args.start and args.end):
        raise SystemExit("backfill needs --from YYYY-MM-DD and --to YYYY-MM-DD")
    print(f"[airflow] backfill pulse_daily {args.start} .. {args.end} (source {args.source}), one day at a time")
    done = pipeline.backfill(s, args.start, args.end, args.source)
    for day, result in done:
        if result is None:
            print(f"  {day}: no RAW partition, skipped")
        else:
            took = f" in {result.seconds:.0f}s" if result.seconds is not None else ""
            print(f"  {day}: {result.state}{took}  {result.url}")
    failed = [r for _, r in done if r is not None and r.state != "success"]
    if failed:
        print(f"stopped at {failed[0].day}: the later days were not run (fix it, then backfill from that day)")
    return 1 if failed else 0
