"""Clean synthetic e-commerce / mobile-app events, vectorised with numpy and deterministic by seed.

Users sign up over the window and the ``warmup_days`` before it (so the window starts with an
existing user base, in steady state, instead of ramping up from zero), with acquisition growing
over time (trend). A user is active on a day with a probability that decays with age and ends at a
channel-dependent lifetime (churn), follows a weekly rhythm (weekends up on mobile, down on web),
and rises on promo days (the 1st of each month and Black Friday: more users active, more buying);
each active day has sessions, each session a run of product views, some views lead to a cart,
some carts to a purchase. 3 % of users are whales (cart and buy far more often). Prices follow a
heavy-tailed (log-normal) catalogue. Output is a dict of numpy columns per chunk of users, plus
who each user is (``users``) for the ground truth of the segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from pulse.domain import COUNTRY_CURRENCY, FX_TO_USD

PLATFORMS = np.array(["ios", "android", "web"])
PLATFORM_P = [0.40, 0.45, 0.15]
COUNTRIES = np.array(["US", "IN", "DE", "GB", "BR", "FR", "CA"])
COUNTRY_P = [0.35, 0.15, 0.12, 0.10, 0.10, 0.08, 0.10]
CHANNELS = np.array(["organic", "paid_search", "social", "referral", "email"])
CHANNEL_P = [0.40, 0.20, 0.20, 0.10, 0.10]
CHANNEL_LIFETIME_DAYS = np.array([60.0, 25.0, 20.0, 45.0, 35.0])  # mean days before churn
CATEGORIES = np.array(
    [
        "electronics.smartphone",
        "electronics.audio.headphone",
        "computers.notebook",
        "appliances.kitchen.kettle",
        "apparel.shoes",
        "apparel.jacket",
        "furniture.living_room.sofa",
        "kids.toys",
        "sport.bicycle",
        "beauty.skincare",
    ]
)
BRANDS = np.array(["apple", "samsung", "xiaomi", "lenovo", "bosch", "nike", "adidas", "ikea", "lego", "loreal", "acme"])
HOUR_P = np.array([1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 8, 7, 6, 6, 6, 7, 8, 9, 10, 9, 6, 3], dtype=float)
HOUR_P /= HOUR_P.sum()
PILOT_USERS = 2_000  # users simulated once to learn how many events a user makes over the window


@dataclass(frozen=True)
class GenParams:
    n_events: int = 100_000
    days: int = 90
    end_date: date = date(2026, 10, 31)
    seed: int = 42
    users_per_chunk: int = 20_000
    warmup_days: int = 60  # users sign up this long before the window too: it starts in steady state

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)


@dataclass
class Catalogue:
    product_id: np.ndarray
    category_id: np.ndarray
    category_code: np.ndarray
    brand: np.ndarray
    price_usd: np.ndarray
    popularity: np.ndarray


def make_catalogue(rng: np.random.Generator, n_products: int) -> Catalogue:
    cat_idx = rng.integers(0, len(CATEGORIES), n_products)
    popularity = 1.0 / np.arange(1, n_products + 1) ** 0.9  # Zipf-like
    return Catalogue(
        product_id=1_000_000 + np.arange(n_products, dtype=np.int64),
        category_id=2_053_013_552_000_000_000 + cat_idx.astype(np.int64) * 1_000_003,
        category_code=CATEGORIES[cat_idx],
        brand=BRANDS[rng.integers(0, len(BRANDS), n_products)],
        price_usd=np.clip(np.round(rng.lognormal(3.3, 1.0, n_products), 2), 0.99, 4999.0),
        popularity=popularity / popularity.sum(),
    )


def _uuid_hex(rng: np.random.Generator, n: int) -> np.ndarray:
    words = rng.integers(0, 2**63 - 1, size=(n, 2), dtype=np.int64)
    return np.array([f"{a:016x}{b:016x}" for a, b in words.tolist()], dtype=object)


WHALE_SHARE = 0.03
PROMO_ACTIVITY, PROMO_BUYING = 1.5, 2.0


def promo_days(start: date, days: int) -> np.ndarray:
    """Window days that are promotions: the 1st of every month and Black Friday (4th Friday of November)."""
    out = np.zeros(days, dtype=bool)
    for d in range(days):
        day = start + timedelta(days=d)
        out[d] = day.day == 1 or (day.month == 11 and day.weekday() == 4 and 22 <= day.day <= 28)
    return out


@dataclass(frozen=True)
class _Users:
    """One chunk's simulated users, by index (all arrays of length n)."""

    signup: np.ndarray  # simulated day of signup (0 = first day of the warm-up)
    platform: np.ndarray
    country: np.ndarray
    channel: np.ndarray
    engagement: np.ndarray
    whale: np.ndarray
    lifetime: np.ndarray  # days active after signup
    app_version: np.ndarray


