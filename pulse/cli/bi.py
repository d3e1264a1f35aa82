"""``pulse bi deploy|export``, ``pulse report memo``: dashboards as code and the analytical memo."""

from __future__ import annotations

import argparse

from pulse import pipeline
from pulse.cli.common import add_source, login_hint
from pulse.config import Settings, settings


def register(sub) -> None:
    p = sub.add_parser("bi", help="deploy the Superset dashboards (with the memo) or export them back to superset/")
    p.add_argument(
        "action",
        choices=["deploy", "export"],
        help="deploy = import superset/ (only if something differs) and refresh every chart's cache; "
        "export = write the live assets back into superset/ in normalised form",
    )
    add_source(p, help="whose marts the dashboards show (default %(default)s)")
    p.add_argument("--no-warm", action="store_true", help="skip refreshing the charts' cached data")
    p.set_defaults(fn=run_bi)

    p = sub.add_parser("report", help="the analytical memo (3 insights, 2 hypotheses) computed from the marts")
    p.add_argument("what", choices=["memo"])
    add_source(p)
    p.add_argument("--sql", action=argparse.BooleanOptionalAction, default=True, help="print each finding's query")
    p.set_defaults(fn=run_report)


def print_deploy(s: Settings, result) -> None:
    what = f"updated {len(result.changed)} asset(s)" if result.changed else "assets unchanged"
    print(f"  {what}; {result.warmed} chart(s) refreshed into the cache in {result.seconds:.1f}s")
    for name, error in result.failed.items():
        print(f"  !! chart '{name}' failed: {error}")
    for title, url in result.dashboards.items():
        print(f"  {title}: {url}")
    print(login_hint(s, "superset", s.superset.admin_user, s.superset.managed))
    if result.memo_path:
        print(f"  memo: {result.memo_path} (and {result.memo_path.with_suffix('.html')})")


def run_bi(args: argparse.Namespace) -> int:
    s = settings()
    if args.action == "export":
        from pulse.bi.assets import ASSETS_DIR

        changed = pipeline.export_bi(s)
        print(f"exported {len(changed)} changed asset(s) into {ASSETS_DIR}" + "".join(f"\n  {p}" for p in changed))
        return 0
    print(f"[bi] memo and dashboards for source {args.source} -> {s.superset.base_url}")
    print_deploy(s, pipeline.deploy_bi(s, args.source, warm=not args.no_warm))
    return 0


def run_report(args: argparse.Namespace) -> int:
    memo, md_path, html_path = pipeline.memo(settings(), args.source)
    print(memo.markdown(with_sql=args.sql))
    print(f"\nwritten: {md_path}, {html_path}")
    return 0
