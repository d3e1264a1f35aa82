"""Users, their roles, and a brake on password guessing."""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

from pulse.clickhouse_server.errors import ClickHouseError
from pulse.clickhouse_server.policy import Role


@dataclass(frozen=True)
class User:
    name: str
    password: str
    role: Role


class Users:
    """Checks credentials in constant time and rate-limits failures per (client address, user name).

    Everything here is on loopback, so one address is every local client: keying on the user name too
    means a guesser slows down only the account it attacks. Each key has a bucket of ``burst`` failed
    attempts refilled at one per ``refill_s``; an empty bucket refuses further attempts *without
    checking the password*, so guessing cannot go on at speed, until the bucket refills.
    """

    def __init__(self, users: list[User], burst: int = 10, refill_s: float = 6.0) -> None:
        self.users = {u.name: u for u in users}
        self.burst, self.refill_s = burst, refill_s
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, as of)
        self._lock = threading.Lock()

    def _tokens(self, key: tuple[str, str], now: float) -> float:
        tokens, since = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - since) / self.refill_s)

    def authenticate(self, client: str, name: str, password: str) -> User:
        key, now = (client, name), time.monotonic()
        with self._lock:
            tokens = self._tokens(key, now)
            if tokens < 1:
                wait = (1 - tokens) * self.refill_s
                raise ClickHouseError(
                    516, f"{name}: too many failed logins from {client}; retry in {wait:.0f} s", http_status=429
                )
        user = self.users.get(name)
        expected = user.password if user else "\0" * 32  # same work for unknown users
        if hmac.compare_digest(password.encode(), expected.encode()) and user is not None:
            return user
        with self._lock:
            self._buckets[key] = (self._tokens(key, now) - 1, now)
        raise ClickHouseError(516, f"{name}: Authentication failed: password is incorrect, or there is no user with such name")
