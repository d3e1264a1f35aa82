"""One API for Pulse's steps, used by the CLI, the demo and the Airflow DAGs; each returns an explicit result."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pulse.config import DEMO_SOURCE, Settings


def start_services(settings: Settings, names: list[str] | None = None, echo=print) -> tuple[set[str], list]:
    """Starts the named local services (all by default; "airflow" is its four components) in order.
    Returns the names of the services asked for and every service's status after the start."""
    from pulse.services import registry

    registry.up(settings, names, echo=echo)
    return {svc.name for svc in registry.pick(settings, names)}, registry.statuses(settings)


def stop_services(settings: Settings, names: list[str] | None = None, echo=print) -> list[str]:
    """Stops the named local services (all by default). Returns those still running."""
    from pulse.services import registry

    return registry.down(settings, names, echo=echo)


def service_statuses(settings: Settings) -> list:
    """Every service's state, endpoint, pid, detail and log (ServiceStatus)."""
    from pulse.services import registry

    return registry.statuses(settings)


def prerequisites(settings: Settings) -> list:
    """What a fresh machine may lack, each checked with its fix (pulse.doctor.Check)."""
    from pulse.doctor import prerequisites as checks

    return checks(settings)


def raw_partition(settings: Settings, source: str, day: date) -> dict | None:
    """The committed RAW partition (its manifest) of ``source`` for ingest date ``day``, or None."""
    from pulse.common import s3 as s3util
    from pulse.lake import raw

    return raw.read_manifest(s3util.client(settings.s3), settings.s3, source, day.isoformat())


def dataset_dir(settings: Settings, source: str) -> Path:
    """Where a source's local RAW layout lives before it is uploaded."""
    return settings.datasets_dir / source


def generate(settings: Settings, out: Path, gen, dirt) -> dict:
    """The demo dataset (events, injected defects) into ``out``. Returns its ground truth."""
    from pulse.datagen import generate_dataset

    return generate_dataset(out, gen, dirt)


def ingest_file(
    settings: Settings,
    path: Path,
    source: str,
    ingest_date: date | None,
    mapping: dict,
    upload: bool = True,
    spec: str | None = None,
) -> dict:
    """Your own event file into the source's RAW layout (and S3). Returns lines, parts, directory, ingest date.
    With ``spec`` (a preset or a YAML file) the file's bytes are kept as they are and the spec is stored
    with the source, for the cleaning job; it is dry-run on the file's first rows first, so a wrong spec
    fails before anything is written."""
    from pulse.lake.ingest_file import ingest_file as ingest

    chosen = load_spec(spec) if spec is not None else _stored_spec(settings, source) if upload else None
    if chosen is not None:
        source_check(settings, chosen, [path], rows=1_000)
    result = ingest(path, dataset_dir(settings, source), ingest_date, mapping, spec=chosen)
    if upload:
        result["upload"] = upload_raw(settings, source)
        if chosen is not None:  # after the files: a spec never waits for files that did not arrive
            from pulse.lake.raw import put_spec

            result["spec_changed"] = put_spec(settings.s3, source, chosen)
    return result


def _stored_spec(settings: Settings, source: str):
    """The spec stored with a source's RAW files, unless it is Pulse's own layout (the default)."""
    from pulse.lake.raw import DEFAULT_SPEC, source_spec

    stored = source_spec(settings.s3, source)
    return None if stored.name == DEFAULT_SPEC else stored


def load_spec(spec: str):
    """A source spec by preset name or YAML path, validated (SpecError names the line and the field)."""
    from pulse.sources import spec as specs

    return specs.load(spec)


def source_check(settings: Settings, spec, paths: list[Path], rows: int | None = 10_000):
    """A dry run of ``spec`` on local files: what the cleaning job would load, filter and quarantine."""
    from pulse.common.spark import session
    from pulse.staging.dry_run import check

    return check(session(settings, "pulse-source-check"), spec, paths, rows)


