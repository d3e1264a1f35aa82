"""``pulse ml forecast|segment|report``: forecasts with backtest, user segments, the ML report."""

from __future__ import annotations

import argparse

from pulse import pipeline
from pulse.cli.common import add_source
from pulse.config import Settings, settings


def register(sub) -> None:
    p = sub.add_parser("ml", help="forecast DAU/revenue, segment users, write the ML report")
    p.add_argument(
        "action",
        choices=["forecast", "segment", "report"],
        help="forecast = backtest + 14-day forecast; segment = k-means segments; report = both + an HTML report",
    )
    add_source(p, help="which source's marts to learn from (default %(default)s)")
    p.set_defaults(fn=run_ml)


def forecast(s: Settings, source: str):
    print(f"[ml] forecasting DAU and revenue for source {source}")
    fc = pipeline.forecast(s, source)
    print(fc.table())
    for metric, frame in fc.forecasts.items():
        first, last = frame.iloc[0], frame.iloc[-1]
        print(
            f"  {metric}: next {len(frame)} days with {fc.best[metric]}: {first.target_date:%Y-%m-%d} "
            f"{first.yhat:,.0f} [{first.yhat_lower:,.0f}–{first.yhat_upper:,.0f}] … {last.target_date:%Y-%m-%d} "
            f"{last.yhat:,.0f} [{last.yhat_lower:,.0f}–{last.yhat_upper:,.0f}]"
        )
    print(f"  run {fc.run_id} in {fc.seconds:.1f}s; pictures in {fc.output}; models in {fc.artefacts}")
    return fc


def segment(s: Settings, source: str):
    print(f"[ml] segmenting users of source {source}")
    seg = pipeline.segment(s, source)
    total = sum(seg.sizes.values())
    sizes = ", ".join(f"{name} {n:,} ({n / total:.0%})" for name, n in sorted(seg.sizes.items(), key=lambda kv: -kv[1]))
    print(f"  k = {seg.k} (silhouette {seg.silhouettes[seg.k]:.2f}); segments as of {seg.as_of}: {sizes}")
    print(f"  run {seg.run_id} in {seg.seconds:.1f}s; pictures in {seg.output}")
    return seg


def report(s: Settings, source: str) -> None:
    fc, seg = forecast(s, source), segment(s, source)
    print(f"report: {pipeline.ml_report(s, fc, seg)}")


def run_ml(args: argparse.Namespace) -> int:
    s = settings()
    {"forecast": forecast, "segment": segment, "report": report}[args.action](s, args.source)
    return 0
