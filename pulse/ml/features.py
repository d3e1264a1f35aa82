"""Features of a daily series, each built only from the days before its target day (no leakage).

For target day t: lags 1, 7, 14 and 30 (the values of t-1, t-7, …), rolling mean/std/min/max/median
over the 7 and 30 days ending at t-1, calendar features of t itself (known in advance: day of week
one-hot, month as sin/cos, day of month, month start, weekend flag) and a trend index (days since the series
started). A row whose history is too short for lag 30 is dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LAGS = (1, 7, 14, 30)
WINDOWS = (7, 30)


def calendar(index: pd.DatetimeIndex, origin: pd.Timestamp) -> pd.DataFrame:
    """What is known about a day before it happens."""
    cols = {f"dow_{d}": (index.dayofweek == d).astype(float) for d in range(7)}
    cols["month_sin"] = np.sin(2 * np.pi * (index.month - 1) / 12)
    cols["month_cos"] = np.cos(2 * np.pi * (index.month - 1) / 12)
    cols["day_of_month"] = index.day.astype(float)
    cols["is_month_start"] = (index.day == 1).astype(float)  # paydays / monthly promotions
    cols["is_weekend"] = (index.dayofweek >= 5).astype(float)
    cols["trend"] = (index - origin).days.astype(float)
    return pd.DataFrame(cols, index=index)  # built at once: column-by-column inserts are slow in pandas


def history_features(values: pd.Series) -> pd.DataFrame:
    """Lag and rolling features for every day of ``values`` (a daily, gap-free series)."""
    past = values.shift(1)  # everything below sees only days before the target
    cols = {f"lag_{lag}": values.shift(lag) for lag in LAGS}
    for w in WINDOWS:
        roll = past.rolling(w, min_periods=w)
        cols[f"roll{w}_mean"] = roll.mean()
        cols[f"roll{w}_std"] = roll.std()
        cols[f"roll{w}_min"] = roll.min()
        cols[f"roll{w}_max"] = roll.max()
        cols[f"roll{w}_median"] = roll.median()  # robust to a whale's day
    return pd.DataFrame(cols, index=values.index)


def next_day_history_features(values: np.ndarray) -> dict[str, float]:
    """``history_features`` of the day after ``values`` (the days before it, oldest first) for one
    day at a time, in NumPy: a recursive forecast asks for one row per step, and building a
    DataFrame column by column for it cost more than the models themselves."""
    n = len(values)
    out = {f"lag_{lag}": float(values[-lag]) if n >= lag else np.nan for lag in LAGS}
    for w in WINDOWS:
        win = values[-w:]
        full = n >= w
        out[f"roll{w}_mean"] = float(win.mean()) if full else np.nan
        out[f"roll{w}_std"] = float(win.std(ddof=1)) if full else np.nan
        out[f"roll{w}_min"] = float(win.min()) if full else np.nan
        out[f"roll{w}_max"] = float(win.max()) if full else np.nan
        out[f"roll{w}_median"] = float(np.median(win)) if full else np.nan
    return out


def make_features(values: pd.Series, origin: pd.Timestamp | None = None) -> pd.DataFrame:
    """Feature matrix for every day of ``values`` that has 30 days of history."""
    origin = origin if origin is not None else values.index[0]
    feats = history_features(values).join(calendar(values.index, origin))
    return feats.dropna()


def feature_names() -> list[str]:
    idx = pd.date_range("2026-01-01", periods=40, freq="D")
    return list(make_features(pd.Series(np.arange(40.0), idx)).columns)