def preset_samples() -> dict[str, Path]:
    """Each preset's sample file, in the preset's public layout (written by the project's generator)."""
    from pulse.datagen.layouts import LAYOUTS, SAMPLES_DIR

    return {name: SAMPLES_DIR / f"{name}.{suffix}" for name, (_, suffix) in LAYOUTS.items()}


def source_infer(path: Path):
    """A spec proposed from a file's first rows (a preset when the layout is a known one)."""
    from pulse.sources.infer import infer

    return infer(path)


def upload_raw(
    settings: Settings, source: str = DEMO_SOURCE, dataset: Path | None = None, correction: bool = False, spec: str | None = None
) -> dict:
    """A local RAW layout into S3, partition by partition, manifest last (idempotent); with ``spec`` (a preset
    or a YAML file, validated first) that spec is stored with the files, after them. Returns what was done."""
    from pulse.lake.raw import put_spec, upload_dataset

    chosen = load_spec(spec) if spec is not None else None  # a wrong spec fails before anything is uploaded
    done = upload_dataset(settings.s3, dataset or dataset_dir(settings, source), source, correction=correction)
    if chosen is not None:
        done["spec_changed"] = put_spec(settings.s3, source, chosen)
    return done


def migrate(settings: Settings) -> list[str]:
    """Pending staging migrations. Returns the names applied."""
    from pulse.staging.migrate import migrate as apply

    return apply(settings.postgres)


@dataclass
class Upgrade:
    migrations: list[str]  # applied now (empty: the schema was up to date)
    rebuilt: dict[str, bool]  # source -> its marts rebuilt from staging and published


def upgrade(settings: Settings, echo=print) -> Upgrade:
    """Bring an existing installation to this release: pending staging migrations (an edited applied one
    stops everything: MigrationError), then every source that has a successful load gets its marts
    rebuilt in full with this release's models (published only if every test passes)."""
    from pulse.staging.recovery import loaded_sources

    applied = migrate(settings)
    echo("migrations applied: " + (", ".join(applied) if applied else "none (up to date)"))
    rebuilt = {}
    for source in loaded_sources(settings.postgres):
        echo(f"rebuilding the marts of source {source} (full refresh)")
        rebuilt[source] = model(settings, source, full_refresh=True).ok
    return Upgrade(applied, rebuilt)


def recover(settings: Settings, source: str | None = None) -> dict[str, list[str] | None]:
    """Marks cleaning runs whose process died as failed and drops their debris, for ``source`` or every source
    with a run left 'running'. Returns source -> the runs recovered (None: a live run holds the source)."""
    from pulse.staging import recovery

    cfg = settings.postgres
    done: dict[str, list[str] | None] = {}
    for name in [source] if source else recovery.sources_with_running_runs(cfg):
        try:
            with recovery.source_lock(cfg, name):
                done[name] = recovery.recover_dead_runs(cfg, name)
        except recovery.SourceBusy:
            done[name] = None
    return done


@dataclass
class Quality:
    run: dict  # the last load's audit row with its rules
    truth: dict | None  # the generator's ground truth, when the dataset has one

    @property
    def ok(self) -> bool:
        return self.run["status"] == "succeeded"

    def report(self) -> str:
        from pulse.staging import quality

        return quality.render(self.run, self.truth)


def data_quality(settings: Settings, source: str = DEMO_SOURCE, dataset: Path | None = None) -> Quality | None:
    """The last load of ``source`` and, for generated data, its ground truth. None before any load."""
    import json

    from pulse.datagen import GROUND_TRUTH_FILE
    from pulse.staging import quality

    run = quality.last_run(settings.postgres, source)
    if run is None:
        return None
    truth_file = (dataset or dataset_dir(settings, source)) / GROUND_TRUTH_FILE
    return Quality(run, json.loads(truth_file.read_text()) if truth_file.exists() else None)


def clean(
    settings: Settings,
    source: str = DEMO_SOURCE,
    force: bool = False,
    full_refresh: bool = False,
    through: date | None = None,
) -> dict:
    """Cleaning: RAW in S3 -> Postgres staging, incremental unless ``full_refresh`` (or a full refresh is
    needed); ``through`` (a daily run's day) leaves RAW of later ingest dates to a later load. Returns the
    load's summary (run id, mode and why, counts)."""
    from pulse.staging import job

    return job.run(settings, source, force=force, full_refresh=full_refresh, through=through)


