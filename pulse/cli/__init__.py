"""``pulse``: run the platform's services and pipeline steps from one command line.

One module per command group; each registers its parsers and, when run, calls one ``pulse.pipeline`` step
and prints what it returns."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

from pulse.cli import airflow, bi, cleaning, data, demo, ml, model, notebooks, services, source, stream
from pulse.cli.data import demo_source
from pulse.config import Settings, settings

GROUPS = [demo, services, source, data, cleaning, model, ml, notebooks, bi, stream, airflow]  # the order of `pulse --help`

__all__ = ["build_parser", "demo_source", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pulse",
        description="Pulse product-analytics platform. Configuration: PULSE_* environment variables or pulse.toml "
        "(docs/configuration.md). Local services live under $PULSE_HOME (default ./.pulse).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def _log_to_file(s: Settings) -> None:
    """Send Pulse's loggers (librdkafka's own lines among them, e.g. retrying while a broker starts) to
    ``$PULSE_HOME/logs/pulse.log``: without a handler Python prints warnings between the progress lines."""
    log = logging.getLogger("pulse")
    if log.handlers:
        return
    s.logs_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(s.logs_dir / "pulse.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # the `pulse` command itself; a test calling main() keeps pytest's log capture
        with contextlib.suppress(Exception):  # a configuration error is the command's to report
            _log_to_file(settings())
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for the user; the trace with PULSE_DEBUG=1
        if os.environ.get("PULSE_DEBUG"):
            raise
        print(f"pulse {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
