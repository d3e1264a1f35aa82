"""PostgreSQL connections for every stage (psycopg 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from pulse.config import PostgresConfig


def connect(cfg: PostgresConfig, *, admin: bool = False, autocommit: bool = False, **overrides: str) -> psycopg.Connection:
    conninfo = cfg.conninfo(admin=admin)
    if overrides:
        conninfo = psycopg.conninfo.make_conninfo(conninfo, **overrides)
    return psycopg.connect(conninfo, autocommit=autocommit)
