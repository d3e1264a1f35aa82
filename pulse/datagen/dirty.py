"""Render clean events as RAW text and inject dirty data, recording exactly what was injected.

Every injected defect breaks exactly one quarantine rule (see ``pulse.domain.RULES``), so the
ground truth says how many rows the cleaning job must keep and quarantine under each rule.
Cosmetic noise (mixed time zones and formats, odd casing, late arrival) must be *kept*.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import numpy as np

from pulse.domain import FX_TO_USD, RAW_COLUMNS, RULES

# share of the dirty budget per defect -> the rule that must catch it
DEFECTS: dict[str, tuple[float, str]] = {
    "exact_duplicate": (0.20, "duplicate_event_id"),
    "near_duplicate": (0.10, "near_duplicate"),
    "null_required": (0.10, "missing_required_field"),
    "bad_timestamp": (0.10, "invalid_timestamp"),
    "future_timestamp": (0.05, "future_timestamp"),
    "wrong_type": (0.10, "wrong_type"),
    "bad_price": (0.10, "invalid_price"),
    "unknown_event_type": (0.10, "unknown_event_type"),
    "unknown_currency": (0.05, "unknown_currency"),
    "malformed_line": (0.10, "malformed_line"),
}
assert {rule for _, rule in DEFECTS.values()} == set(RULES), "every rule has a defect that breaks it, and only those"
CENT = Decimal("0.01")


@dataclass(frozen=True)
class DirtParams:
    rate: float = 0.02  # defects per clean event
    late_rate: float = 0.02  # events that arrive 1-3 days after they happened (kept)
    tz_rate: float = 0.05  # events stamped with a non-UTC offset or another format (kept)
    noise_rate: float = 0.05  # odd casing / whitespace in categorical fields (kept)


@dataclass
class GroundTruth:
    clean_events: int = 0
    quarantined: Counter = field(default_factory=Counter)
    injected: Counter = field(default_factory=Counter)
    revenue_usd: Decimal = Decimal("0")
    purchases: int = 0
    events_by_date: Counter = field(default_factory=Counter)
    dau_by_date: Counter = field(default_factory=Counter)
    raw_rows: int = 0
    late_events: int = 0  # kept events that arrived on a later day than they happened (flagged is_late)

    def to_dict(self) -> dict:
        return {
            "raw_rows": self.raw_rows,
            "clean_events": self.clean_events,
            "quarantined": dict(sorted(self.quarantined.items())),
            "quarantined_total": sum(self.quarantined.values()),
            "injected": dict(sorted(self.injected.items())),
            "purchases": self.purchases,
            "revenue_usd": str(self.revenue_usd),
            "events_by_date": dict(sorted(self.events_by_date.items())),
            "dau_by_date": dict(sorted(self.dau_by_date.items())),
            "late_events": self.late_events,
        }


@dataclass
class RawChunk:
    """String columns of one chunk plus where each row lands (ingest day) and its order key."""

    cols: dict[str, np.ndarray]
    ingest_day: np.ndarray
    order: np.ndarray  # within an ingest day, rows are written in this order
    malformed: list[tuple[int, str]]  # (ingest day, raw line)


def _iso(ms: np.ndarray, start: date) -> np.ndarray:
    ts = np.datetime64(start.isoformat(), "ms") + ms.astype("timedelta64[ms]")
    return np.char.add(np.datetime_as_string(ts, unit="ms").astype(object), "Z").astype(object)


def _fmt_price(p: np.ndarray) -> np.ndarray:
    return np.array([f"{x:.2f}" for x in p.tolist()], dtype=object)


def render(chunk: dict[str, np.ndarray], start: date, rng: np.random.Generator, dp: DirtParams, truth: GroundTruth) -> RawChunk:
    """One chunk of clean events as RAW text columns with kept noise and injected defects, counted in ``truth``.
    The random draws happen in a fixed order (same seed, same bytes)."""
    n = len(chunk["event_id"])
    t_ms = chunk["t_ms"]
    cols = _text_columns(chunk, start)
    ingest_day = (t_ms // 86_400_000).astype(np.int64)
    late = rng.random(n) < dp.late_rate
    ingest_day[late] += rng.integers(1, 4, int(late.sum()))
    _add_noise(cols, t_ms, start, rng, dp)
    budget = {k: round(n * dp.rate * share) for k, (share, _) in DEFECTS.items()}
    corrupted, clean_rows = _corrupt_rows(cols, ingest_day, budget, start, rng)
    n_dup, n_near = budget["exact_duplicate"], budget["near_duplicate"]
    extra = np.concatenate([clean_rows[:n_dup], clean_rows[n_dup : n_dup + n_near]])
    _append_copies(cols, extra, n_dup, rng)
    # a copy arrives with its original or up to two days later, always after it
    copy_ingest = ingest_day[extra] + rng.integers(0, 3, len(extra))
    ingest_day = np.concatenate([ingest_day, copy_ingest])
    order = np.concatenate([t_ms, np.full(len(extra), np.iinfo(np.int64).max)])
    malformed = []
    for _ in range(budget["malformed_line"]):
        i = int(rng.integers(0, n))
        malformed.append((int(ingest_day[i]), _malformed_line(cols, i, rng)))
    keep = np.nonzero(~corrupted)[0]
    _count_truth(truth, chunk, cols, start, budget, keep)
    truth.late_events += int((ingest_day[keep] > chunk["t_ms"][keep] // 86_400_000).sum())
    truth.raw_rows += n + len(extra) + len(malformed)
    return RawChunk(cols, ingest_day, order, malformed)


def _text_columns(chunk: dict[str, np.ndarray], start: date) -> dict[str, np.ndarray]:
    return {
        "event_id": chunk["event_id"],
        "event_time": _iso(chunk["t_ms"], start),
        "event_type": chunk["event_type"].copy(),
        "product_id": chunk["product_id"].astype(str).astype(object),
        "category_id": chunk["category_id"].astype(str).astype(object),
        "category_code": chunk["category_code"].astype(object),
        "brand": chunk["brand"].astype(object),
        "price": _fmt_price(chunk["price"]),
        "user_id": chunk["user_id"].astype(str).astype(object),
        "user_session": chunk["user_session"],
        "currency": chunk["currency"].astype(object),
        "platform": chunk["platform"].astype(object),
        "country": chunk["country"].astype(object),
        "app_version": chunk["app_version"].astype(object),
        "channel": chunk["channel"].astype(object),
    }


def _add_noise(cols: dict[str, np.ndarray], t_ms: np.ndarray, start: date, rng: np.random.Generator, dp: DirtParams) -> None:
    """Noise the cleaning job must keep and normalise: other time zones and formats, casing, whitespace."""
    n = len(t_ms)
    tz = np.nonzero(rng.random(n) < dp.tz_rate)[0]
    for i, style in zip(tz.tolist(), rng.integers(0, 4, len(tz)).tolist(), strict=True):
        cols["event_time"][i] = _other_format(int(t_ms[i]), start, style, rng)
    for name, fn in (
        ("event_type", lambda s: f" {s.upper()} "),
        ("brand", str.upper),
        ("country", str.lower),
        ("currency", str.lower),
        ("category_code", str.title),
    ):
        idx = np.nonzero(rng.random(n) < dp.noise_rate)[0]
        cols[name][idx] = [fn(v) for v in cols[name][idx].tolist()]


def _corrupt_rows(
    cols: dict[str, np.ndarray], ingest_day: np.ndarray, budget: dict[str, int], start: date, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """In-place defects on disjoint rows. Returns (which rows are corrupted, the clean rows in random order)."""
    n = len(ingest_day)
    in_place = [k for k in DEFECTS if k not in ("exact_duplicate", "near_duplicate", "malformed_line")]
    perm = rng.permutation(n)
    pos, corrupted = 0, np.zeros(n, dtype=bool)
    for kind in in_place:
        rows = perm[pos : pos + budget[kind]]
        pos += len(rows)
        corrupted[rows] = True
        for i in rows.tolist():
            _corrupt(cols, i, kind, rng, start, int(ingest_day[i]))
    return corrupted, perm[pos:]


def _append_copies(cols: dict[str, np.ndarray], extra: np.ndarray, n_dup: int, rng: np.random.Generator) -> None:
    """Copies of clean rows at the end: the first ``n_dup`` exact, the rest near duplicates."""
    n = len(cols["event_id"])
    for name in cols:
        cols[name] = np.concatenate([cols[name], cols[name][extra]])
    for j in range(n + n_dup, n + len(extra)):  # near duplicates: a new id and cosmetic differences
        cols["event_id"][j] = f"{rng.integers(0, 2**62):016x}{rng.integers(0, 2**62):016x}"
        cols["event_type"][j] = f"{cols['event_type'][j].strip().upper()} "
        cols["brand"][j] = str(cols["brand"][j]).upper()


def _count_truth(
    truth: GroundTruth, chunk: dict[str, np.ndarray], cols: dict[str, np.ndarray], start: date, budget: dict, keep: np.ndarray
) -> None:
    for kind in DEFECTS:
        truth.injected[kind] += budget[kind]
        truth.quarantined[DEFECTS[kind][1]] += budget[kind]
    truth.clean_events += len(keep)
    days = (chunk["t_ms"][keep] // 86_400_000).astype(np.int64)
    for d, c in zip(*np.unique(days, return_counts=True), strict=True):
        truth.events_by_date[(start + timedelta(days=int(d))).isoformat()] += int(c)
    pairs = np.unique(np.stack([days, chunk["user_id"][keep]]), axis=1)
    for d, c in zip(*np.unique(pairs[0], return_counts=True), strict=True):
        truth.dau_by_date[(start + timedelta(days=int(d))).isoformat()] += int(c)
    buys = keep[chunk["event_type"][keep] == "purchase"]
    truth.purchases += len(buys)
    truth.revenue_usd += sum(
        (
            (Decimal(p) * FX_TO_USD[c.strip().upper()]).quantize(CENT, ROUND_HALF_UP)
            for p, c in zip(cols["price"][buys].tolist(), cols["currency"][buys].tolist(), strict=True)
        ),
        Decimal("0"),
    )


DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney"]  # clocks change in Oct/Nov (Apr/Oct for Sydney)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OFFSETS_MINUTES = [-480, -300, -210, 60, 120, 180, 300, 330, 345, 540]


def _other_format(ms: int, start: date, style: int, rng: np.random.Generator) -> str:
    """The same instant written as a client in another zone, the public dataset, or an SDK would."""
    epoch_ms = int((np.datetime64(start.isoformat(), "ms") - np.datetime64("1970-01-01", "ms")).astype(int)) + ms
    if style == 0:  # whole-hour, half-hour (India, Newfoundland) and 45-minute (Nepal) offsets
        minutes = int(rng.choice(OFFSETS_MINUTES))
        local = np.datetime64(epoch_ms, "ms") + np.timedelta64(minutes, "m")
        sign, m = "+" if minutes >= 0 else "-", abs(minutes)
        return f"{np.datetime_as_string(local, unit='ms')}{sign}{m // 60:02d}:{m % 60:02d}"
    if style == 1:  # the public e-commerce dataset's format (whole seconds)
        return np.datetime_as_string(np.datetime64(epoch_ms, "ms"), unit="s").replace("T", " ") + " UTC"
    if style == 2:
        return str(epoch_ms)  # mobile SDKs send epoch milliseconds
    return _zone_local(epoch_ms, ZoneInfo(str(rng.choice(DST_ZONES))))


def _zone_local(epoch_ms: int, zone: ZoneInfo) -> str:
    """The instant as local time in a zone with daylight saving time ("… Europe/Berlin"): the offset
    follows the day's rule. In the hour that repeats when clocks go back the local time is ambiguous,
    so those instants are written with their offset (as a careful client would)."""
    at = (EPOCH + timedelta(milliseconds=epoch_ms)).astimezone(zone)
    wall = at.replace(tzinfo=None)
    if wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset():
        return at.isoformat(timespec="milliseconds")
    return f"{wall.isoformat(sep=' ', timespec='milliseconds')} {zone.key}"


def _corrupt(cols: dict[str, np.ndarray], i: int, kind: str, rng: np.random.Generator, start: date, ingest_day: int) -> None:
    pick = int(rng.integers(0, 3))
    if kind == "null_required":
        cols[("event_time", "event_type", "user_id")[pick]][i] = ""
    elif kind == "bad_timestamp":
        cols["event_time"][i] = ("2026-13-45T99:00:00Z", "yesterday", "31/10/2026 25:61")[pick]
    elif kind == "future_timestamp":
        ahead = (ingest_day + int(rng.integers(3, 400))) * 86_400_000 + int(rng.integers(0, 86_400_000))
        cols["event_time"][i] = _iso(np.array([ahead]), start)[0]
    elif kind == "wrong_type":
        col = ("user_id", "product_id", "price")[pick]
        cols[col][i] = {"user_id": f"user_{cols['user_id'][i]}", "product_id": "N/A", "price": "12,99€"}[col]
    elif kind == "bad_price":
        cols["price"][i] = ("0.00", "-" + cols["price"][i], "-0.01")[pick]
    elif kind == "unknown_event_type":
        cols["event_type"][i] = ("clik", "test_event", "wishlist_v0")[pick]
    elif kind == "unknown_currency":
        cols["currency"][i] = ("XBT", "ZZZ", "EURO")[pick]


def _malformed_line(cols: dict[str, np.ndarray], i: int, rng: np.random.Generator) -> str:
    full = ",".join(str(cols[c][i]) for c in RAW_COLUMNS)
    style = int(rng.integers(0, 3))
    if style == 0:
        return full[: len(full) // 2].rsplit(",", 1)[0]  # truncated write
    if style == 1:
        return full + ",,extra,fields"
    return "<html><body>502 Bad Gateway</body></html>"
