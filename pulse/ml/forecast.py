"""Daily forecasts (DAU, revenue) with a rolling-origin backtest against two baselines.

Models: naive (yesterday), seasonal naive (same weekday last week), LinearRegression and Ridge (on
standardised features) and RandomForestRegressor, all on the features of ``pulse.ml.features``
computed on log1p of the series and predicting log1p of the target (revenue is heavy-tailed; the
log keeps a whale's day from dominating the fit, and forecasts positive).
Multi-step forecasts are recursive: the prediction for day t+1 becomes history for day t+2, so no
model ever sees a value after its forecast origin.

Backtest: expanding window; origins every ``step`` days going back from the end, as many as fit
(at most ``max_folds``) with at least ``min_train`` days before each; every origin forecasts 14
days ahead. Errors per model and horizon h (the h-th day after the origin):
MAE, MAPE = mean |e|/|y|, sMAPE = mean 2|e|/(|y|+|ŷ|), MASE = MAE / (in-sample MAE of the
seasonal-naive one-step forecast on the fold's training window). The chosen model has the lowest
mean MASE over horizons 1, 7 and 14 across all folds. Forward intervals: the 10th and 90th
percentiles of that model's backtest residuals at each horizon, added to the point forecast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pulse.ml.features import LAGS, WINDOWS, calendar, make_features, next_day_history_features

BASELINES = ("naive", "seasonal_naive")
LEARNED = ("linear", "ridge", "random_forest")
MODELS = (*BASELINES, *LEARNED)
HORIZONS = (1, 7, 14)
MAX_HORIZON = 14
INTERVAL = (0.1, 0.9)
LOOKBACK = max(*LAGS, *WINDOWS)  # days of history one day's features need


def estimator(name: str, seed: int = 42):
    if name == "linear":
        return make_pipeline(StandardScaler(), LinearRegression())
    if name == "ridge":
        return make_pipeline(StandardScaler(), Ridge(alpha=50.0))
    if name == "random_forest":
        return RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)
    raise ValueError(f"unknown model {name}")


class Model:
    """One forecasting model fitted on a history; ``forecast(h)`` continues it recursively."""

    def __init__(self, name: str, seed: int = 42) -> None:
        self.name, self.seed = name, seed
        self.est = None if name in BASELINES else estimator(name, seed)
        self.history: pd.Series | None = None
        self.origin: pd.Timestamp | None = None

    def fit(self, history: pd.Series) -> Model:
        self.history, self.origin = history.astype(float), history.index[0]
        self.cap = float(np.log1p(max(self.history.max(), 1.0) * 10))
        if self.est is not None:
            feats = make_features(np.log1p(self.history), self.origin)
            self.columns = list(feats.columns)
            self.est.fit(feats.to_numpy(), np.log1p(self.history.loc[feats.index].to_numpy()))
        return self

    def forecast(self, horizon: int) -> pd.Series:
        assert self.history is not None, "fit first"
        values = list(self.history.to_numpy())
        days = pd.date_range(self.history.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
        known = calendar(days, self.origin).to_dict("records")  # every future day's calendar is known up front
        for i in range(horizon):
            if self.name == "naive":
                yhat = values[-1]
            elif self.name == "seasonal_naive":
                yhat = values[-7]
            else:
                row = next_day_history_features(np.log1p(np.asarray(values[-LOOKBACK:])))
                row.update(known[i])
                log_yhat = self._predict_one(np.array([[row[c] for c in self.columns]]))
                # never negative, and at most 10x the largest value seen: an unstable fit on a short or
                # sparse history (a linear model's recursion) must not run off to infinity
                yhat = min(max(float(np.expm1(min(log_yhat, self.cap))), 0.0), np.expm1(self.cap))
            values.append(yhat)
        return pd.Series(values[len(values) - horizon :], index=pd.DatetimeIndex(days.to_numpy()), name=self.name)

    def _predict_one(self, x: np.ndarray) -> float:
        if isinstance(self.est, RandomForestRegressor):
            # the forest's own average, tree by tree and in the same order, without its per-call joblib
            # dispatch (0.4 ms a tree, most of a recursive forecast's time)
            x32 = np.ascontiguousarray(x, dtype=np.float32)
            total = 0.0
            for tree in self.est.estimators_:
                total += tree.predict(x32, check_input=False)[0]
            return float(total / len(self.est.estimators_))
        return float(self.est.predict(x)[0])

    def feature_importance(self) -> pd.Series | None:
        if self.name == "random_forest":
            return pd.Series(self.est.feature_importances_, index=self.columns).sort_values(ascending=False)
        return None


def seasonal_scale(train: pd.Series) -> float:
    """In-sample MAE of the seasonal-naive one-step forecast: the MASE denominator."""
    diffs = (train - train.shift(7)).abs().dropna()
    return float(diffs.mean()) if len(diffs) and diffs.mean() > 0 else 1.0


@dataclass
class Backtest:
    metric: str
    predictions: pd.DataFrame  # model, origin, target_date, horizon, yhat, actual, scale
    scores: pd.DataFrame  # model, horizon, mae, mape, smape, mase, folds
    best: str
    folds: int
    residual_quantiles: dict[int, tuple[float, float]] = field(default_factory=dict)


def origins(index: pd.DatetimeIndex, min_train: int, step: int, max_folds: int) -> list[pd.Timestamp]:
    """Forecast origins (last training day), newest first, each with MAX_HORIZON days to score."""
    last = len(index) - 1 - MAX_HORIZON
    out = []
    while last >= min_train - 1 and len(out) < max_folds:
        out.append(index[last])
        last -= step
    return out


def backtest(
    series: pd.Series,
    metric: str,
    min_train: int = 60,
    step: int = 2,
    max_folds: int = 28,
    seed: int = 42,
    tick: Callable[[int, int], None] | None = None,
) -> Backtest:
    """Every model refitted at each origin and forecast ``MAX_HORIZON`` days ahead; ``tick(folds done, folds)``
    after each origin."""
    series = series.astype(float).asfreq("D")
    if series.isna().any():
        raise ValueError(f"{metric}: the daily series has gaps")
    cuts = origins(series.index, min_train, step, max_folds)
    if not cuts:
        raise ValueError(f"{metric}: {len(series)} days is too short for a backtest (need {min_train + MAX_HORIZON})")
    rows = []
    for done, origin in enumerate(cuts, start=1):
        train = series.loc[:origin]
        actual = series.loc[origin + pd.Timedelta(days=1) :].iloc[:MAX_HORIZON]
        scale = seasonal_scale(train)
        for name in MODELS:
            pred = Model(name, seed).fit(train).forecast(MAX_HORIZON)
            for h, (day, yhat) in enumerate(pred.items(), start=1):
                rows.append((name, origin, day, h, yhat, actual.loc[day], scale))
        if tick:
            tick(done, len(cuts))
    preds = pd.DataFrame(rows, columns=["model", "origin", "target_date", "horizon", "yhat", "actual", "scale"])
    scores = score(preds)
    mean_mase = scores[scores.horizon.isin(HORIZONS)].groupby("model").mase.mean()  # baselines may win too
    best = str(mean_mase.idxmin())
    chosen = preds[preds.model == best]
    quantiles = {h: residual_interval(chosen, h) for h in range(1, MAX_HORIZON + 1)}
    return Backtest(metric, preds, scores, best, len(cuts), quantiles)


def residual_interval(chosen: pd.DataFrame, h: int) -> tuple[float, float]:
    """The interval's offsets at horizon ``h`` from one model's backtest rows (actual, yhat, horizon)."""
    resid = (chosen.actual - chosen.yhat)[chosen.horizon == h]
    if len(resid) < 5:  # few folds: pool every horizon's residuals
        resid = chosen.actual - chosen.yhat
    return float(resid.quantile(INTERVAL[0])), float(resid.quantile(INTERVAL[1]))


def score(preds: pd.DataFrame) -> pd.DataFrame:
    e = (preds.actual - preds.yhat).abs()
    frame = preds.assign(
        ae=e,
        ape=np.where(preds.actual != 0, e / preds.actual.abs(), np.nan),
        sape=np.where((preds.actual.abs() + preds.yhat.abs()) > 0, 2 * e / (preds.actual.abs() + preds.yhat.abs()), 0.0),
        se=e / preds.scale,
    )
    grouped = frame.groupby(["model", "horizon"])
    out = grouped.agg(mae=("ae", "mean"), mape=("ape", "mean"), smape=("sape", "mean"), mase=("se", "mean"), folds=("ae", "size"))
    out[["mape", "smape"]] *= 100
    return out.reset_index()


def forward(series: pd.Series, bt: Backtest, horizon: int = MAX_HORIZON, seed: int = 42) -> tuple[pd.DataFrame, Model]:
    """The chosen model refitted on the whole series, ``horizon`` days ahead with its interval."""
    model = Model(bt.best, seed).fit(series.astype(float).asfreq("D"))
    pred = model.forecast(horizon)
    lower = [max(0.0, y + bt.residual_quantiles[h][0]) for h, y in enumerate(pred.values, start=1)]
    upper = [y + bt.residual_quantiles[h][1] for h, y in enumerate(pred.values, start=1)]
    frame = pd.DataFrame({"target_date": pred.index, "yhat": pred.values, "yhat_lower": lower, "yhat_upper": upper})
    return frame, model
