"""PostgreSQL: Debian's server binaries, a project-owned cluster (own data dir and port).

PostgreSQL refuses to run as root, so when Pulse runs as root the server runs as the
``postgres`` OS user. Host connections use SCRAM passwords; there is no unix socket.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg

from pulse.common import pg
from pulse.common.files import write_private
from pulse.services.base import ManagedProcess, ServiceError, port_open


def pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise FileNotFoundError("PostgreSQL server not found: apt-get install postgresql")
    return Path(candidates[-1]).parent


def _run_as() -> dict:
    """subprocess kwargs that drop root to the postgres user."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


class Postgres(ManagedProcess):
    name = "postgres"

    @property
    def managed(self) -> bool:
        return self.settings.postgres.managed

    @property
    def port(self) -> int:
        return self.settings.postgres.port

    @property
    def endpoint(self) -> str:
        cfg = self.settings.postgres
        return f"postgresql://{cfg.user}@{cfg.address}:{cfg.port}/{cfg.database}"

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            ent = pwd.getpwnam("postgres")
            shutil.chown(path, ent.pw_uid, ent.pw_gid)

    def prepare(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.chmod(0o700)
        self._chown(self.data_dir)
        pwfile = self.settings.run_dir / "pg-initdb.pw"
        write_private(pwfile, self.settings.postgres.admin_password)
        self._chown(pwfile)
        try:
            subprocess.run(
                [
                    str(pg_bindir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.settings.postgres.admin_user,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ],
                check=True,
                capture_output=True,
                text=True,
                **_run_as(),
            )
        except subprocess.CalledProcessError as exc:
            raise ServiceError(f"initdb failed: {exc.stderr}") from exc
        finally:
            pwfile.unlink(missing_ok=True)

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "shared_buffers": "512MB",
            "work_mem": "64MB",
            "maintenance_work_mem": "512MB",
            "max_wal_size": "4GB",
            "checkpoint_timeout": "15min",
            "max_connections": "100",
            "timezone": "UTC",
        }
        cmd = [str(pg_bindir() / "postgres"), "-D", str(self.data_dir), "-p", str(self.settings.postgres.port)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def popen_kwargs(self) -> dict:
        return _run_as()

    def healthy(self) -> tuple[bool, str]:
        cfg = self.settings.postgres
        if not port_open(cfg.address, cfg.port):
            return False, "port closed"
        try:
            with pg.connect(cfg) as conn:
                version = conn.execute("show server_version").fetchone()[0]  # type: ignore[index]
            return True, f"PostgreSQL {version}"
        except psycopg.OperationalError as exc:
            msg = str(exc).strip().splitlines()[-1]
            # the server answered: it is up, the app role just is not there yet (first start)
            answered = "authentication failed" in msg or "does not exist" in msg
            return answered, msg[:120]

    def after_start(self) -> None:
        cfg = self.settings.postgres
        pg.ensure_login_database(cfg, cfg.user, cfg.password, cfg.database, sync_password=False)
