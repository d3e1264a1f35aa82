"""``pulse stream produce|run|reconcile|reset``: the real-time path."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from pulse import pipeline
from pulse.cli.common import source_arg
from pulse.config import settings


def register(sub) -> None:
    p = sub.add_parser("stream", help="produce live events to Kafka, run the streaming job, reconcile it with the batch marts")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    a = actions.add_parser("produce", help="send events at a held rate (with bad messages) and write what was sent")
    a.add_argument("--rate", type=float, default=1_000, help="messages per second (default %(default)s)")
    a.add_argument("--duration", type=float, default=30, help="seconds (default %(default)s)")
    a.add_argument("--users", type=int, default=20_000, help="user population (default %(default)s)")
    a.add_argument("--dirty-rate", type=float, default=0.02, help="share of bad messages (default %(default)s)")
    a.add_argument("--seed", type=int, default=7, help="random seed (default %(default)s)")
    a.add_argument("--bursty", action="store_true", help="5 s at 1.8x the rate, 5 s at 0.2x, repeated")
    a.add_argument("--truth", type=Path, help="write the ground truth (JSON) here")
    a.add_argument("--raw-dir", type=Path, help="also write the well-formed events as RAW partitions here")
    a.set_defaults(fn=run_produce)

    a = actions.add_parser(
        "run", help="the Spark Structured Streaming job in the foreground (`pulse services up stream` runs it in the background)"
    )
    a.add_argument("--timeout", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    a.set_defaults(fn=run_job)

    a = actions.add_parser("reconcile", help="batch marts vs realtime tables for one day; exit 1 on any difference")
    a.add_argument("--date", type=date.fromisoformat, help="the UTC day (default today)")
    a.add_argument("--source", type=source_arg, required=True, help="the batch source that received the same events")
    a.set_defaults(fn=run_reconcile)

    a = actions.add_parser("reset", help="drop the realtime tables and the checkpoint (the job must be stopped)")
    a.set_defaults(fn=run_reset)


def run_produce(args: argparse.Namespace) -> int:
    from pulse.streaming.producer import ProduceParams

    params = ProduceParams(
        rate=args.rate, duration=args.duration, users=args.users, dirty_rate=args.dirty_rate, seed=args.seed,
        bursty=args.bursty, raw_dir=args.raw_dir,
    )  # fmt: skip
    result = pipeline.produce_stream(settings(), params, args.truth)
    truth = result.truth
    print(
        f"sent {result.sent:,} messages in {result.seconds}s ({result.achieved_rate:,}/s): {truth['events']:,} events "
        f"({truth['late_accepted']:,} late but accepted), bad by rule {truth['bad']}, "
        f"delivery errors {truth['delivery_errors']}" + (f"; ground truth: {result.truth_path}" if result.truth_path else "")
    )
    return 1 if truth["delivery_errors"] else 0


def run_job(args: argparse.Namespace) -> int:
    pipeline.run_stream(settings(), timeout=args.timeout)
    return 0


def run_reconcile(args: argparse.Namespace) -> int:
    result = pipeline.reconcile_stream(settings(), args.date or date.today(), args.source)
    print(result.report())
    return 0 if result.ok else 1


def run_reset(args: argparse.Namespace) -> int:
    s = settings()
    checkpoint = pipeline.reset_stream(s)
    print(f"dropped {s.clickhouse.realtime_database} and the checkpoint {checkpoint}")
    return 0
