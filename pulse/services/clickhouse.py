"""ClickHouse: the chDB engine served over ClickHouse's HTTP interface (``pulse.clickhouse_server.http_server``).

Debian's clickhouse-server is from 2018 and no modern server binary is installable here, so the
embedded default is one Pulse-owned process serving a chDB data directory. A real ClickHouse
server (self-hosted or cloud) is used instead by setting PULSE_CH_HOST (and port/user/password).
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request

from pulse.common.files import write_private
from pulse.config import DEMO_SOURCE, PG_COLLECTION, PG_DATABASE
from pulse.services.base import ManagedProcess, port_open


class ClickHouse(ManagedProcess):
    name = "clickhouse"

    @property
    def managed(self) -> bool:
        return self.settings.clickhouse.managed

    @property
    def port(self) -> int:
        return self.settings.clickhouse.port

    @property
    def endpoint(self) -> str:
        return self.settings.clickhouse.url

    @property
    def config_file(self):
        return self.settings.run_dir / "clickhouse.json"

    def server_config(self) -> dict:
        """Users and roles, and the Postgres named collection dbt's sources use (see pulse.clickhouse_server.policy)."""
        ch, pg = self.settings.clickhouse, self.settings.postgres
        return {
            "users": [
                {"name": ch.user, "password": ch.password, "role": "writer", "default_database": ch.database},
                {
                    "name": ch.bi_user,
                    "password": ch.bi_password,
                    "role": "reader",
                    "default_database": ch.marts_database(DEMO_SOURCE),
                    "databases": ch.reader_databases,
                },
            ],
            "postgres": {
                "collection": PG_COLLECTION,
                "attach_as": PG_DATABASE,
                "host": pg.address,
                "port": pg.port,
                "database": pg.database,
                "user": pg.user,
                "password": pg.password,
                "schema": "staging",
            },
        }

    def prepare(self) -> None:
        write_private(self.config_file, json.dumps(self.server_config()))  # every credential of the service

    def command(self) -> list[str]:
        cfg = self.settings.clickhouse
        return [
            sys.executable,
            "-m",
            "pulse.clickhouse_server.http_server",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(cfg.port),
            "--config",
            str(self.config_file),
        ]

    def environment(self) -> dict[str, str]:
        # the server's time zone is UTC whatever the host's: its PostgreSQL engine reads timestamptz text
        # without the offset, in the server's zone (ClickHouse#89128), and Pulse's Postgres speaks UTC
        return super().environment() | {"TZ": "UTC"}

    def query(self, sql: str, timeout: float = 10) -> str:
        """One statement over HTTP with the configured credentials (health checks, bootstrap)."""
        cfg = self.settings.clickhouse
        token = base64.b64encode(f"{cfg.user}:{cfg.password}".encode()).decode()
        req = urllib.request.Request(cfg.url + "/", data=sql.encode(), headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode()

    def healthy(self) -> tuple[bool, str]:
        if self.managed and not port_open("127.0.0.1", self.port):
            return False, "port closed"
        try:
            cfg = self.settings.clickhouse
            version = self.query("SELECT version()").strip()
            return True, f"ClickHouse {version} · users {cfg.user} (writer), {cfg.bi_user} (read-only)"
        except urllib.error.HTTPError as exc:
            return False, exc.read().decode(errors="replace").strip()[:120]
        except OSError as exc:
            return False, str(exc)[:120]
