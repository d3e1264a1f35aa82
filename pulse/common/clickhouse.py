"""ClickHouse connections for every stage (clickhouse-connect over the HTTP interface)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import clickhouse_connect

if TYPE_CHECKING:
    from pulse.config import ClickHouseConfig


def client(cfg: ClickHouseConfig, **overrides: Any) -> Any:
    options = {
        "host": cfg.host or "127.0.0.1",
        "port": cfg.port,
        "username": cfg.user,
        "password": cfg.password,
        "database": cfg.database,
        "secure": cfg.secure,
        **overrides,
    }
    return clickhouse_connect.get_client(**options)
