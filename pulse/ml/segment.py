"""User segmentation: RFM-style features, k-means with k chosen by silhouette, named segments.

Features per user as of a day: recency (days since last activity), frequency (active days,
sessions, events in the last 30 and 90 days), monetary (revenue, purchases, average purchase
value), tenure, engagement (events per session, view→purchase conversion). Skewed counts are
log-transformed, everything is standardised, k-means runs for k in ``K_RANGE`` with a fixed seed and
the k with the best silhouette wins (inertia is kept for the elbow plot).

Names come from rules on each cluster's centroid (in original units), in this order:
``high_value`` (mean revenue ≥ 3× the all-user mean — whether or not still active: the value is what
the business must not lose), ``dormant`` (median recency > 30 days), ``new`` (median tenure ≤ 14
days), ``at_risk`` (median recency > 7 days), else ``active_loyal``.
So names depend on what a cluster *is*, not on k-means' arbitrary numbering; cluster numbers are
made stable across runs by matching each new centroid to the closest previous one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.preprocessing import StandardScaler

K_RANGE = range(3, 9)
SEGMENTS = ("high_value", "active_loyal", "new", "at_risk", "dormant")
NUMERIC = [
    "recency_days", "active_days_30", "active_days_90", "sessions_30", "sessions_90", "events_30", "events_90",
    "revenue_usd", "purchases", "avg_purchase_value_usd", "tenure_days", "events_per_session", "view_to_purchase",
]  # fmt: skip
LOGGED = [c for c in NUMERIC if c not in ("view_to_purchase",)]
SILHOUETTE_SAMPLE = 20_000


def user_features(activity: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per user from user×day activity (activity_date, user_id, events, sessions, views,
    purchases, revenue_usd) up to ``as_of``."""
    a = activity[activity.activity_date <= as_of].copy()
    a["age"] = (as_of - a.activity_date).dt.days
    g = a.groupby("user_id")
    last30, last90 = a[a.age < 30].groupby("user_id"), a[a.age < 90].groupby("user_id")
    out = pd.DataFrame(
        {
            "recency_days": g.age.min(),
            "tenure_days": g.age.max(),
            "active_days_30": last30.size(),
            "active_days_90": last90.size(),
            "sessions_30": last30.sessions.sum(),
            "sessions_90": last90.sessions.sum(),
            "events_30": last30.events.sum(),
            "events_90": last90.events.sum(),
            "revenue_usd": g.revenue_usd.sum().astype(float),
            "purchases": g.purchases.sum(),
            "sessions": g.sessions.sum(),
            "events": g.events.sum(),
            "views": g.views.sum(),
        }
    ).fillna(0.0)
    out["avg_purchase_value_usd"] = np.where(out.purchases > 0, out.revenue_usd / out.purchases.clip(lower=1), 0.0)
    out["events_per_session"] = out.events / out.sessions.clip(lower=1)
    out["view_to_purchase"] = np.where(out.views > 0, out.purchases / out.views.clip(lower=1), 0.0)
    return out[NUMERIC].astype(float)


def transform(features: pd.DataFrame) -> np.ndarray:
    x = features[NUMERIC].copy()
    x[LOGGED] = np.log1p(x[LOGGED].clip(lower=0))
    return x.to_numpy()


@dataclass
class Segmentation:
    assignment: pd.DataFrame  # user_id index: cluster, segment + features
    profiles: pd.DataFrame  # cluster: segment, users, share, centroid features (original units)
    k: int
    silhouettes: dict[int, float]
    inertias: dict[int, float]
    centroids_scaled: np.ndarray  # in the scaled space, by cluster number (for the next run's matching)
    scaler: StandardScaler
    model: KMeans


def name_clusters(profiles: pd.DataFrame, mean_revenue: float) -> dict[int, str]:
    names = {}
    for cluster, p in profiles.iterrows():
        if p.revenue_usd >= 3 * mean_revenue and mean_revenue > 0:
            names[cluster] = "high_value"
        elif p.recency_days_median > 30:
            names[cluster] = "dormant"
        elif p.tenure_days_median <= 14:
            names[cluster] = "new"
        elif p.recency_days_median > 7:
            names[cluster] = "at_risk"
        else:
            names[cluster] = "active_loyal"
    return names


def scaled(features: pd.DataFrame) -> tuple[StandardScaler, np.ndarray]:
    """The features as k-means sees them (logged, standardised), with the fitted scaler."""
    values = transform(features)
    scaler = StandardScaler().fit(values)
    return scaler, scaler.transform(values)


