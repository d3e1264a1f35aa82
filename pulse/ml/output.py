"""``ml_output``: what one scheduled day produced, in one table keyed by logical date and run.

A day's rows (replaced whole when the day is re-run, so re-running gives the same state):
- ``forecast``: the chosen model's next 14 days per metric, with the 80 % interval;
- ``backtest``: the chosen model's backtest MASE at h = 1, 7, 14 per metric;
- ``segment``: users and revenue per segment as of the day;
- ``check``: the day's actual DAU and revenue against the forecast made the day before (the data alert).

The check refits the run's chosen model on the history up to the day before and forecasts one day;
its interval comes from the same model's 1-day-ahead backtest residuals of the run (as every forecast
interval does), so the verdict is the same whenever the day is checked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date

import pandas as pd

from pulse.common.clickhouse import client as ch_client
from pulse.config import Settings
from pulse.ml import forecast
from pulse.ml.run import METRICS, daily_series

TABLE = "ml_output"
COLUMNS = (
    "logical_date Date, run_id String, orchestrator_run_id String, written_at DateTime64(3) DEFAULT now64(3), "
    "kind LowCardinality(String), name String, target_date Nullable(Date), model String, "
    "value Float64, lower Nullable(Float64), upper Nullable(Float64), details String"
)


@dataclass
class Check:
    metric: str
    day: str
    model: str
    actual: float
    yhat: float
    lower: float
    upper: float

    @property
    def outside(self) -> bool:
        return not (self.lower <= self.actual <= self.upper)

    def describe(self) -> str:
        where = "below" if self.actual < self.lower else "above" if self.actual > self.upper else "inside"
        return (
            f"{self.metric} on {self.day}: actual {self.actual:,.2f} is {where} the forecast's 80% interval "
            f"[{self.lower:,.2f} – {self.upper:,.2f}] (forecast {self.yhat:,.2f}, model {self.model})"
        )


def _client(settings: Settings, source: str):
    return ch_client(settings.clickhouse, database=settings.clickhouse.marts_database(source))


def check_day(settings: Settings, source: str, day: date, run_id: str) -> list[Check]:
    """Each metric's actual on its newest complete day up to ``day`` against the 1-day-ahead forecast from
    the day before, with the forecast run ``run_id``'s chosen model and interval. The run for a day loads
    RAW up to that day, so the day itself is still open to late events: what it checks is the day its
    load completed (``day`` minus the late-arrival window, when a file arrives daily)."""
    client = _client(settings, source)
    checks = []
    for metric in METRICS:
        series = daily_series(settings, source, metric, day)
        if len(series) < 2:
            continue
        params = {"run_id": run_id, "metric": metric}
        rows = client.query_df(
            "SELECT model, horizon, yhat, actual FROM ml_forecasts WHERE run_id = {run_id:String} "
            "AND metric = {metric:String} AND is_backtest AND model = (SELECT any(model) FROM ml_model_metrics "
            "WHERE run_id = {run_id:String} AND metric = {metric:String} AND is_chosen)",
            parameters=params,
        )
        if rows.empty:
            raise ValueError(f"forecast run {run_id} has no backtest for {metric}: run the forecast step first")
        model = str(rows.model.iloc[0])
        low, high = forecast.residual_interval(rows, 1)
        yhat = float(forecast.Model(model).fit(series.iloc[:-1]).forecast(1).iloc[0])
        checked = series.index[-1].date().isoformat()
        checks.append(Check(metric, checked, model, float(series.iloc[-1]), yhat, max(0.0, yhat + low), yhat + high))
    return checks


def write(settings: Settings, source: str, day: date, run_id: str, orchestrator_run_id: str, checks: list[Check]) -> dict:
    """Replace ``day``'s rows of ml_output with this run's forecasts, backtest scores, segments and checks."""
    client = _client(settings, source)
    client.command(f"CREATE TABLE IF NOT EXISTS {TABLE} ({COLUMNS}) ENGINE = MergeTree ORDER BY (logical_date, kind, name)")
    p = {"day": day, "run_id": run_id, "orch": orchestrator_run_id}
    client.command(f"DELETE FROM {TABLE} WHERE logical_date = {{day:Date}}", parameters=p)
    columns = "logical_date, run_id, orchestrator_run_id, kind, name, target_date, model, value, lower, upper, details"
    head = f"INSERT INTO {TABLE} ({columns})"
    client.command(
        head + " SELECT {day:Date}, run_id, {orch:String}, 'forecast', metric, target_date, model, yhat, yhat_lower, "
        "yhat_upper, '' FROM ml_forecasts WHERE run_id = {run_id:String} AND NOT is_backtest",
        parameters=p,
    )
    client.command(
        head + " SELECT {day:Date}, run_id, {orch:String}, 'backtest', concat(metric, '.mase_h', toString(horizon)), "
        "NULL, model, mase, NULL, NULL, '' FROM ml_model_metrics WHERE run_id = {run_id:String} AND is_chosen "
        "AND horizon IN (1, 7, 14)",
        parameters=p,
    )
    client.command(
        head + " SELECT {day:Date}, run_id, {orch:String}, 'segment', segment, as_of_date, '', count(), NULL, NULL, "
        "toJSONString(map('revenue_usd', round(sum(revenue_usd), 2))) FROM user_segments "
        "WHERE run_id = {run_id:String} GROUP BY run_id, segment, as_of_date",
        parameters=p,
    )
    if checks:
        frame = pd.DataFrame(
            {
                "logical_date": day,
                "run_id": run_id,
                "orchestrator_run_id": orchestrator_run_id,
                "kind": "check",
                "name": [c.metric for c in checks],
                "target_date": [date.fromisoformat(c.day) for c in checks],
                "model": [c.model for c in checks],
                "value": [c.actual for c in checks],
                "lower": [c.lower for c in checks],
                "upper": [c.upper for c in checks],
                "details": [json.dumps({"yhat": c.yhat, "outside": c.outside}) for c in checks],
            }
        )
        client.insert_df(TABLE, frame)
    counts = client.query(
        f"SELECT kind, count() FROM {TABLE} WHERE logical_date = {{day:Date}} GROUP BY kind ORDER BY kind", parameters=p
    ).result_rows
    return {"table": f"{settings.clickhouse.marts_database(source)}.{TABLE}", "rows": dict(counts)}


def checks_as_dicts(checks: list[Check]) -> list[dict]:
    return [asdict(c) | {"outside": c.outside, "text": c.describe()} for c in checks]
