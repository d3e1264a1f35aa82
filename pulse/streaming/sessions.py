"""Live users and their sessions, for the stream: the batch generator's catalogue, platforms,
countries and prices, played out in real time.

A pool of concurrent sessions is kept open; each next event comes from a random open session and
continues its funnel (view -> click -> add_to_cart -> purchase, each step with a probability, and
back to browsing). A finished session is replaced by a new one of a user drawn from a fixed
population with a Zipf-like activity, so some users come back many times a day and most rarely.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from pulse.datagen.events import (
    CHANNEL_P,
    CHANNELS,
    COUNTRIES,
    COUNTRY_P,
    PLATFORM_P,
    PLATFORMS,
    make_catalogue,
)
from pulse.domain import COUNTRY_CURRENCY, FX_TO_USD

# what follows each event type: (next type, probability), the rest of the mass ends the session
NEXT = {
    "view": (("view", 0.45), ("click", 0.40)),
    "click": (("view", 0.55), ("add_to_cart", 0.25)),
    "add_to_cart": (("purchase", 0.35), ("view", 0.50)),
    "purchase": (("view", 0.40),),
}


@dataclass
class Session:
    user: int
    session_id: str
    platform: str
    country: str
    product: int
    last: str | None = None
    last_ms: int = 0


@dataclass
class SessionModel:
    users: int = 20_000
    concurrent: int = 2_000
    seed: int = 7
    n_products: int = 5_000
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.catalogue = make_catalogue(self.rng, self.n_products)
        weight = 1.0 / np.arange(1, self.users + 1) ** 0.8
        self._user_p = weight / weight.sum()
        self.user_ids = 10_000_000 + self.rng.permutation(self.users).astype(np.int64)
        self.platform = PLATFORMS[self.rng.choice(len(PLATFORMS), self.users, p=PLATFORM_P)]
        self.country = COUNTRIES[self.rng.choice(len(COUNTRIES), self.users, p=COUNTRY_P)]
        self.channel = CHANNELS[self.rng.choice(len(CHANNELS), self.users, p=CHANNEL_P)]
        self._draws = iter(())
        self._user_draws: Iterator[int] = iter(())
        self._product_draws: Iterator[int] = iter(())
        self._sessions = [self._new_session() for _ in range(min(self.concurrent, self.users))]

    # numpy draws in blocks: one weighted numpy draw per event (O(population) each) would cap the
    # producer at a few thousand events/s
    def _random(self) -> float:
        try:
            return next(self._draws)
        except StopIteration:
            self._draws = iter(self.rng.random(65_536).tolist())
            return next(self._draws)

    def _user(self) -> int:
        try:
            return next(self._user_draws)
        except StopIteration:
            self._user_draws = iter(self.rng.choice(self.users, 16_384, p=self._user_p).tolist())
            return next(self._user_draws)

    def _product(self) -> int:
        try:
            return next(self._product_draws)
        except StopIteration:
            n = len(self.catalogue.product_id)
            self._product_draws = iter(self.rng.choice(n, 65_536, p=self.catalogue.popularity).tolist())
            return next(self._product_draws)

    def _new_session(self) -> Session:
        u = self._user()
        return Session(
            user=int(self.user_ids[u]),
            session_id=f"{int(self._random() * 2**63):016x}",
            platform=str(self.platform[u]),
            country=str(self.country[u]),
            product=self._product(),
        )

    def next_event(self, now_ms: int) -> tuple[dict, int]:
        """The next event of a random open session and its time (epoch ms): ``now_ms``, or 1 ms after
        the session's previous event, so no two events of a session share an instant (two would
        look like one event sent twice to the batch path's near-duplicate rule)."""
        i = int(self._random() * len(self._sessions))
        s = self._sessions[i]
        kind = self._step(s.last)
        if kind is None:  # the session ended: its slot goes to a new one, which starts with a view
            s = self._sessions[i] = self._new_session()
            kind = "view"
        if kind == "view":
            s.product = self._product()
        s.last = kind
        s.last_ms = max(now_ms, s.last_ms + 1)
        currency = COUNTRY_CURRENCY[s.country]
        price_usd = float(self.catalogue.price_usd[s.product])
        price = round(price_usd / float(FX_TO_USD[currency]), 2)
        event = {
            "user_id": f"u{s.user}",  # ids are text in the open event model (ADR 0028)
            "session_id": s.session_id,
            "event_type": kind,
            "product_id": f"p{int(self.catalogue.product_id[s.product])}",
            "price": price,
            "currency": currency,
            "platform": s.platform,
            "country": s.country,
        }
        return event, s.last_ms

    def _step(self, last: str | None) -> str | None:
        if last is None:
            return "view"
        r = self._random()
        for kind, p in NEXT[last]:
            if r < p:
                return kind
            r -= p
        return None