def silhouette_sample(n: int, seed: int) -> np.ndarray:
    """Which of ``n`` users the silhouette is computed on (at most ``SILHOUETTE_SAMPLE``)."""
    return np.random.default_rng(seed).choice(n, min(n, SILHOUETTE_SAMPLE), replace=False)


def silhouette_scores(x: np.ndarray, labelings: dict[int, np.ndarray], chunk: int = 1024) -> dict[int, float]:
    """The mean silhouette of each labeling of the same points (Euclidean): what sklearn's
    ``silhouette_score`` gives for each, but the pairwise distances, the costly part, are computed once for
    all labelings instead of once per k. A point alone in its cluster scores 0, as in sklearn."""
    n = len(x)
    labelings = {k: np.unique(labels, return_inverse=True)[1] for k, labels in labelings.items()}  # no empty cluster
    onehots = {k: np.eye(int(labels.max()) + 1)[labels] for k, labels in labelings.items()}
    sizes = {k: onehot.sum(axis=0) for k, onehot in onehots.items()}
    totals = dict.fromkeys(labelings, 0.0)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        rows = np.arange(stop - start)
        distances = euclidean_distances(x[start:stop], x)
        distances[rows, rows + start] = 0.0  # a point's distance to itself (as sklearn sets it)
        for k, onehot in onehots.items():
            own, size = labelings[k][start:stop], sizes[k]
            sums = distances @ onehot  # summed distance from each point to each cluster
            a = sums[rows, own] / np.maximum(size[own] - 1, 1)  # mean to its own cluster, itself left out
            mean_to = sums / size
            mean_to[rows, own] = np.inf
            b = mean_to.min(axis=1)  # mean to the nearest other cluster
            with np.errstate(invalid="ignore", divide="ignore"):
                s = np.where(size[own] > 1, (b - a) / np.maximum(a, b), 0.0)
            totals[k] += float(np.nan_to_num(s).sum())
    return {k: total / n for k, total in totals.items()}


def segment(features: pd.DataFrame, seed: int = 42, previous_centroids: np.ndarray | None = None) -> Segmentation:
    if len(features) < max(K_RANGE) * 5:
        raise ValueError(f"{len(features)} users are too few to segment")
    scaler, x = scaled(features)
    sample = silhouette_sample(len(x), seed)
    fitted = {k: KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x) for k in K_RANGE}
    inertias = {k: float(km.inertia_) for k, km in fitted.items()}
    silhouettes = silhouette_scores(x[sample], {k: km.labels_[sample] for k, km in fitted.items()})
    k = max(silhouettes, key=lambda kk: (round(silhouettes[kk], 4), -kk))
    km = fitted[k]
    labels, centroids = km.labels_, km.cluster_centers_
    if previous_centroids is not None and len(previous_centroids):
        # keep numbering: new cluster i takes the number of the closest previous centroid
        cost = ((centroids[:, None, :] - previous_centroids[None, :, :]) ** 2).sum(axis=2)
        rows, cols = linear_sum_assignment(cost)
        mapping = dict(zip(rows.tolist(), cols.tolist(), strict=True))
        spare = iter(i for i in range(max(k, len(previous_centroids)) + k) if i not in mapping.values())
        mapping.update({i: next(spare) for i in range(k) if i not in mapping})
        labels = np.array([mapping[int(v)] for v in labels])
        ordered = np.zeros((max(mapping.values()) + 1, centroids.shape[1]))
        for new, old in mapping.items():
            ordered[old] = centroids[new]
        centroids = ordered
    assignment = features.assign(cluster=labels)
    grouped = assignment.groupby("cluster")
    profiles = grouped[NUMERIC].mean()
    profiles["recency_days_median"] = grouped.recency_days.median()
    profiles["tenure_days_median"] = grouped.tenure_days.median()
    profiles["users"] = grouped.size()
    profiles["share"] = profiles.users / len(assignment)
    names = name_clusters(profiles, float(features.revenue_usd.mean()))
    profiles["segment"] = profiles.index.map(names)
    assignment["segment"] = assignment.cluster.map(names)
    return Segmentation(assignment, profiles, k, silhouettes, inertias, centroids, scaler, km)


def recovery(assigned: pd.Series, truth: pd.Series, name: str) -> tuple[float, float]:
    """(precision, recall) of segment ``name`` against a boolean ground truth per user."""
    truth = truth.reindex(assigned.index).fillna(False).astype(bool)
    got = assigned == name
    tp = float((got & truth).sum())
    return (tp / got.sum() if got.sum() else 0.0, tp / truth.sum() if truth.sum() else 0.0)
