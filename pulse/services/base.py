"""What every Pulse service has: a data dir, a log, a pid file, a port and a health check.

A service is either *managed* (Pulse starts it as a local process under PULSE_HOME)
or *external* (configured endpoint; Pulse only checks it is reachable). Later stages
add ClickHouse, a Kafka broker, Superset and Airflow by subclassing ``ManagedProcess``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from pulse.common.files import private_dir
from pulse.config import Settings


class ServiceError(RuntimeError):
    pass


@dataclass
class ServiceStatus:
    name: str
    managed: bool
    up: bool
    endpoint: str
    pid: int | None
    log: Path | None
    detail: str = ""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


class Service(ABC):
    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    @abstractmethod
    def managed(self) -> bool: ...

    @property
    @abstractmethod
    def endpoint(self) -> str: ...

    @abstractmethod
    def healthy(self) -> tuple[bool, str]:
        """(is it serving, a short detail line)."""

    def start(self) -> None:  # external services are not ours to start
        pass

    def notice(self) -> str | None:
        """Something the person who started the service must see once (e.g. a generated admin password)."""
        return None

    def stop(self) -> str:
        return "nothing to stop"

    @property
    def log_path(self) -> Path | None:
        return None

    def pid(self) -> int | None:
        return None

    def status(self) -> ServiceStatus:
        up, detail = self.healthy()
        return ServiceStatus(self.name, self.managed, up, self.endpoint, self.pid(), self.log_path, detail)


class ManagedProcess(Service):
    """A service Pulse runs itself: one process, its pid file, its log, its data dir."""

    start_timeout: float = 60.0

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def log_path(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    @property
    @abstractmethod
    def port(self) -> int | None:
        """The port the service answers on (checked for conflicts before starting); None for a worker."""

    @abstractmethod
    def command(self) -> list[str]: ...

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def popen_kwargs(self) -> dict:
        """Extra subprocess arguments (e.g. the OS user to run as)."""
        return {}

    def prepare(self) -> None:
        """One-time initialisation of the data dir (idempotent)."""

    def after_start(self) -> None:
        """Work that needs the running service (idempotent), e.g. creating roles."""

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def start(self) -> None:
        if not self.managed:
            return
        private_dir(self.settings.home, 0o711)  # PostgreSQL's OS user passes through to its data dir
        private_dir(self.settings.data_dir, 0o711)
        private_dir(self.settings.run_dir, 0o711)
        private_dir(self.settings.logs_dir, 0o700)
        self.data_dir.mkdir(exist_ok=True)  # each service sets its own data dir's owner and mode
        if self.pid() is None:
            if self.port is not None and port_open("127.0.0.1", self.port):
                raise ServiceError(
                    f"{self.name}: port {self.port} is taken by a process Pulse did not start from {self.settings.home} "
                    f"(another PULSE_HOME?); stop it or choose another port in the configuration"
                )
            self.prepare()
            self.spawn()
        self.wait_healthy()
        self.after_start()

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                env=self.environment(),
                start_new_session=True,  # survives the CLI that started it
                **self.popen_kwargs(),
            )
        self.pid_path.write_text(str(proc.pid))

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        detail = ""
        while time.monotonic() < deadline:
            up, detail = self.healthy()
            if up:
                return
            if self.pid() is None:
                raise ServiceError(f"{self.name} exited during start-up; see {self.log_path}:\n{tail(self.log_path)}")
            time.sleep(0.3)
        raise ServiceError(f"{self.name} not healthy after {self.start_timeout:.0f}s ({detail}); see {self.log_path}")

    stop_timeout: float = 30.0

    def stop(self) -> str:
        """SIGTERM, then SIGKILL after ``stop_timeout``; says which it took."""
        pid = self.pid()
        if pid is None:
            return "not running"
        t0 = time.monotonic()
        os.killpg(pid, signal.SIGTERM) if _is_group_leader(pid) else os.kill(pid, signal.SIGTERM)
        while pid_alive(pid) and time.monotonic() < t0 + self.stop_timeout:
            time.sleep(0.2)
        how = f"stopped in {time.monotonic() - t0:.1f}s"
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            how = f"killed: still running {self.stop_timeout:.0f}s after SIGTERM (see {self.log_path})"
        self.pid_path.unlink(missing_ok=True)
        return how


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


# the line that says why a process died: Go's glog fatal (F1202 …] msg) or panic, a JVM or Python error
_FATAL = re.compile(r"^(F\d{4} |panic: |FATAL|ERROR|Exception|Error|\w+(Error|Exception)\b)")


def tail(path: Path, lines: int = 15) -> str:
    """The log's last lines, after its last fatal line when that is further up (a Go fatal error is followed
    by a goroutine dump longer than the tail); the search stays near the end, in this start's lines."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    last = text[-lines:]
    fatal = next((line for line in reversed(text[-400:-lines]) if _FATAL.match(line)), None)
    return "\n".join(([fatal, "…"] if fatal else []) + last)