def model(settings: Settings, source: str = DEMO_SOURCE, full_refresh: bool = False, verbose: bool = False):
    """Modelling: dbt build + test (a line per completed layer), publish the marts if everything passed.
    Returns a BuildResult (its summary: models, tests, seconds)."""
    from pulse.modeling import dbt_runner

    return dbt_runner.build(settings, source, full_refresh=full_refresh, verbose=verbose)


def dbt(settings: Settings, source: str, args: list[str]) -> int:
    """A dbt command on the source's build database (nothing is published). Returns dbt's exit code."""
    from pulse.modeling import dbt_runner

    return dbt_runner.run(settings, args, source=source)


def kpis(settings: Settings, source: str = DEMO_SOURCE):
    """The KPI block of the last complete day, read from the published marts. Returns a Kpis (its day is None
    while no day is complete)."""
    from pulse.modeling.kpis import read

    return read(settings, source)


def forecast(settings: Settings, source: str = DEMO_SOURCE, run_id: str | None = None, as_of: date | None = None):
    """ML: DAU and revenue forecasts with their backtest, on complete days up to ``as_of`` (default:
    all). Returns a ForecastResult."""
    from pulse.ml.run import run_forecast
    from pulse.modeling import dbt_runner

    result = run_forecast(settings, source, run_id, as_of=as_of)
    # the ML marts join the new run with the published marts: rebuilt and published now (write–audit–publish)
    built = dbt_runner.build(settings, source, quiet=True, domain="ml")
    if not built.ok:
        raise RuntimeError(f"the ML marts of {source} did not build: {'; '.join(f.message for f in built.failures)}")
    return result


def segment(settings: Settings, source: str = DEMO_SOURCE, run_id: str | None = None, as_of: date | None = None):
    """ML: k-means user segments as of ``as_of`` (default: the last complete day). Returns a SegmentResult."""
    from pulse.ml.run import run_segment

    return run_segment(settings, source, run_id, as_of=as_of)


def ml_report(settings: Settings, fc, seg) -> Path:
    """The HTML report of a forecast and a segment run. Returns its path."""
    from pulse.ml import report

    return report.write(fc.output, fc, seg)


def check_forecast(settings: Settings, source: str, day: date, run_id: str):
    """Orchestration's data alert: ``day``'s actual DAU and revenue against the forecast made the day before
    (forecast run ``run_id``'s model and interval). Returns a list of pulse.ml.output.Check."""
    from pulse.ml import output

    return output.check_day(settings, source, day, run_id)


def write_ml_output(settings: Settings, source: str, day: date, run_id: str, orchestrator_run_id: str, checks) -> dict:
    """Orchestration: replace ``day``'s rows of ``ml_output`` (forecasts, backtest scores, segments, checks).
    Returns the table and its rows per kind."""
    from pulse.ml import output

    return output.write(settings, source, day, run_id, orchestrator_run_id, checks)


def deploy_bi(settings: Settings, source: str = DEMO_SOURCE, warm: bool = True):
    """BI: compute the memo, deploy the dashboards (memo included) and refresh their cached data.
    Returns a DeployResult (changed assets, dashboard URLs, charts warmed, the memo and where it was written)."""
    from pulse.bi import assets
    from pulse.staging.runs import last_spec
    from pulse.streaming import tables

    tables.ensure(settings)  # the Realtime dashboard's tables exist (empty) before the stream first runs
    m, md_path, _ = memo(settings, source)
    roles = last_spec(settings, source).roles  # chart titles follow the source's funnel and say what it lacks
    result = assets.deploy(settings, source, memo=m.dashboard_markdown(), warm=warm, roles=roles)
    result.memo, result.memo_path = m, md_path
    return result


