"""ClickHouse quoting, shared by the ClickHouse service and its clients (dbt publishing, ML, streaming)."""

from __future__ import annotations


def ident(name: str) -> str:
    """A back-quoted identifier."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def literal(value: str) -> str:
    """A single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
