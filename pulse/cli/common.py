"""What the command modules share: argument types and the lines that point at a service's login."""

from __future__ import annotations

import argparse

from pulse.config import DEMO_SOURCE, Settings
from pulse.domain import source_name


def source_arg(value: str) -> str:
    """argparse type: a source name is checked where it enters (it names S3 prefixes, partitions, databases)."""
    try:
        return source_name(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_source(p: argparse.ArgumentParser, help: str = "the source (default %(default)s)", **kw) -> None:
    p.add_argument("--source", type=source_arg, default=kw.pop("default", DEMO_SOURCE), help=help, **kw)


def login_hint(s: Settings, service: str, user: str, managed: bool) -> str:
    where = f"password in {s.secrets_dir / f'{service}_admin_password'}" if managed else "password from your configuration"
    return f"  log in as '{user}' ({where})"
