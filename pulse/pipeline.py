"""One API for Pulse's steps, used by the CLI (and the demo); each returns an explicit result."""

from __future__ import annotations

from pulse.config import DEMO_SOURCE, Settings


def clean(settings: Settings, source: str = DEMO_SOURCE, force: bool = False) -> dict:
    """Stage 1: RAW in S3 -> Postgres staging. Returns the load's summary (run id, counts)."""
    from pulse.staging import job

    return job.run(settings, source, force=force)


def model(settings: Settings, source: str = DEMO_SOURCE, full_refresh: bool = False):
    """Stage 2: dbt build + test, publish the marts if everything passed. Returns a BuildResult."""
    from pulse.modeling import dbt_runner

    return dbt_runner.build(settings, source, full_refresh=full_refresh)


def forecast(settings: Settings, source: str = DEMO_SOURCE, run_id: str | None = None):
    """Stage 5: DAU and revenue forecasts with their backtest. Returns a ForecastResult."""
    from pulse.ml.run import run_forecast

    return run_forecast(settings, source, run_id)


def segment(settings: Settings, source: str = DEMO_SOURCE, run_id: str | None = None):
    """Stage 5: k-means user segments. Returns a SegmentResult."""
    from pulse.ml.run import run_segment

    return run_segment(settings, source, run_id)


def deploy_bi(settings: Settings, source: str = DEMO_SOURCE, warm: bool = True):
    """Stage 3: compute the memo, deploy the dashboards (memo included) and refresh their cached data.
    Returns a DeployResult (changed assets, dashboard URLs, charts warmed, the memo and where it was written)."""
    from pulse.bi import assets, memo
    from pulse.streaming import tables

    tables.ensure(settings)  # the Realtime dashboard's tables exist (empty) before the stream first runs
    m = memo.build(settings, source)
    md_path, _ = memo.write(m, settings.home / "reports" / source)
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
