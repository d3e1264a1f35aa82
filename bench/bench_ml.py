"""ML benchmark: time and peak RSS of feature building, backtest and segmentation.

Needs published marts for the source (bench/bench_models.py or `pulse model build --source S`):

    .venv/bin/python bench/bench_ml.py --source bench1000000 [--source bench10000000]

Goal: the whole ML step (forecast + segmentation) under 60 s at 10M events on this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import PeakRss, agree, exit_code, write_results

from pulse.common.progress import tree_rss_mb
from pulse.config import ensure_secrets, settings
from pulse.ml import forecast, run, segment
from pulse.ml.features import calendar, history_features, make_features
from pulse.services import registry


def timed(label: str, fn, results: dict):
    with PeakRss(tree_rss_mb) as rss:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    results[label] = {"seconds": round(seconds, 2), "peak_rss_mb": round(rss.peak)}
    print(f"  {label:<34} {seconds:7.2f} s   peak RSS {rss.peak:7,.0f} MiB")
    return out


def frame_forecast(model: forecast.Model, horizon: int) -> list[float]:
    """Baseline: the same recursive forecast with each step's feature row cut from a pandas frame of
    the whole history and the forest's own ``predict`` (how ``Model.forecast`` worked before)."""
    hist = model.history.copy()
    for _ in range(horizon):
        day = hist.index[-1] + pd.Timedelta(days=1)
        extended = pd.concat([np.log1p(hist), pd.Series([np.nan], index=[day])])
        row = history_features(extended).iloc[[-1]].join(calendar(pd.DatetimeIndex([day]), model.origin))
        log_yhat = float(model.est.predict(row[model.columns].to_numpy())[0])
        hist.loc[day] = min(max(float(np.expm1(min(log_yhat, model.cap))), 0.0), np.expm1(model.cap))
    return list(hist.iloc[-horizon:])


def bench_recursion(series: pd.Series, res: dict, repeats: int = 20) -> None:
    """One 14-day recursive forecast per learned model: NumPy rows vs the pandas-frame baseline."""
    for name in forecast.LEARNED:
        model = forecast.Model(name).fit(series)
        t0 = time.perf_counter()
        for _ in range(repeats):
            fast = model.forecast(forecast.MAX_HORIZON)
        mine = (time.perf_counter() - t0) / repeats
        t0 = time.perf_counter()
        for _ in range(repeats):
            slow = frame_forecast(model, forecast.MAX_HORIZON)
        base = (time.perf_counter() - t0) / repeats
        gap = float(np.max(np.abs(fast.to_numpy() - np.array(slow))))
        res[f"14-day forecast {name}"] = {"ms": round(mine * 1000, 1), "baseline_ms": round(base * 1000, 1), "max_abs_diff": gap}
        print(
            f"  14-day recursive forecast, {name:<14} {mine * 1000:6.1f} ms"
            f"  (pandas frames {base * 1000:6.1f} ms: {base / mine:4.1f}x)  max |diff| {gap:.1e}"
        )


def bench_silhouette(features: pd.DataFrame, res: dict) -> None:
    """The silhouette of every k on the segmentation's sample: one pass over the distances
    (``segment.silhouette_scores``) vs sklearn's ``silhouette_score`` once per k (the baseline)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    _, x = segment.scaled(features)
    x = x[segment.silhouette_sample(len(x), seed=42)]
    labelings = {k: KMeans(n_clusters=k, n_init=1, random_state=42).fit(x).labels_ for k in segment.K_RANGE}
    t0 = time.perf_counter()
    mine = segment.silhouette_scores(x, labelings)
    fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = {k: float(silhouette_score(x, labels)) for k, labels in labelings.items()}
    slow = time.perf_counter() - t0
    gap = max(abs(mine[k] - base[k]) for k in base)
    res["silhouette k=3..8"] = {"seconds": round(fast, 2), "baseline_seconds": round(slow, 2), "max_abs_diff": gap}
    print(f"  silhouette k=3..8 on {len(x):,} users  {fast:6.2f} s  (sklearn per k {slow:6.2f} s: {slow / fast:4.1f}x)"
          f"  max |diff| {gap:.1e}")  # fmt: skip
    agree("silhouette: one pass vs sklearn per k, largest difference below 1e-9", gap < 1e-9, True)


def bench(source: str) -> dict:
    s = settings()
    print(f"\n== source {source} ==")
    res: dict = {"source": source}
    dau = timed("read daily series (DAU)", lambda: run.daily_series(s, source, "dau"), res)
    timed("feature building (DAU)", lambda: make_features(dau), res)
    bench_recursion(dau, res)
    timed("backtest (DAU, 5 models)", lambda: forecast.backtest(dau, "dau"), res)
    activity = timed("read user x day activity", lambda: run.user_activity(s, source), res)
    feats = timed("user features", lambda: segment.user_features(activity, dau.index[-1]), res)
    seg = timed("k-means k=3..8 + silhouette", lambda: segment.segment(feats), res)
    bench_silhouette(feats, res)
    print(f"  ({len(dau)} days, {len(activity):,} user-days, {len(feats):,} users, k = {seg.k})")
    fc = timed("whole forecast step (pulse ml forecast)", lambda: run.run_forecast(s, source), res)
    sg = timed("whole segment step (pulse ml segment)", lambda: run.run_segment(s, source), res)
    total = res["whole forecast step (pulse ml forecast)"]["seconds"] + res["whole segment step (pulse ml segment)"]["seconds"]
    print(f"  whole ML step: {total:.1f} s (goal < 60 s at 10M events) — chosen {fc.best}, segments {sg.sizes}")
    res["total_seconds"] = round(total, 2)
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", help="source with published marts (repeatable)")
    args = parser.parse_args()
    registry.up(settings(), ["s3", "postgres", "clickhouse"], echo=lambda _m: None)
    write_results("ml", [bench(source) for source in args.source or ["bench1000000"]])
    return exit_code()


if __name__ == "__main__":
    ensure_secrets()  # the installation's credentials, before any settings load
    sys.exit(main())
