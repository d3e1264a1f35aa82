"""``pulse generate``, ``pulse ingest-file``, ``pulse upload``: data into the RAW layer."""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from pulse import pipeline
from pulse.cli.common import add_source, source_arg
from pulse.config import DEMO_SOURCE, settings

if TYPE_CHECKING:
    from pulse.datagen.dirty import DirtParams
    from pulse.datagen.events import GenParams

DEMO_PARAMS = (200_000, 180, "2026-10-31", 42, 0.02)  # events, days (enough for an ML backtest), end date, seed, dirty rate


def register(sub) -> None:
    p = sub.add_parser("generate", help="write the demo event dataset (with dirty data and its ground truth)")
    add_generate_options(p)
    p.set_defaults(fn=run_generate)

    p = sub.add_parser("ingest-file", help="bring your own event file into RAW (a preset layout, or your spec)")
    p.add_argument("path", help="CSV or CSV.gz: Pulse's layout (event_time,event_type,user_id,…), or the layout --spec describes")
    p.add_argument("--source", type=source_arg, required=True, help="source name in the lake, staging and marts (e.g. kaggle)")
    p.add_argument(
        "--ingest-date",
        type=date.fromisoformat,
        help="the ingest date of the whole file (default: its latest event date, so no event lies in the future)",
    )
    p.add_argument(
        "--spec",
        help="a preset (pulse source presets: ecommerce_events, online_retail, …) or your spec's YAML; "
        "the file is kept as it is and the spec is stored with the source for the cleaning job",
    )
    p.add_argument("--map", action="append", metavar="PULSE_COL=FILE_COL", help="without --spec: rename a column (repeatable)")
    p.add_argument("--no-upload", action="store_true", help="only write the local RAW layout")
    p.set_defaults(fn=run_ingest_file)

    p = sub.add_parser("upload", help="upload a local RAW dataset to S3 (idempotent, with manifests)")
    add_source(p)
    p.add_argument("--dataset", type=Path, help="local dataset dir (default $PULSE_HOME/datasets/<source>)")
    p.add_argument(
        "--correction",
        action="store_true",
        help="these ingest dates correct earlier data: their events replace earlier copies of the same event_id",
    )
    p.add_argument(
        "--spec", metavar="PRESET_OR_YAML", help="store this source spec with the files (e.g. open_events for the stream's copy)"
    )
    p.set_defaults(fn=run_upload)


def demo_source(args: argparse.Namespace) -> str:
    """``demo`` for the default demo; another dataset (size, seed, …) gets a source of its own, so
    re-running the demo with other options never collides with committed (immutable) RAW data."""
    params = (args.events, args.days, args.end_date.isoformat(), args.seed, args.dirty_rate)
    if params == DEMO_PARAMS:
        return DEMO_SOURCE
    digest = hashlib.sha1(repr(params).encode()).hexdigest()[:6]
    return f"{DEMO_SOURCE}_{args.events}" + ("" if params[1:] == DEMO_PARAMS[1:] else f"_{digest}")


def add_generate_options(p: argparse.ArgumentParser) -> None:
    events, days, end, seed, dirty = DEMO_PARAMS
    p.add_argument("--events", type=int, default=events, help=f"approximate number of events (default {events})")
    p.add_argument("--days", type=int, default=days, help=f"days of history (default {days})")
    p.add_argument("--end-date", type=date.fromisoformat, default=date.fromisoformat(end), help=f"last day (default {end})")
    p.add_argument("--seed", type=int, default=seed, help=f"random seed: same seed, same bytes (default {seed})")
    p.add_argument("--dirty-rate", type=float, default=dirty, help=f"injected defects per clean event (default {dirty})")
    p.add_argument("--out", help="output directory (default $PULSE_HOME/datasets/<demo source>); never an existing non-Pulse one")


def generation(args: argparse.Namespace) -> tuple[GenParams, DirtParams]:
    from pulse.datagen.dirty import DirtParams
    from pulse.datagen.events import GenParams

    gen = GenParams(n_events=args.events, days=args.days, end_date=args.end_date, seed=args.seed)
    return gen, DirtParams(rate=args.dirty_rate)


def print_generated(truth: dict, out: Path) -> None:
    print(f"{truth['raw_rows']:,} raw rows ({truth['clean_events']:,} clean, {truth['quarantined_total']:,} dirty) in {out}")


def run_generate(args: argparse.Namespace) -> int:
    s = settings()
    out = Path(args.out) if args.out else pipeline.dataset_dir(s, demo_source(args))
    print_generated(pipeline.generate(s, out, *generation(args)), out)
    return 0


def run_ingest_file(args: argparse.Namespace) -> int:
    from pulse.lake.ingest_file import parse_mapping

    s = settings()
    mapping = parse_mapping(args.map or [])
    result = pipeline.ingest_file(
        s, Path(args.path), args.source, args.ingest_date, mapping, upload=not args.no_upload, spec=args.spec
    )
    print(f"{result['rows']:,} lines in {result['parts']} part(s) at {result['dir']} (ingest date {result['ingest_date']})")
    if "upload" in result:
        print(json.dumps(result["upload"]))
    if result.get("spec_changed"):
        print(f"spec {args.spec} stored with source {args.source}: the next `pulse clean` applies it to all its RAW data")
    print(f"next: pulse clean --source {args.source} && pulse model build --source {args.source}")
    return 0


def run_upload(args: argparse.Namespace) -> int:
    s = settings()
    print(json.dumps(pipeline.upload_raw(s, args.source, args.dataset, correction=args.correction, spec=args.spec)))
    return 0
