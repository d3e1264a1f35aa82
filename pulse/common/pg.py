"""PostgreSQL connections for every stage (psycopg 3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from pulse.config import PostgresConfig


def connect(cfg: PostgresConfig, *, admin: bool = False, autocommit: bool = False, **overrides: str) -> psycopg.Connection:
    conninfo = cfg.conninfo(admin=admin)
    if overrides:
        conninfo = psycopg.conninfo.make_conninfo(conninfo, **overrides)
    return psycopg.connect(conninfo, autocommit=autocommit)


def ensure_login_database(cfg: PostgresConfig, user: str, password: str, database: str, *, sync_password: bool) -> None:
    """A login role and a database it owns (created once). With ``sync_password`` an existing role's
    password is set to the configured one (the configuration is the truth)."""
    with connect(cfg, admin=True, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (user,)).fetchone()
        if not exists or sync_password:
            verb = "alter" if exists else "create"
            conn.execute(sql.SQL(verb + " role {} login password {}").format(sql.Identifier(user), sql.Literal(password)))
        if not conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone():
            conn.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(database), sql.Identifier(user)))


def temp_table(conn: psycopg.Connection, name: str, columns: str, rows) -> None:
    """Inside the caller's transaction: a temporary table ``name`` (``columns`` as SQL) dropped at commit,
    filled with ``rows`` by COPY."""
    conn.execute(sql.SQL("create temp table {} ({}) on commit drop").format(sql.Identifier(name), sql.SQL(columns)))
    with conn.cursor().copy(sql.SQL("copy {} from stdin").format(sql.Identifier(name))) as copy:
        for row in rows:
            copy.write_row(row)
