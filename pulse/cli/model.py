"""``pulse model build|run|test|docs|freshness``: dbt over a source's marts."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import TYPE_CHECKING

from pulse import pipeline
from pulse.cli.common import add_source
from pulse.config import Settings, settings

if TYPE_CHECKING:
    from pulse.modeling.publish import BuildResult

DBT_ARGS = {
    "build": ["build"],
    "run": ["run"],
    "test": ["test"],
    "docs": ["docs", "generate"],
    "freshness": ["source", "freshness"],
}


def register(sub) -> None:
    p = sub.add_parser("model", help="dbt: build the ClickHouse marts from Postgres staging, test, document")
    p.add_argument(
        "action",
        choices=list(DBT_ARGS),
        help="build = run models and their tests in order, publish the marts if all passed; docs = dbt docs generate",
    )
    add_source(p, help="which source the marts describe (default %(default)s)")
    p.add_argument("--full-refresh", action="store_true", help="rebuild incremental models from scratch")
    p.add_argument("--select", nargs="+", help="dbt node selection, e.g. marts.user_retention+ (never published)")
    p.add_argument("--verbose", action="store_true", help="stream dbt's own lines too (they are always in the dbt log)")
    p.set_defaults(fn=run_model)


def print_build(s: Settings, result: BuildResult) -> int:
    """One summary line for a published build; each failure in full, with the query that shows its rows,
    otherwise. Returns the exit code."""
    log = s.dbt_log
    if result.ok:
        print(f"dbt build: {result.summary}; published {len(result.published)} marts to {result.marts_database} (log: {log})")
        return 0
    kept = f"nothing published, {result.marts_database} keeps the previous marts"
    print(f"pulse model build: {result.summary}; {kept}.", file=sys.stderr)
    for f in result.failures:
        print(f"\n  {f.status.upper()}: {f.node}\n    {f.message}", file=sys.stderr)
        if f.query:
            print(f"    its rows (in {result.build_database}):\n" + textwrap.indent(f.query, "      "), file=sys.stderr)
    print(f"\n  full log: {log}; fix the data or the model, and build again.", file=sys.stderr)
    return result.exit_code or 1


def run_model(args: argparse.Namespace) -> int:
    s = settings()
    if args.action == "build" and not args.select:
        return print_build(s, pipeline.model(s, args.source, full_refresh=args.full_refresh, verbose=args.verbose))
    dbt_args = list(DBT_ARGS[args.action])
    if args.full_refresh and args.action in ("build", "run"):
        dbt_args.append("--full-refresh")
    if args.select:
        dbt_args += ["--select", *args.select]
    code = pipeline.dbt(s, args.source, dbt_args)
    if code:
        print(f"pulse model {args.action}: dbt failed (exit {code}); log in {s.dbt_log}", file=sys.stderr)
    elif args.action in ("build", "run"):
        where = s.clickhouse.build_database(args.source)
        print(f"built in {where} (a selection is not published; a full `pulse model build` publishes)")
    return code
