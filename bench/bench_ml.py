"""Stage-5 benchmark: time and peak RSS of feature building, backtest and segmentation.

Needs published marts for the source (bench/bench_models.py or `pulse model build --source S`):

    .venv/bin/python bench/bench_ml.py --source bench1000000 [--source bench10000000]

Goal: the whole ML step (forecast + segmentation) under 60 s at 10M events on this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import PeakRss, write_results

from pulse.common.progress import tree_rss_mb
from pulse.config import settings
from pulse.ml import forecast, run, segment
from pulse.ml.features import make_features
from pulse.services import registry


def timed(label: str, fn, results: dict):
    with PeakRss(tree_rss_mb) as rss:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    results[label] = {"seconds": round(seconds, 2), "peak_rss_mb": round(rss.peak)}
    print(f"  {label:<34} {seconds:7.2f} s   peak RSS {rss.peak:7,.0f} MiB")
    return out


def bench(source: str) -> dict:
    s = settings()
    print(f"\n== source {source} ==")
    res: dict = {"source": source}
    dau = timed("read daily series (DAU)", lambda: run.daily_series(s, source, "dau"), res)
    timed("feature building (DAU)", lambda: make_features(dau), res)
    timed("backtest (DAU, 5 models)", lambda: forecast.backtest(dau, "dau"), res)
    activity = timed("read user x day activity", lambda: run.user_activity(s, source), res)
    feats = timed("user features", lambda: segment.user_features(activity, dau.index[-1]), res)
    seg = timed("k-means k=3..8 + silhouette", lambda: segment.segment(feats), res)
    print(f"  ({len(dau)} days, {len(activity):,} user-days, {len(feats):,} users, k = {seg.k})")
    fc = timed("whole forecast step (pulse ml forecast)", lambda: run.run_forecast(s, source), res)
    sg = timed("whole segment step (pulse ml segment)", lambda: run.run_segment(s, source), res)
    total = res["whole forecast step (pulse ml forecast)"]["seconds"] + res["whole segment step (pulse ml segment)"]["seconds"]
    print(f"  whole ML step: {total:.1f} s (goal < 60 s at 10M events) — chosen {fc.best}, segments {sg.sizes}")
    res["total_seconds"] = round(total, 2)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", help="source with published marts (repeatable)")
    args = parser.parse_args()
    registry.up(settings(), ["s3", "postgres", "clickhouse"], echo=lambda _m: None)
    write_results("ml", [bench(source) for source in args.source or ["bench1000000"]])


if __name__ == "__main__":
    main()
