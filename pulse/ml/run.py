"""The ML steps of the pipeline: forecast DAU and revenue, segment users; results to ClickHouse and S3,
pictures to the run's output folder. Each step returns an explicit result."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from pulse.common.clickhouse import client as ch_client
from pulse.common.progress import say, ticker
from pulse.config import Settings
from pulse.ml import charts, forecast, segment, store

METRICS = {  # metric -> (published mart, date column, value column)
    "dau": ("user_daily_metrics", "metric_date", "dau"),
    "revenue": ("revenue_daily", "revenue_date", "revenue_usd"),
}


FORECAST_COLUMNS = [
    "metric", "model", "target_date", "horizon", "yhat", "yhat_lower", "yhat_upper", "is_backtest", "origin", "actual",
]  # fmt: skip


def new_run_id() -> str:
    return datetime.now(UTC).strftime("ml-%Y%m%dT%H%M%S")


def output_dir(settings: Settings, source: str, run_id: str) -> Path:
    path = settings.ml_dir(source) / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def daily_series(settings: Settings, source: str, metric: str, as_of: date | None = None) -> pd.Series:
    """The metric per *complete* day from the published marts, gap-free (a day without rows is 0),
    up to ``as_of`` when given (a scheduled run for an older day sees only what was known then)."""
    table, day, value = METRICS[metric]
    client = ch_client(settings.clickhouse, database=settings.clickhouse.marts_database(source))
    frame = client.query_df(f"SELECT {day} AS day, toFloat64({value}) AS v FROM {table} WHERE is_complete ORDER BY day")
    if frame.empty:
        raise ValueError(f"no complete days in {table} of source {source}: build the marts first")
    series = frame.set_index(pd.to_datetime(frame.day)).v.asfreq("D", fill_value=0.0).rename(metric)
    if as_of is not None:
        series = series.loc[: pd.Timestamp(as_of)]
        if series.empty:
            raise ValueError(f"no complete days in {table} of source {source} up to {as_of}")
    return series


@dataclass
class ForecastResult:
    run_id: str
    source: str
    as_of: str
    best: dict[str, str]  # metric -> chosen model
    scores: pd.DataFrame  # metric, model, horizon, mae, mape, smape, mase, folds
    forecasts: dict[str, pd.DataFrame]
    artefacts: str
    output: Path
    seconds: float
    pictures: list[Path] = field(default_factory=list)

    def table(self) -> str:
        """The backtest table: MASE (and MAPE) per metric, model and horizon."""
        rows = self.scores[self.scores.horizon.isin(forecast.HORIZONS)]
        lines = [f"{'metric':<8} {'model':<15} " + " ".join(f"{'h=' + str(h):>16}" for h in forecast.HORIZONS)]
        for (metric, model), g in rows.groupby(["metric", "model"], sort=True):
            cells = [f"MASE {r.mase:5.2f} MAPE {r.mape:5.1f}%" for r in g.sort_values("horizon").itertuples()]
            mark = " *" if self.best[metric] == model else ""
            lines.append(f"{metric:<8} {model + mark:<15} " + " ".join(f"{c:>16}" for c in cells))
        return (
            "\n".join(lines)
            + "\n(* chosen on the backtest: lowest mean MASE over h = 1, 7, 14; MASE < 1 beats the seasonal-naive scale)"
        )


def run_forecast(
    settings: Settings, source: str, run_id: str | None = None, seed: int = 42, as_of: date | None = None
) -> ForecastResult:
    t0 = time.perf_counter()
    run_id = run_id or new_run_id()
    out = output_dir(settings, source, run_id)
    frames_fc, frames_metrics, best, forecasts, models, all_scores = [], [], {}, {}, {}, []
    last_day = None
    pictures: list[Path] = []
    for metric in METRICS:
        series = daily_series(settings, source, metric, as_of)
        last_day = series.index[-1].date()
        say(f"    {metric}: backtest on {len(series)} complete days to {last_day}")
        bt = forecast.backtest(series, metric, seed=seed, tick=ticker(f"{metric} backtest folds"))
        fwd, model = forecast.forward(series, bt, seed=seed)
        best[metric], forecasts[metric], models[metric] = bt.best, fwd, model
        preds = bt.predictions.assign(metric=metric, is_backtest=True, yhat_lower=np.nan, yhat_upper=np.nan)
        frames_fc.append(preds.assign(origin=preds.origin.dt.date, target_date=preds.target_date.dt.date)[FORECAST_COLUMNS])
        ahead = {"metric": metric, "model": bt.best, "is_backtest": False, "origin": last_day, "actual": np.nan}
        frames_fc.append(
            fwd.assign(**ahead, horizon=range(1, len(fwd) + 1), target_date=fwd.target_date.dt.date)[FORECAST_COLUMNS]
        )
        scores = bt.scores.assign(metric=metric, is_chosen=lambda s, b=bt.best: s.model == b)
        all_scores.append(scores)
        frames_metrics.append(scores[["metric", "model", "horizon", "mae", "mape", "smape", "mase", "folds", "is_chosen"]])
        # the random forest's feature importance is drawn whichever model won: it shows what drives the series
        forest = model if bt.best == "random_forest" else forecast.Model("random_forest", seed).fit(series)
        pictures += charts.forecast_pictures(out, metric, series, bt, fwd, forest.feature_importance())
    fc = pd.concat(frames_fc, ignore_index=True)
    fc["horizon"] = fc.horizon.astype("uint8")
    metrics = pd.concat(frames_metrics, ignore_index=True)
    metrics["folds"] = metrics.folds.astype("uint16")
    metrics["horizon"] = metrics.horizon.astype("uint8")
    metadata = {
        "run_id": run_id,
        "source": source,
        "as_of": last_day,
        "chosen": best,
        "features": list(models["dau"].columns) if hasattr(models["dau"], "columns") else None,
        "library_versions": _versions(),
        "metrics": metrics.to_dict("records"),
    }
    artefacts = store.save_artefact(settings, source, "forecast", run_id, models, metadata)
    store.write_run(settings, source, "forecast", run_id, last_day, {"ml_forecasts": fc, "ml_model_metrics": metrics},
                    {"chosen": best, "artefacts": artefacts})  # fmt: skip
    (out / "backtest.json").write_text(json.dumps(metadata, indent=1, default=str))
    return ForecastResult(run_id, source, str(last_day), best, pd.concat(all_scores), forecasts, artefacts, out,
                          round(time.perf_counter() - t0, 2), pictures)  # fmt: skip


def user_activity(settings: Settings, source: str) -> pd.DataFrame:
    """User×day activity of the source (the tested model of its last build)."""
    client = ch_client(settings.clickhouse, database=settings.clickhouse.build_database(source))
    frame = client.query_df(
        "SELECT activity_date, user_id, events, sessions, views, purchases, toFloat64(revenue_usd) AS revenue_usd "
        "FROM int_user_daily_activity"
    )
    frame["activity_date"] = pd.to_datetime(frame.activity_date)
    return frame


@dataclass
class SegmentResult:
    run_id: str
    source: str
    as_of: str
    k: int
    sizes: dict[str, int]
    profiles: pd.DataFrame
    assignment: pd.DataFrame
    silhouettes: dict[int, float]
    artefacts: str
    output: Path
    seconds: float
    pictures: list[Path] = field(default_factory=list)


def run_segment(
    settings: Settings, source: str, run_id: str | None = None, seed: int = 42, as_of: date | None = None
) -> SegmentResult:
    t0 = time.perf_counter()
    run_id = run_id or new_run_id()
    out = output_dir(settings, source, run_id)
    as_of = daily_series(settings, source, "dau", as_of).index[-1]
    activity = user_activity(settings, source)
    features = segment.user_features(activity, as_of)
    previous = store.load_latest_artefact(settings, source, "segment")
    seg = segment.segment(features, seed=seed, previous_centroids=previous[0]["centroids"] if previous else None)
    assignment = seg.assignment.reset_index().rename(columns={"index": "user_id"})
    segments_frame = assignment.assign(as_of_date=as_of.date(), cluster=assignment.cluster.astype("uint8"))[
        ["as_of_date", "user_id", "segment", "cluster", "recency_days", "active_days_30", "sessions_90", "revenue_usd",
         "purchases", "tenure_days"]
    ]  # fmt: skip
    profiles = seg.profiles.reset_index()
    centroid_cols = [*segment.NUMERIC, "recency_days_median", "tenure_days_median"]
    profiles_frame = pd.DataFrame(
        {
            "as_of_date": as_of.date(),
            "cluster": profiles.cluster.astype("uint8"),
            "segment": profiles.segment,
            "users": profiles.users.astype("uint64"),
            "share": profiles.share,
            "centroid": [json.dumps({c: round(float(r[c]), 4) for c in centroid_cols}) for _, r in profiles.iterrows()],
        }
    )
    artefacts = store.save_artefact(
        settings, source, "segment", run_id,
        {"scaler": seg.scaler, "kmeans": seg.model, "centroids": seg.centroids_scaled},
        {"run_id": run_id, "as_of": as_of.date(), "k": seg.k, "silhouettes": seg.silhouettes, "inertias": seg.inertias,
         "features": segment.NUMERIC, "library_versions": _versions()},
    )  # fmt: skip
    sizes = seg.assignment.segment.value_counts().to_dict()
    store.write_run(settings, source, "segment", run_id, as_of.date(),
                    {"user_segments": segments_frame, "segment_profiles": profiles_frame},
                    {"k": seg.k, "sizes": sizes, "artefacts": artefacts})  # fmt: skip
    pictures = charts.segment_pictures(out, seg)
    return SegmentResult(run_id, source, str(as_of.date()), seg.k, sizes, seg.profiles, seg.assignment, seg.silhouettes,
                         artefacts, out, round(time.perf_counter() - t0, 2), pictures)  # fmt: skip


def _versions() -> dict[str, str]:
    import sklearn

    return {"scikit-learn": sklearn.__version__, "pandas": pd.__version__, "numpy": np.__version__}
