"""``pulse clean``, ``pulse dq``, ``pulse recover``, ``pulse migrate``, ``pulse upgrade``: the cleaning job and its audit."""

from __future__ import annotations

import argparse
from pathlib import Path

from pulse import pipeline
from pulse.cli.common import add_source, source_arg
from pulse.config import Settings, settings


def register(sub) -> None:
    p = sub.add_parser(
        "clean",
        help="run the Spark cleaning job: RAW in S3 -> Postgres staging (the files no earlier load took)",
        description="Loads the RAW files of the source that no load since its last full refresh took, dedups them "
        "against what staging holds and recomputes only the days and keys they touch. A correction, a partition dated "
        "before loaded ones, a changed RAW file, a changed spec or changed cleaning rules make it a full refresh "
        "(it says why).",
    )
    add_source(p)
    p.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the source from all its RAW files (a rule or spec change)",
    )
    p.add_argument("--force", action="store_true", help="accept a full refresh that shrinks the source sharply")
    p.set_defaults(fn=run_clean)

    p = sub.add_parser("recover", help="mark cleaning runs whose process died as failed and drop their debris")
    p.add_argument("--source", type=source_arg, help="only this source (default: every source with a run left 'running')")
    p.set_defaults(fn=run_recover)

    p = sub.add_parser("dq", help="data-quality summary of the last load of a source")
    add_source(p)
    p.set_defaults(fn=run_dq)

    sub.add_parser("migrate", help="apply pending staging SQL migrations").set_defaults(fn=run_migrate)
    sub.add_parser(
        "upgrade", help="after installing a new release: apply its migrations, rebuild every source's marts in full"
    ).set_defaults(fn=run_upgrade)


def print_quality(s: Settings, source: str, dataset: Path | None = None) -> int:
    """The last load's data-quality summary; 0 when it succeeded."""
    dq = pipeline.data_quality(s, source, dataset)
    if dq is None:
        print(f"no load runs for source={source}; run `pulse clean --source {source}`")
        return 1
    print(dq.report())
    return 0 if dq.ok else 1


def run_clean(args: argparse.Namespace) -> int:
    s = settings()
    pipeline.clean(s, args.source, force=args.force, full_refresh=args.full_refresh)
    return print_quality(s, args.source)


def run_dq(args: argparse.Namespace) -> int:
    return print_quality(settings(), args.source)


def run_recover(args: argparse.Namespace) -> int:
    done = pipeline.recover(settings(), args.source)
    for source, dead in done.items():
        if dead is None:
            print(f"source={source}: a run is in progress (alive); nothing to recover")
        else:
            print(f"source={source}: " + (f"marked failed and cleaned up: {', '.join(dead)}" if dead else "no dead runs"))
    if not done:
        print("no runs left 'running': nothing to recover")
    return 0


def run_upgrade(args: argparse.Namespace) -> int:
    result = pipeline.upgrade(settings())
    failed = [source for source, ok in result.rebuilt.items() if not ok]
    for source in failed:
        print(f"source {source}: the rebuild failed a test; the previous marts still serve")
        print(f"  details: pulse model build --source {source} --full-refresh")
    print(f"upgraded: {len(result.migrations)} migration(s), {len(result.rebuilt) - len(failed)} source(s) rebuilt")
    return 1 if failed else 0


def run_migrate(args: argparse.Namespace) -> int:
    applied = pipeline.migrate(settings())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0
