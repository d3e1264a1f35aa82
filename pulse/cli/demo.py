"""``pulse demo``: the whole platform on generated data, step by step."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pulse import pipeline
from pulse.cli.airflow import day_to_run, print_day
from pulse.cli.bi import print_deploy
from pulse.cli.cleaning import print_quality
from pulse.cli.data import add_generate_options, demo_source, generation, print_generated
from pulse.cli.ml import report
from pulse.cli.model import print_build
from pulse.config import Settings, settings_with_secrets

STEPS = 10


def register(sub) -> None:
    p = sub.add_parser("demo", help="start the services and run every step on generated demo data")
    add_generate_options(p)
    p.set_defaults(fn=run_demo)


def step(n: int, what: str) -> None:
    print(f"{'' if n == 1 else chr(10)}[{n}/{STEPS}] {what}")


def load(s: Settings, source: str, dataset: Path, args: argparse.Namespace) -> bool:
    """Steps 2–5: generate, upload, clean, model. False when a step failed (it printed why)."""
    step(2, "demo dataset")
    print_generated(pipeline.generate(s, dataset, *generation(args)), dataset)
    step(3, "RAW layer in S3")
    print(json.dumps(pipeline.upload_raw(s, source, dataset)))
    step(4, "Spark cleaning job -> Postgres staging")
    pipeline.clean(s, source)
    if print_quality(s, source, dataset):
        return False
    step(5, "dbt: staging -> intermediate -> marts in ClickHouse (models and tests)")
    if print_build(s, pipeline.model(s, source)):
        return False
    kpis = pipeline.kpis(s, source)
    print(f"\nMarts in ClickHouse {s.clickhouse.url} (database {kpis.database}): {', '.join(kpis.marts)}")
    print(kpis.line())
    print("`pulse status` lists the services and their logs; `pulse model docs` documents every model.")
    return True


def presets(s: Settings) -> None:
    """Step 6: bring your own dataset: each preset dry-run on its sample (nothing is written)."""
    from pulse.cli.source import print_sample

    step(6, "Bring your own dataset: the presets on their sample files (dry run: nothing is written)")
    for name, path in pipeline.preset_samples().items():
        print_sample(pipeline.source_check(s, pipeline.load_spec(name), [path], rows=None), path)
    print("  your own file: `pulse source infer FILE` proposes a spec; docs/sources.md explains each key")


def analyse(s: Settings, source: str) -> None:
    """Steps 7–9: ML, BI, a live burst through the stream."""
    step(7, "ML: DAU and revenue forecasts (backtest), user segments, report")
    report(s, source)
    step(8, "BI: the analytical memo and the Superset dashboards")
    result = pipeline.deploy_bi(s, source)
    print(f"\n{result.memo.markdown(with_sql=False)}\n")
    print_deploy(s, result)
    from pulse.streaming.producer import ProduceParams

    step(9, "Streaming: a live burst, producer -> Kafka -> Spark Structured Streaming -> ClickHouse")
    print(pipeline.stream_burst(s, ProduceParams(rate=2_000, duration=15, dirty_rate=0.02)).report())
    print(f"  Realtime dashboard (refreshes every 10 s): {s.superset.base_url}/superset/dashboard/realtime/")
    print("  more: `pulse stream produce --rate 5000 --duration 60` while the dashboard is open")


def run_demo(args: argparse.Namespace) -> int:
    source = demo_source(args)
    # Airflow's DAGs (and the BI refresh its ml_output asset sets off) follow the configured source;
    # a demo of another size brings its own source, unless one was configured
    os.environ.setdefault("PULSE_AIRFLOW_SOURCE", source)
    s = settings_with_secrets()  # the services need the installation's credentials
    dataset = Path(args.out) if args.out else pipeline.dataset_dir(s, source)
    from pulse.services import registry

    step(1, f"services (demo source {source})")
    registry.up(s)
    if not load(s, source, dataset, args):
        return 1
    presets(s)
    analyse(s, source)
    day = day_to_run(s, source)
    step(10, f"Airflow: pulse_daily for {day} (RAW → staging → marts → ML → ml_output → data alert → BI refresh)")
    result = pipeline.orchestrate_day(s, day, source, echo=print)
    print_day(s, result)
    return 0 if result.state == "success" else 1
