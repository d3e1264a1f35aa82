"""The services Pulse knows, in start order. Later stages append theirs here."""

from __future__ import annotations

from pulse.config import Settings, missing_secrets
from pulse.services.airflow import AIRFLOW_SERVICES
from pulse.services.base import ManagedProcess, Service, ServiceStatus
from pulse.services.clickhouse import ClickHouse
from pulse.services.kafka import Kafka
from pulse.services.objectstore import ObjectStore
from pulse.services.postgres import Postgres
from pulse.services.spark import Spark
from pulse.services.stream import StreamJob
from pulse.services.superset import Superset

SERVICE_TYPES: list[type[Service]] = [ObjectStore, Postgres, Spark, ClickHouse, Superset, Kafka, StreamJob, *AIRFLOW_SERVICES]


def all_services(settings: Settings) -> list[Service]:
    return [cls(settings) for cls in SERVICE_TYPES]


def pick(settings: Settings, names: list[str] | None) -> list[Service]:
    services = all_services(settings)
    if not names:
        return services

    def chosen(svc: Service) -> bool:  # a name also picks its components: "airflow" is airflow + airflow-*
        return any(svc.name == n or svc.name.startswith(n + "-") for n in names)

    unknown = [n for n in names if not any(s.name == n for s in services)]
    if unknown:
        raise SystemExit(f"unknown service(s): {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in services)}")
    return [s for s in services if chosen(s)]


class MissingSecrets(RuntimeError):
    pass


def up(settings: Settings, names: list[str] | None = None, echo=print) -> None:
    """Starts the named services (all by default) in order. The installation's secrets must exist
    (``pulse.config.ensure_secrets()`` before these settings were loaded)."""
    if missing := missing_secrets(settings):
        raise MissingSecrets(f"no secrets for {', '.join(missing)}: load the settings after pulse.config.ensure_secrets()")
    for svc in pick(settings, names):
        where = "local" if svc.managed else "external"
        echo(f"  starting {svc.name} ({where}) …")
        svc.start()
        echo(f"  {svc.name}: up at {svc.endpoint}")
        if note := svc.notice():
            echo(f"  {svc.name}: {note}")


def down(settings: Settings, names: list[str] | None = None, echo=print) -> list[str]:
    """Stop the local services that run as processes; returns the names of those still running."""
    still_up = []
    for svc in reversed(pick(settings, names)):
        if svc.managed and isinstance(svc, ManagedProcess):
            how = svc.stop()
            up = svc.pid() is not None
            echo(f"  {svc.name}: {'STILL RUNNING' if up else how}")
            if up:
                still_up.append(svc.name)
        elif svc.managed:
            echo(f"  {svc.name}: nothing to stop (runs inside each job's process)")
    return still_up


def statuses(settings: Settings) -> list[ServiceStatus]:
    return [svc.status() for svc in all_services(settings)]
