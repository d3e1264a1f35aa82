"""``pulse services up|down|status``, ``pulse status``, ``pulse doctor``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pulse import pipeline
from pulse.config import Settings, settings, settings_with_secrets

if TYPE_CHECKING:
    from pulse.services.base import ServiceStatus


def register(sub) -> None:
    p = sub.add_parser("services", help="start/stop/inspect the local services")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument(
        "names",
        nargs="*",
        help="services (default all): s3, postgres, spark, clickhouse, superset, kafka, stream, airflow "
        "(its api-server, scheduler, dag-processor and triggerer; or one of them, e.g. airflow-scheduler)",
    )
    p.set_defaults(fn=run_services)
    sub.add_parser("status", help="which service is up, on which endpoint, where its log is").set_defaults(fn=run_status)
    sub.add_parser("doctor", help="status plus prerequisite checks with fixes").set_defaults(fn=run_doctor)


def run_services(args: argparse.Namespace) -> int:
    # starting services is the step that makes the installation's secrets, before the settings load
    s = settings_with_secrets() if args.action == "up" else settings()
    if args.action == "down":  # success = everything asked for has stopped; status would call that "DOWN"
        return 1 if pipeline.stop_services(s, args.names) else 0
    if args.action == "status":
        return run_status(args)
    asked, rows = pipeline.start_services(s, args.names)
    # success = everything asked to start (all when no names) is up; the table also shows the others
    return 0 if all(st.up for st in print_status(s, rows) if st.name in asked) else 1


def run_status(args: argparse.Namespace) -> int:
    s = settings()
    return 0 if all(st.up for st in print_status(s, pipeline.service_statuses(s))) else 1


def print_status(s: Settings, rows: list[ServiceStatus]) -> list[ServiceStatus]:
    """Prints every service's state, endpoint and log; returns the statuses."""
    print(f"PULSE_HOME={s.home}")
    print(f"{'service':<22}{'mode':<10}{'state':<7}{'pid':<9}{'endpoint':<45}detail / log")
    for st in rows:
        mode = "local" if st.managed else "external"
        state = "up" if st.up else "DOWN"
        print(f"{st.name:<22}{mode:<10}{state:<7}{st.pid or '-'!s:<9}{st.endpoint:<45}{st.detail}")
        if st.log:
            print(f"{'':<48}log: {st.log}")
    return rows


def run_doctor(args: argparse.Namespace) -> int:
    """Service status plus the prerequisites a fresh machine may lack, each with its fix."""
    s = settings()
    checks = pipeline.prerequisites(s)
    print("Prerequisites")
    for c in checks:
        print(f"  [{'ok' if c.ok else '!!'}] {c.name:<32} {c.detail}")
    print()
    status_ok = all(st.up for st in print_status(s, pipeline.service_statuses(s)))
    if not status_ok:
        print("\nsome services are down: `pulse services up` starts the local ones; logs are listed above")
    return 0 if status_ok and all(c.ok for c in checks if c.required) else 1
