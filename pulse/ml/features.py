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
    out = pd.DataFrame(index=index)
    for d in range(7):
        out[f"dow_{d}"] = (index.dayofweek == d).astype(float)
    out["month_sin"] = np.sin(2 * np.pi * (index.month - 1) / 12)
    out["month_cos"] = np.cos(2 * np.pi * (index.month - 1) / 12)
    out["day_of_month"] = index.day.astype(float)
    out["is_month_start"] = (index.day == 1).astype(float)  # paydays / monthly promotions
    out["is_weekend"] = (index.dayofweek >= 5).astype(float)
    out["trend"] = (index - origin).days.astype(float)
    return out


def history_features(values: pd.Series) -> pd.DataFrame:
    """Lag and rolling features for every day of ``values`` (a daily, gap-free series)."""
    past = values.shift(1)  # everything below sees only days before the target
    out = pd.DataFrame(index=values.index)
    for lag in LAGS:
        out[f"lag_{lag}"] = values.shift(lag)
    for w in WINDOWS:
        roll = past.rolling(w, min_periods=w)
        out[f"roll{w}_mean"] = roll.mean()
        out[f"roll{w}_std"] = roll.std()
        out[f"roll{w}_min"] = roll.min()
        out[f"roll{w}_max"] = roll.max()
        out[f"roll{w}_median"] = roll.median()  # robust to a whale's day
    return out


def make_features(values: pd.Series, origin: pd.Timestamp | None = None) -> pd.DataFrame:
    """Feature matrix for every day of ``values`` that has 30 days of history."""
    origin = origin if origin is not None else values.index[0]
    feats = history_features(values).join(calendar(values.index, origin))
    return feats.dropna()


def feature_names() -> list[str]:
    idx = pd.date_range("2026-01-01", periods=40, freq="D")
    return list(make_features(pd.Series(np.arange(40.0), idx)).columns)
