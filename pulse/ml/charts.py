"""Pictures of an ML run: static PNG (matplotlib) and interactive HTML (plotly), in the run's folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt
import pandas as pd
import plotly.graph_objects as go

from pulse.ml.forecast import HORIZONS, Backtest


def one_day_ahead(bt: Backtest) -> pd.DataFrame:
    """The chosen model's 1-day-ahead backtest forecasts, in date order."""
    p = bt.predictions
    return p[(p.model == bt.best) & (p.horizon == 1)].sort_values("target_date")


def forecast_figure(metric: str, series: pd.Series, bt: Backtest, fwd: pd.DataFrame) -> go.Figure:
    """Actuals, the chosen model's 1-day-ahead backtest forecasts, and the forward forecast with its band."""
    fig = go.Figure()
    fig.add_scatter(x=series.index, y=series.values, name="actual", line={"color": "#222"})
    chosen = one_day_ahead(bt)
    fig.add_scatter(x=chosen.target_date, y=chosen.yhat, name=f"{bt.best}, backtest (h=1)", mode="markers")
    fig.add_scatter(x=fwd.target_date, y=fwd.yhat_upper, line={"width": 0}, showlegend=False, hoverinfo="skip")
    fig.add_scatter(x=fwd.target_date, y=fwd.yhat_lower, fill="tonexty", line={"width": 0}, name="80% interval",
                    fillcolor="rgba(31,119,180,0.2)")  # fmt: skip
    fig.add_scatter(x=fwd.target_date, y=fwd.yhat, name=f"{bt.best}, next {len(fwd)} days", line={"color": "#1f77b4"})
    fig.update_layout(title=f"{metric}: actual, backtest and forecast", template="plotly_white", height=420)
    return fig


def forecast_pictures(out: Path, metric: str, series: pd.Series, bt: Backtest, fwd: pd.DataFrame,
                      importance: pd.Series | None) -> list[Path]:  # fmt: skip
    paths = []
    fig = forecast_figure(metric, series, bt, fwd)
    html = out / f"forecast_{metric}.html"
    fig.write_html(html, include_plotlyjs="inline", full_html=True)
    paths.append(html)

    f, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2.2, 1]})
    ax = axes[0]
    ax.plot(series.index, series.values, color="#222", lw=1, label="actual")
    chosen = one_day_ahead(bt)
    ax.scatter(chosen.target_date, chosen.yhat, s=12, color="#d62728", label=f"{bt.best} backtest (h=1)", zorder=3)
    ax.fill_between(fwd.target_date, fwd.yhat_lower, fwd.yhat_upper, color="#1f77b4", alpha=0.2, label="80% interval")
    ax.plot(fwd.target_date, fwd.yhat, color="#1f77b4", lw=2, label="forecast")
    ax.set_title(f"{metric}: actual, backtest and 14-day forecast")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=30)
    ax = axes[1]
    scores = bt.scores[bt.scores.horizon.isin(HORIZONS)].pivot(index="horizon", columns="model", values="mase")
    scores.plot(ax=ax, marker="o")
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.set_title("backtest MASE by horizon (lower is better)")
    ax.set_xlabel("horizon (days)")
    ax.legend(fontsize=7)
    f.tight_layout()
    png = out / f"forecast_{metric}.png"
    f.savefig(png, dpi=110)
    plt.close(f)
    paths.append(png)
    if importance is not None:
        f, ax = plt.subplots(figsize=(6, 4))
        importance.head(12)[::-1].plot.barh(ax=ax, color="#2ca02c")
        ax.set_title(f"{metric}: random forest feature importance")
        f.tight_layout()
        png = out / f"importance_{metric}.png"
        f.savefig(png, dpi=110)
        plt.close(f)
        paths.append(png)
    return paths


def segment_pictures(out: Path, seg) -> list[Path]:
    f, axes = plt.subplots(1, 3, figsize=(15, 4))
    ks = sorted(seg.inertias)
    axes[0].plot(ks, [seg.inertias[k] for k in ks], marker="o")
    axes[0].set_title("elbow: k-means inertia by k")
    axes[1].plot(ks, [seg.silhouettes[k] for k in ks], marker="o", color="#ff7f0e")
    axes[1].axvline(seg.k, color="grey", ls="--")
    axes[1].set_title(f"silhouette by k (chosen k = {seg.k})")
    sizes = seg.assignment.segment.value_counts()
    revenue = seg.assignment.groupby("segment").revenue_usd.sum().reindex(sizes.index)
    ax = axes[2]
    ax.bar(sizes.index, sizes.values, color="#1f77b4", label="users")
    ax2 = ax.twinx()
    ax2.plot(sizes.index, revenue.values, color="#d62728", marker="o", label="revenue (USD)")
    ax.set_title("segments: users (bars) and revenue (line)")
    ax.tick_params(axis="x", labelrotation=20)
    f.tight_layout()
    png = out / "segments.png"
    f.savefig(png, dpi=110)
    plt.close(f)
    return [png]
