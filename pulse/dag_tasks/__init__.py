"""What each task of the ``pulse_daily`` DAG does, in Pulse's venv: one ``pulse.pipeline`` call and a
small JSON-able result for XCom (run ids, counts), never a DataFrame. A failing step raises."""

from __future__ import annotations

from datetime import date

from pulse import pipeline
from pulse.config import settings
from pulse.domain import source_name


def ml_run_id(source: str, day: str) -> str:
    """One ML run per scheduled day and source: re-running the day replaces its rows."""
    return f"daily-{source}-{day}"


def clean(source: str, day: str | None = None) -> dict:
    """The load of ``day``'s run: RAW up to that ingest date (a backfill's runs then load a day each)."""
    through = date.fromisoformat(day) if day else None
    result = pipeline.clean(settings(), source_name(source), through=through)
    keep = ("run_id", "source", "mode", "mode_reason", "rows_in", "rows_out", "complete_through", "quarantined")
    return {k: result[k] for k in keep}


def build_marts(source: str) -> dict:
    result = pipeline.model(settings(), source_name(source))
    if not result.ok:
        failed = "; ".join(f"{f.node}: {f.status} {f.message[:300]}" for f in result.failures[:5])
        raise RuntimeError(f"dbt build failed, nothing published ({result.marts_database} keeps the previous marts): {failed}")
    return {"marts_database": result.marts_database, "published": len(result.published), "summary": result.summary}


def forecast(source: str, day: str) -> dict:
    fc = pipeline.forecast(settings(), source_name(source), ml_run_id(source, day), as_of=date.fromisoformat(day))
    ahead = {
        m: {"date": f.target_date.iloc[0].date().isoformat(), "yhat": round(float(f.yhat.iloc[0]), 2)}
        for m, f in fc.forecasts.items()
    }
    return {"run_id": fc.run_id, "as_of": fc.as_of, "chosen": fc.best, "next_day": ahead, "seconds": fc.seconds}


def segment(source: str, day: str) -> dict:
    seg = pipeline.segment(settings(), source_name(source), ml_run_id(source, day), as_of=date.fromisoformat(day))
    return {"run_id": seg.run_id, "as_of": seg.as_of, "k": seg.k, "sizes": {k: int(v) for k, v in seg.sizes.items()}}


def ml_output(source: str, day: str, orchestrator_run_id: str) -> dict:
    """Check the day against the forecast (the data alert's input), then write the day's ml_output rows."""
    from pulse.ml.output import checks_as_dicts

    s, d = settings(), date.fromisoformat(day)
    checks = pipeline.check_forecast(s, source_name(source), d, ml_run_id(source, day))
    written = pipeline.write_ml_output(s, source, d, ml_run_id(source, day), orchestrator_run_id, checks)
    return written | {"checks": checks_as_dicts(checks)}


def refresh_bi(source: str) -> dict:
    result = pipeline.deploy_bi(settings(), source_name(source))
    if result.failed:
        raise RuntimeError(f"{len(result.failed)} chart(s) failed to refresh: {result.failed}")
    return {
        "changed": len(result.changed),
        "charts_refreshed": result.warmed,
        "dashboards": result.dashboards,
        "memo": str(result.memo_path) if result.memo_path else None,
        "seconds": round(result.seconds, 2),
    }
