"""One API for Pulse's steps, used by the CLI, the demo and the Airflow DAGs; each returns an explicit result."""

from __future__ import annotations

from datetime import date

from pulse.config import DEMO_SOURCE, Settings


def raw_partition(settings: Settings, source: str, day: date) -> dict | None:
    """The committed RAW partition (its manifest) of ``source`` for ingest date ``day``, or None."""
    from pulse.common import s3 as s3util
    from pulse.lake import raw

    return raw.read_manifest(s3util.client(settings.s3), settings.s3, source, day.isoformat())


def clean(settings: Settings, source: str = DEMO_SOURCE, force: bool = False) -> dict:
    """Stage 1: RAW in S3 -> Postgres staging. Returns the load's summary (run id, counts)."""
    from pulse.staging import job

    return job.run(settings, source, force=force)


def model(settings: Settings, source: str = DEMO_SOURCE, full_refresh: bool = False):
    """Stage 2: dbt build + test, publish the marts if everything passed. Returns a BuildResult."""
    from pulse.modeling import dbt_runner

    return dbt_runner.build(settings, source, full_refresh=full_refresh)


def forecast(settings: Settings, source: str = DEMO_SOURCE, run_id: str | None = None, as_of: date | None = None):
    """Stage 5: DAU and revenue forecasts with their backtest, on complete days up to ``as_of`` (default:
    all). Returns a ForecastResult."""
    from pulse.ml.run import run_forecast

    return run_forecast(settings, source, run_id, as_of=as_of)


def segment(settings: Settings, source: str = DEMO_SOURCE, run_id: str | None = None, as_of: date | None = None):
    """Stage 5: k-means user segments as of ``as_of`` (default: the last complete day). Returns a SegmentResult."""
    from pulse.ml.run import run_segment

    return run_segment(settings, source, run_id, as_of=as_of)


def check_forecast(settings: Settings, source: str, day: date, run_id: str):
    """Stage 6's data alert: ``day``'s actual DAU and revenue against the forecast made the day before
    (forecast run ``run_id``'s model and interval). Returns a list of pulse.ml.output.Check."""
    from pulse.ml import output

    return output.check_day(settings, source, day, run_id)


def write_ml_output(settings: Settings, source: str, day: date, run_id: str, orchestrator_run_id: str, checks) -> dict:
    """Stage 6: replace ``day``'s rows of ``ml_output`` (forecasts, backtest scores, segments, checks).
    Returns the table and its rows per kind."""
    from pulse.ml import output

    return output.write(settings, source, day, run_id, orchestrator_run_id, checks)


def deploy_bi(settings: Settings, source: str = DEMO_SOURCE, warm: bool = True):
    """Stage 3: compute the memo, deploy the dashboards (memo included) and refresh their cached data.
    Returns a DeployResult (changed assets, dashboard URLs, charts warmed, the memo and where it was written)."""
    from pulse.bi import assets, memo
    from pulse.streaming import tables

    tables.ensure(settings)  # the Realtime dashboard's tables exist (empty) before the stream first runs
    m = memo.build(settings, source)
    md_path, _ = memo.write(m, settings.reports_dir(source))
    result = assets.deploy(settings, source, memo=m.dashboard_markdown(), warm=warm)
    result.memo, result.memo_path = m, md_path
    return result


def produce_stream(settings: Settings, params, truth_path=None, echo=None):
    """Stage 4: send live events to Kafka at a held rate. Returns a ProduceResult (sent, rate, ground truth)."""
    from pulse.common.progress import say
    from pulse.streaming.producer import produce

    return produce(settings, params, truth_path, echo=echo or say)


def reconcile_stream(settings: Settings, day, source: str):
    """Stage 4: the batch marts vs the realtime tables for one day. Returns a Reconciliation."""
    from pulse.streaming.reconcile import reconcile

    return reconcile(settings, day, source)


def stream_burst(settings: Settings, params, echo=None):
    """Stage 4: a live burst end to end: produce, wait until the streaming job wrote it all, read the
    realtime figures back. Returns a Burst (needs the stream service running)."""
    from pulse.common.progress import say
    from pulse.streaming.live import burst

    return burst(settings, params, echo or say)


def orchestrate_day(settings: Settings, day: date, source: str = DEMO_SOURCE, wait: bool = True, echo=None):
    """Stage 6: run Airflow's ``pulse_daily`` for ``day`` (re-running the day if it ran before), follow it and
    the BI refresh it sets off. Returns a DayRun (run id, state, per-task states and seconds, ml_output)."""
    from pulse.orchestration.daily import run_day

    return run_day(settings, day, source, wait=wait, echo=echo)