def memo(settings: Settings, source: str = DEMO_SOURCE):
    """The analytical memo from the marts, written as Markdown and HTML. Returns (Memo, md path, html path)."""
    from pulse.bi import memo as memos

    m = memos.build(settings, source)
    md_path, html_path = memos.write(m, settings.reports_dir(source))
    return m, md_path, html_path


def export_bi(settings: Settings) -> list[Path]:
    """The live Superset assets back into superset/ (normalised). Returns the files that changed."""
    from pulse.bi import assets

    return assets.export(settings)


def produce_stream(settings: Settings, params, truth_path=None, echo=None):
    """Streaming: send live events to Kafka at a held rate. Returns a ProduceResult (sent, rate, ground truth)."""
    from pulse.common.progress import say
    from pulse.streaming.producer import produce

    return produce(settings, params, truth_path, echo=echo or say)


def reconcile_stream(settings: Settings, day, source: str):
    """Streaming: the batch marts vs the realtime tables for one day. Returns a Reconciliation."""
    from pulse.streaming.reconcile import reconcile

    return reconcile(settings, day, source)


def stream_burst(settings: Settings, params, echo=None):
    """Streaming: a live burst end to end: produce, wait until the streaming job wrote it all, read the
    realtime figures back. Returns a Burst (needs the stream service running)."""
    from pulse.common.progress import say
    from pulse.streaming.live import burst

    return burst(settings, params, echo or say)


def reset_stream(settings: Settings) -> str:
    """Drops the realtime tables and the streaming checkpoint (the job must be stopped). Returns the checkpoint."""
    from pulse.services.stream import StreamJob
    from pulse.streaming import tables

    if StreamJob(settings).pid() is not None:
        raise RuntimeError("the streaming job is running: `pulse services down stream` first")
    tables.reset(settings)
    if not settings.stream.checkpoint.startswith("s3a://"):
        shutil.rmtree(settings.stream.checkpoint, ignore_errors=True)
    return settings.stream.checkpoint


def run_stream(settings: Settings, timeout: float | None = None) -> None:
    """The streaming job in this process until ``timeout`` (or Ctrl-C)."""
    from pulse.streaming import job

    job.run(settings, timeout=timeout)


def last_complete_day(settings: Settings, source: str) -> date | None:
    """The newest complete day of the source's last successful load: what a daily run of it should process."""
    from pulse.orchestration.daily import last_complete_day as newest

    return newest(settings, source)


def airflow_runs(settings: Settings, limit: int = 10) -> dict[str, list]:
    """The recent runs of the daily DAG and the BI refresh. Returns DAG id -> DagRuns, newest first."""
    from pulse.orchestration.airflow_api import BI_DAG, DAILY_DAG, AirflowClient

    client = AirflowClient(settings.airflow)
    return {dag_id: client.runs(dag_id, limit=limit) for dag_id in (DAILY_DAG, BI_DAG)}


def orchestrate_day(settings: Settings, day: date, source: str = DEMO_SOURCE, wait: bool = True, echo=None):
    """Orchestration: run Airflow's ``pulse_daily`` for ``day`` (re-running the day if it ran before), follow it and
    the BI refresh it sets off. Returns a DayRun (run id, state, per-task states and seconds, ml_output)."""
    from pulse.orchestration.daily import run_day

    return run_day(settings, day, source, wait=wait, echo=echo)


def backfill(settings: Settings, start: date, end: date, source: str = DEMO_SOURCE, echo=None) -> list:
    """Orchestration: ``pulse_daily`` for each day from ``start`` to ``end`` that has a RAW partition, in order,
    one at a time (each incremental load then follows the previous one); stops at the first day that fails.
    Returns (day, DayRun or None for a day without RAW) in order."""
    from datetime import timedelta

    from pulse.lake.raw import list_committed
    from pulse.orchestration.daily import run_day

    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    have = {f.ingest_date for f in list_committed(settings.s3, source)}
    done: list = []
    day = start
    while day <= end:
        result = run_day(settings, day, source, echo=echo) if day.isoformat() in have else None
        done.append((day, result))
        if result is not None and result.state != "success":
            break
        day += timedelta(days=1)
    return done