def _draw_users(rng: np.random.Generator, n_users: int, span: int) -> _Users:
    day_w = 1.0 + 1.5 * np.arange(span) / span  # signups grow over time (acquisition trend)
    signup = rng.choice(span, n_users, p=day_w / day_w.sum())
    platform = rng.choice(len(PLATFORMS), n_users, p=PLATFORM_P)
    country = rng.choice(len(COUNTRIES), n_users, p=COUNTRY_P)
    channel = rng.choice(len(CHANNELS), n_users, p=CHANNEL_P)
    engagement = rng.beta(2.0, 3.0, n_users)
    whale = rng.random(n_users) < WHALE_SHARE
    lifetime = rng.exponential(CHANNEL_LIFETIME_DAYS[channel]) * np.where(whale, 2.0, 1.0)
    minor = np.clip((signup / span * 6).astype(int) + rng.integers(-1, 2, n_users), 0, 6)
    app_version = np.array([f"5.{m}.0" for m in minor.tolist()], dtype=object)
    app_version[platform == 2] = "web"
    return _Users(signup, platform, country, channel, engagement, whale, lifetime, app_version)


def _active_days(params: GenParams, rng: np.random.Generator, u: _Users) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user index, window day) of every active user-day, and which simulated days are promotions."""
    warm, span, n_users = params.warmup_days, params.warmup_days + params.days, len(u.signup)
    first_day = params.start_date - timedelta(days=warm)
    age = np.arange(span)[None, :] - u.signup[:, None]
    dow = np.array([(first_day + timedelta(days=d)).weekday() for d in range(span)]) >= 5
    promo = promo_days(first_day, span)
    weekly = np.where(dow[None, :], np.where(u.platform[:, None] == 2, 0.8, 1.2), 1.0)
    lift = np.where(promo, PROMO_ACTIVITY, 1.0)[None, :]
    p_active = np.minimum(u.engagement[:, None] * (0.35 + 0.65 * np.exp(-np.maximum(age, 0) / 7.0)) * weekly * lift, 1.0)
    active = (age >= 0) & (age < u.lifetime[:, None]) & (rng.random((n_users, span)) < p_active)
    active[np.arange(n_users), u.signup] = True  # everybody is active on signup day
    u_idx, d_idx = np.nonzero(active[:, warm:])  # only the window's days are kept
    return u_idx, d_idx, promo


def _views(rng: np.random.Generator, s_start: np.ndarray, n_products: int, popularity: np.ndarray):
    """Each session is a run of views >= 1 s apart (no two events share a millisecond): (session, time, product)."""
    n_views = 1 + rng.poisson(4.0, len(s_start))
    v_sess = np.repeat(np.arange(len(s_start)), n_views)
    gaps = 1000 + rng.exponential(40_000, len(v_sess)).astype(np.int64)
    first = np.zeros(len(v_sess), dtype=bool)
    first[np.cumsum(n_views) - n_views] = True
    csum = np.cumsum(gaps)
    base = np.repeat(csum[first] - gaps[first], n_views)
    return v_sess, s_start[v_sess] + (csum - base), rng.choice(n_products, len(v_sess), p=popularity)


def _funnel(rng, v_sess, v_time, v_prod, buy_bias, whale_sess):
    """view -> cart -> purchase, or cart -> remove: (session, product, time, type) of every event."""
    carted = rng.random(len(v_sess)) < np.minimum(0.09 * buy_bias, 0.9)
    c_sess, c_prod = v_sess[carted], v_prod[carted]
    c_time = v_time[carted] + 1000 + rng.exponential(20_000, carted.sum()).astype(np.int64)
    bought = rng.random(len(c_sess)) < np.where(whale_sess[c_sess], 0.8, 0.45)
    removed = ~bought & (rng.random(len(c_sess)) < 0.3)
    p_time = c_time[bought] + 1000 + rng.exponential(120_000, bought.sum()).astype(np.int64)
    r_time = c_time[removed] + 1000 + rng.exponential(60_000, removed.sum()).astype(np.int64)
    kinds = [
        ("view", len(v_sess)),
        ("cart", len(c_sess)),
        ("purchase", int(bought.sum())),
        ("remove_from_cart", int(removed.sum())),
    ]
    return (
        np.concatenate([v_sess, c_sess, c_sess[bought], c_sess[removed]]),
        np.concatenate([v_prod, c_prod, c_prod[bought], c_prod[removed]]),
        np.concatenate([v_time, c_time, p_time, r_time]),
        np.concatenate([np.full(k, name, dtype=object) for name, k in kinds]),
    )


def generate_chunk(
    params: GenParams, rng: np.random.Generator, cat: Catalogue, user_offset: int, n_users: int
) -> dict[str, np.ndarray]:
    warm, days = params.warmup_days, params.days
    u = _draw_users(rng, n_users, warm + days)  # simulated days: the warm-up, then the window (only it is written)
    u_idx, d_idx, promo = _active_days(params, rng, u)
    # sessions: one or more per active day
    n_sess = 1 + rng.poisson(0.5, len(u_idx))
    s_user, s_day = np.repeat(u_idx, n_sess), np.repeat(d_idx, n_sess)
    n_s = len(s_user)
    s_start = (s_day.astype(np.int64) * 86_400 + rng.choice(24, n_s, p=HOUR_P) * 3600 + rng.integers(0, 3600, n_s)) * 1000
    s_id = _uuid_hex(rng, n_s)
    v_sess, v_time, v_prod = _views(rng, s_start, len(cat.product_id), cat.popularity)
    v_user, v_day = s_user[v_sess], s_day[v_sess]
    buy_bias = (
        (0.6 + u.engagement[v_user]) * np.where(u.whale[v_user], 4.0, 1.0) * np.where(promo[warm + v_day], PROMO_BUYING, 1.0)
    )
    sess, prod, t_ms, etype = _funnel(rng, v_sess, v_time, v_prod, buy_bias, u.whale[s_user])
    # sessions running past midnight of the last day are cut there: the export ends with end_date
    keep = t_ms < days * 86_400_000
    sess, prod, t_ms, etype = sess[keep], prod[keep], t_ms[keep], etype[keep]
    user = s_user[sess]
    rate = np.array([float(FX_TO_USD[COUNTRY_CURRENCY[c]]) for c in COUNTRIES])[u.country[user]]
    users = {  # who each user is: the ground truth the segmentation is checked against
        "user_id": (user_offset + np.arange(n_users) + 1).astype(np.int64),
        "signup_day": u.signup - warm,  # days after the window's first day (negative: before it)
        "churn_day": u.signup - warm + np.ceil(u.lifetime).astype(np.int64),  # first day no longer active
        "whale": u.whale,
    }
    return {
        "users": users,
        "event_id": _uuid_hex(rng, len(sess)),
        "t_ms": t_ms,  # ms since start_date 00:00 UTC
        "event_type": etype,
        "product_id": cat.product_id[prod],
        "category_id": cat.category_id[prod],
        "category_code": cat.category_code[prod],
        "brand": cat.brand[prod],
        "price": np.maximum(np.round(cat.price_usd[prod] / rate, 2), 0.01),
        "user_id": (user_offset + user + 1).astype(np.int64),
        "user_session": s_id[sess],
        "currency": np.array([COUNTRY_CURRENCY[c] for c in COUNTRIES])[u.country[user]],
        "platform": PLATFORMS[u.platform[user]],
        "country": COUNTRIES[u.country[user]],
        "app_version": u.app_version[user],
        "channel": CHANNELS[u.channel[user]],
    }


def generate(params: GenParams):
    """Yield column dicts, one per chunk of users, so 10M+ events never sit in memory twice."""
    rng = np.random.default_rng(params.seed)
    cat = make_catalogue(rng, max(200, min(20_000, params.n_events // 200)))
    pilot = generate_chunk(params, np.random.default_rng(params.seed + 999), cat, 0, PILOT_USERS)
    per_user = len(pilot["event_id"]) / PILOT_USERS
    remaining, offset = max(50, round(params.n_events / per_user)), 0
    while remaining > 0:
        n = min(params.users_per_chunk, remaining)
        yield generate_chunk(params, rng, cat, offset, n)
        offset += n
        remaining -= n
