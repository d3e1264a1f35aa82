"""Forecasting and segmentation on synthetic data: no leakage, baselines, recursive forecasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pulse.ml import forecast
from pulse.ml.features import calendar, history_features, make_features, next_day_history_features
from pulse.ml.segment import segment, user_features


def weekly_series(days: int = 200, seed: int = 1) -> pd.Series:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2026-01-01", periods=days, freq="D")
    return pd.Series(1000 + 2 * np.arange(days) + np.where(idx.dayofweek >= 5, -150, 0) + rng.normal(0, 30, days), idx)


def test_changing_the_future_never_changes_past_features():
    y = weekly_series()
    cut = y.index[120]
    before = make_features(y)
    changed = y.copy()
    changed.loc[changed.index > cut] *= 10  # the future is completely different
    after = make_features(changed)
    pd.testing.assert_frame_equal(before.loc[:cut], after.loc[:cut])
    # and the row of `cut` itself uses nothing of its own day either
    changed.loc[cut] = -1e9
    pd.testing.assert_frame_equal(before.loc[:cut], make_features(changed).loc[:cut])


@pytest.mark.parametrize("days", [12, 29, 30, 31, 45, 200])
def test_one_step_features_equal_the_frame_features_of_that_day(days):
    # the recursive forecast builds one row at a time in NumPy; training builds the frame in pandas
    y = np.log1p(weekly_series(days))
    nxt = y.index[-1] + pd.Timedelta(days=1)
    frame = history_features(pd.concat([y, pd.Series([np.nan], index=[nxt])])).iloc[-1]
    row = next_day_history_features(y.to_numpy())
    assert list(row) == list(frame.index)
    np.testing.assert_allclose([row[k] for k in frame.index], frame.to_numpy(), rtol=1e-12, atol=1e-12)


def test_a_recursive_forecast_step_is_the_models_own_prediction():
    y = weekly_series(120)
    for name in forecast.LEARNED:
        model = forecast.Model(name).fit(y)
        ahead = model.forecast(1)
        day = ahead.index[0]
        feats = make_features(np.log1p(pd.concat([y, pd.Series([0.0], index=[day])])), y.index[0]).iloc[[-1]]
        assert feats.index[0] == day and list(feats.columns) == model.columns
        assert ahead.iloc[0] == pytest.approx(np.expm1(model.est.predict(feats.to_numpy())[0]), rel=1e-9)
    assert list(calendar(ahead.index, y.index[0]).columns) == [c for c in model.columns if not c.startswith(("lag", "roll"))]


def test_baselines_are_what_they_say():
    y = weekly_series(60)
    naive = forecast.Model("naive").fit(y).forecast(3)
    seasonal = forecast.Model("seasonal_naive").fit(y).forecast(8)
    assert list(naive.values) == [y.iloc[-1]] * 3
    assert list(seasonal.values[:7]) == list(y.iloc[-7:].values) and seasonal.values[7] == y.iloc[-7]


def test_backtest_never_peeks_and_beats_seasonal_naive_on_a_weekly_trend():
    y = weekly_series()
    bt = forecast.backtest(y, "dau", min_train=60, step=2, max_folds=28)
    # the rule, on this series: origins every 2 days back from the last one with 14 days left to score, while
    # 60 training days remain, at most 28 of them
    last = len(y) - 1 - forecast.MAX_HORIZON
    want = [y.index[i] for i in range(last, 60 - 2, -2)][:28]
    assert sorted(bt.predictions.origin.unique()) == sorted(want) and bt.folds == len(want)
    few = forecast.backtest(y.iloc[:90], "dau", min_train=60, step=2, max_folds=28)  # room for 9 origins only
    assert few.folds == len(range(90 - 1 - forecast.MAX_HORIZON, 60 - 2, -2))
    for origin, g in bt.predictions.groupby("origin"):  # every forecast is after its origin
        assert (g.target_date > origin).all() and g.horizon.max() == forecast.MAX_HORIZON
    mase = bt.scores.set_index(["model", "horizon"]).mase
    for h in (1, 7):
        assert mase[(bt.best, h)] < 1 and mase[(bt.best, h)] < mase[("seasonal_naive", h)]
    ahead, _ = forecast.forward(y, bt)
    assert len(ahead) == 14 and (ahead.yhat_lower <= ahead.yhat).all() and (ahead.yhat <= ahead.yhat_upper).all()


def test_metric_formulas():
    preds = pd.DataFrame({"model": "m", "horizon": 1, "yhat": [90.0, 110.0], "actual": [100.0, 100.0], "scale": [5.0, 5.0]})
    row = forecast.score(preds).iloc[0]
    assert row.mae == 10 and row.mape == pytest.approx(10) and row.mase == 2
    assert row.smape == pytest.approx(100 * (20 / 190 + 20 / 210) / 2)


def test_zero_actuals_leave_mape_and_count_in_smape_and_mase():
    # a day with no revenue: MAPE (undefined there) skips it, sMAPE counts it as 200 % (or 0 when both are 0),
    # MAE and MASE count it like any other day
    preds = pd.DataFrame(
        {"model": "m", "horizon": 1, "yhat": [90.0, 5.0, 0.0], "actual": [100.0, 0.0, 0.0], "scale": [5.0, 2.0, 2.0]}
    )
    row = forecast.score(preds).iloc[0]
    assert row.mape == pytest.approx(10) and row.mae == pytest.approx(5)
    assert row.smape == pytest.approx(100 * (20 / 190 + 2 + 0) / 3)
    assert row.mase == pytest.approx((10 / 5 + 5 / 2 + 0) / 3)
    assert np.isnan(forecast.score(preds.iloc[1:]).iloc[0].mape)  # no non-zero actual: no MAPE, not 0
    assert forecast.seasonal_scale(pd.Series([3.0] * 20)) == 1.0  # a flat history: no division by zero


def test_the_forecast_interval_covers_about_its_nominal_share_out_of_sample():
    """80 % intervals (10th-90th residual percentiles of the backtest) against the 14 days that followed,
    on series the model never saw: the empirical coverage is printed and must stay near 80 %."""
    inside = total = 0
    for seed in range(6):
        y = weekly_series(214, seed=seed)
        seen, future = y.iloc[:200], y.iloc[200:]
        ahead, _ = forecast.forward(seen, forecast.backtest(seen, "dau"))
        inside += int(
            ((ahead.yhat_lower.to_numpy() <= future.to_numpy()) & (future.to_numpy() <= ahead.yhat_upper.to_numpy())).sum()
        )
        total += len(future)
    coverage = inside / total
    nominal = forecast.INTERVAL[1] - forecast.INTERVAL[0]
    print(f"interval coverage out of sample: {coverage:.0%} of {total} days (nominal {nominal:.0%})")
    assert 0.6 <= coverage <= 0.97, coverage


def test_segments_are_deterministic_and_named():
    rng = np.random.default_rng(3)
    days = pd.date_range("2026-06-01", periods=120, freq="D")
    rows = []
    for user in range(600):
        kind = ["loyal", "dormant", "new", "whale"][user % 4]
        span = {"loyal": days, "dormant": days[:30], "new": days[-7:], "whale": days[::3]}[kind]
        for d in span[rng.random(len(span)) < 0.6]:
            spend = 500.0 if kind == "whale" else (10.0 if rng.random() < 0.1 else 0.0)
            rows.append((d, user, 10, 2, 8, int(spend > 0), spend))
    activity = pd.DataFrame(rows, columns=["activity_date", "user_id", "events", "sessions", "views", "purchases", "revenue_usd"])
    features = user_features(activity, days[-1])
    a, b = segment(features), segment(features)
    assert (a.assignment.segment == b.assignment.segment).all() and a.k == b.k
    got = a.assignment.segment
    assert got[got.index % 4 == 3].eq("high_value").mean() > 0.9
    assert got[got.index % 4 == 1].eq("dormant").mean() > 0.9
    assert got[got.index % 4 == 2].eq("new").mean() > 0.9


def test_a_rerun_keeps_cluster_numbers_on_the_closest_previous_centroid():
    rng = np.random.default_rng(5)
    days = pd.date_range("2026-06-01", periods=120, freq="D")
    rows = []
    for user in range(500):
        kind = user % 3
        span = {0: days, 1: days[:40], 2: days[-10:]}[kind]
        for d in span[rng.random(len(span)) < 0.5]:
            rows.append((d, user, 10, 2, 8, int(kind == 0), 20.0 * (kind == 0)))
    activity = pd.DataFrame(rows, columns=["activity_date", "user_id", "events", "sessions", "views", "purchases", "revenue_usd"])
    first = segment(user_features(activity, days[-1]))
    newer = activity.assign(activity_date=activity.activity_date + pd.Timedelta(days=3))  # three days later
    second = segment(user_features(newer, days[-1] + pd.Timedelta(days=3)), previous_centroids=first.centroids_scaled)
    for cluster in np.unique(second.assignment.cluster):
        distances = ((first.centroids_scaled - second.centroids_scaled[cluster]) ** 2).sum(axis=1)
        assert int(distances.argmin()) == cluster
    # users keep their cluster number and name
    both = first.assignment.join(second.assignment, lsuffix="_a", rsuffix="_b", how="inner")
    assert (both.cluster_a == both.cluster_b).mean() > 0.9 and (both.segment_a == both.segment_b).mean() > 0.9


def test_silhouette_scores_equal_sklearns_for_every_labeling():
    from sklearn.metrics import silhouette_score

    from pulse.ml.segment import silhouette_scores

    rng = np.random.default_rng(11)
    x = np.vstack([rng.normal(c, 1.0, size=(700, 5)) for c in range(3)] + [np.zeros((3, 5))])  # exact duplicates too
    labelings = {k: rng.integers(0, k, len(x)) for k in (2, 3, 5)}
    labelings[4] = np.r_[np.zeros(len(x) - 1, dtype=int), 3]  # a point alone in its cluster (and no cluster 1, 2)
    got = silhouette_scores(x, labelings, chunk=256)  # chunks that do not divide the points evenly
    for k, labels in labelings.items():
        assert got[k] == pytest.approx(silhouette_score(x, labels), abs=1e-12), k
