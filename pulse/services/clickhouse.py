"""ClickHouse: the chDB engine served over ClickHouse's HTTP interface (``pulse.clickhouse.http_server``).

Debian's clickhouse-server is from 2018 and no modern server binary is installable here, so the
embedded default is one Pulse-owned process serving a chDB data directory. A real ClickHouse
server (self-hosted or cloud) is used instead by setting PULSE_CH_HOST (and port/user/password).
"""

from __future__ import annotations

import base64
import sys
import urllib.error
import urllib.request

from pulse.services.base import ManagedProcess, ServiceError, port_open


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
    def password_file(self):
        return self.settings.run_dir / "clickhouse.password"

    def prepare(self) -> None:
        self.password_file.write_text(self.settings.clickhouse.password)
        self.password_file.chmod(0o600)

    def command(self) -> list[str]:
        cfg = self.settings.clickhouse
        return [
            sys.executable,
            "-m",
            "pulse.clickhouse.http_server",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(cfg.port),
            "--user",
            cfg.user,
            "--password-file",
            str(self.password_file),
        ]

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
            return True, f"ClickHouse {self.query('SELECT version()').strip()}"
        except urllib.error.HTTPError as exc:
            return False, exc.read().decode(errors="replace").strip()[:120]
        except OSError as exc:
            return False, str(exc)[:120]

    def after_start(self) -> None:
        try:
            self.query(f"CREATE DATABASE IF NOT EXISTS `{self.settings.clickhouse.database}`")
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"clickhouse: cannot create database: {exc.read().decode(errors='replace')}") from exc
