"""`pulse ml report`: one self-contained HTML page of the latest forecast and segmentation runs."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from pulse.common.report_html import img, page
from pulse.ml.run import ForecastResult, SegmentResult


def _img(path: Path) -> str:
    return img(path.read_bytes(), path.stem)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:,.3f}", border=0, classes="t")


def write(out: Path, fc: ForecastResult, seg: SegmentResult) -> Path:
    scores = fc.scores[fc.scores.horizon.isin([1, 7, 14])][
        ["metric", "model", "horizon", "mae", "mape", "smape", "mase", "folds"]
    ]
    profiles = seg.profiles.reset_index()[
        ["cluster", "segment", "users", "share", "recency_days", "tenure_days", "active_days_30", "revenue_usd", "purchases"]
    ]
    parts = [
        f"<h1>Pulse ML report — source {html.escape(fc.source)}</h1>",
        f"<p>Forecast run <code>{fc.run_id}</code> (as of {fc.as_of}); chosen models: "
        + ", ".join(f"{m}: <b>{b}</b>" for m, b in fc.best.items())
        + f". Segmentation run <code>{seg.run_id}</code>: k = {seg.k}.</p>",
        "<h2>Forecasts</h2>",
        *[_img(p) for p in fc.pictures if p.suffix == ".png"],
        "<p>Interactive versions: " + ", ".join(f"<code>{p}</code>" for p in fc.pictures if p.suffix == ".html") + "</p>",
        "<h2>Backtest</h2>",
        _table(scores),
        "<h2>Segments</h2>",
        *[_img(p) for p in seg.pictures],
        _table(profiles),
    ]
    path = out / "report.html"
    path.write_text(page("Pulse ML report", parts))
    return path
