"""``pulse source``: source specs — the presets, a dry run of a spec on your files, a spec proposed from a sample."""

from __future__ import annotations

import argparse
from pathlib import Path

from pulse import pipeline
from pulse.config import settings


def register(sub) -> None:
    p = sub.add_parser("source", help="source specs: presets, a dry run on your file, a spec proposed from a sample")
    group = p.add_subparsers(dest="source_command", required=True, metavar="SUBCOMMAND")

    q = group.add_parser("presets", help="the shipped presets, one line each")
    q.set_defaults(fn=run_presets)

    q = group.add_parser("show", help="print a preset's YAML (copy it, edit it, pass it with --spec)")
    q.add_argument("preset")
    q.set_defaults(fn=run_show)

    q = group.add_parser(
        "check",
        help="dry run: what the cleaning job would make of your file (nothing is written)",
        description="Apply a spec to the first rows of local files as the cleaning job would: the first events, "
        "each field's empty share, rows left out by filters, what each rule would quarantine, which roles found "
        "events. Exits 1 when the spec is wrong or no row would load.",
    )
    q.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="CSV or CSV.gz files")
    q.add_argument("--spec", required=True, help="a preset name (pulse source presets) or a YAML file")
    q.add_argument("--rows", type=int, default=10_000, help="how many rows to read (default %(default)s; 0: all)")
    q.set_defaults(fn=run_check)

    q = group.add_parser("infer", help="propose a spec from a file's first rows (a preset if the layout is known)")
    q.add_argument("path", type=Path)
    q.set_defaults(fn=run_infer)


def run_presets(args: argparse.Namespace) -> int:
    from pulse.sources import spec

    for name in spec.presets():
        print(f"  {name:<18} {_description(spec.load(name).text)}")
    print("use one: pulse ingest-file FILE --source NAME --spec PRESET   (pulse source show PRESET prints it)")
    return 0


def _description(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("description:"):
            return line.removeprefix("description:").strip()
    return ""


def run_show(args: argparse.Namespace) -> int:
    print(pipeline.load_spec(args.preset).text, end="")
    return 0


def run_check(args: argparse.Namespace) -> int:
    spec = pipeline.load_spec(args.spec)
    report = pipeline.source_check(settings(), spec, args.paths, rows=args.rows or None)
    print(f"spec {spec.name} (version {spec.version}) on {report.rows:,} rows of {', '.join(p.name for p in args.paths)}")
    print(f"  would load {report.clean:,} events", end="")
    print(f" from {report.first_day} to {report.last_day}" if report.first_day else "")
    for name, n in report.filtered.items():
        print(f"  left out by filter {name}: {n:,}")
    for rule, n in report.quarantined.items():
        print(f"  quarantined as {rule}: {n:,}   e.g. {'; '.join(report.examples[rule])[:150]}")
    empty = ", ".join(f"{f} {share:.0%}" for f, share in report.empty.items() if share)
    print(f"  empty fields among loaded events: {empty or 'none'}")
    print("  event types: " + ", ".join(f"{t} {n:,}" for t, n in list(report.event_types.items())[:10]))
    print("  roles: " + ", ".join(f"{role} {n:,}" for role, n in report.roles.items()))
    for row in report.first[:3]:
        print("  e.g. " + ", ".join(f"{k.removeprefix('n_')}={v}" for k, v in row.items() if v not in (None, "{}")))
    for warning in report.warnings():
        print(f"  warning: {warning}")
    return 0 if report.clean else 1


def print_sample(report, path: Path) -> None:
    """A preset on its sample in three lines: what it is, what would load, how to load it."""
    spec = report.spec
    print(f"  {spec.name}: {_description(spec.text)}")
    funnel = " → ".join(spec.roles.funnel) or "none"
    revenue = f"{report.roles.get('revenue', 0):,} revenue events" if spec.roles.revenue else "no revenue"
    print(f"    {path.name}: {report.clean:,} events {report.first_day} to {report.last_day} · funnel {funnel} · {revenue}")
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    print(f"    load it: pulse ingest-file {shown} --source {spec.name} --spec {spec.name}")


def run_infer(args: argparse.Namespace) -> int:
    proposal = pipeline.source_infer(args.path)
    if proposal.preset:
        print(f"# {args.path.name} has the layout of the preset {proposal.preset}: --spec {proposal.preset}")
    print(proposal.spec, end="")
    return 0
