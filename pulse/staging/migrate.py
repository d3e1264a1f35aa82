"""Versioned SQL migrations (``migrations/NNN_name.sql``), applied once each, in order, under a lock."""

from __future__ import annotations

import hashlib
from importlib import resources

from pulse.common import pg
from pulse.config import PostgresConfig

LOCK_ID = 7_201_501  # advisory lock: two `pulse` processes never migrate at once


class MigrationError(RuntimeError):
    pass


def available() -> list[tuple[int, str, str]]:
    files = sorted(f for f in resources.files("pulse.staging").joinpath("migrations").iterdir() if f.name.endswith(".sql"))
    return [(int(f.name.split("_", 1)[0]), f.name, f.read_text()) for f in files]


def migrate(cfg: PostgresConfig) -> list[str]:
    """Apply pending migrations; returns the names applied. A changed applied file is an error."""
    applied: list[str] = []
    with pg.connect(cfg) as conn:
        conn.execute("select pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            conn.execute("create schema if not exists pulse_meta")
            conn.execute("""create table if not exists pulse_meta.schema_migrations (
                version int primary key, name text not null, sha256 text not null,
                applied_at timestamptz not null default now())""")
            conn.commit()
            done = {v: (n, h) for v, n, h in conn.execute("select version, name, sha256 from pulse_meta.schema_migrations")}
            for version, name, sql in available():
                digest = hashlib.sha256(sql.encode()).hexdigest()
                if version in done:
                    if done[version][1] != digest:
                        raise MigrationError(f"migration {name} changed after it was applied; add a new migration instead")
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "insert into pulse_meta.schema_migrations (version, name, sha256) values (%s, %s, %s)",
                        (version, name, digest),
                    )
                applied.append(name)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (LOCK_ID,))
            conn.commit()
    return applied
