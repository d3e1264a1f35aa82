"""BI benchmark: the main dashboard in a real browser, and every chart's chart-data API call.

Needs published marts for the source (bench/bench_models.py or `pulse model build --source S`):

    .venv/bin/python bench/bench_bi.py --source bench1000000 --source bench10000000 [--repeats 7]

Per source it deploys the dashboards on that source's marts, then measures
  * per tab of the main dashboard, in Debian's chromium, until every chart of the tab is drawn (the
    first tab from opening the dashboard, the others from the click on the tab): cold (Superset's data
    cache emptied before each round, fresh browser) and warm (cache filled, same browser), p50/p95;
  * chart-data API per chart: cached (what a dashboard load asks for) and forced (runs the SQL),
    against the baseline of the same SQL sent straight to ClickHouse, p50/p95 and the ratio;
  * RSS of Superset (all gunicorn processes) and of the ClickHouse service;
  * with ``--compare-datasets-cache``: first the warm tabs and the dashboard's datasets call with Superset
    restarted without Pulse's datasets cache (the baseline, same run), then again with it.
Goal on this 2-core machine: each tab fully drawn <= 3 s p95 warm at 10M events.
At the end the dashboards are deployed back onto the demo source.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import write_results

from pulse import pipeline
from pulse.bi import assets
from pulse.bi.client import SupersetClient
from pulse.common.clickhouse import client as ch_client
from pulse.common.progress import tree_rss_mb
from pulse.config import DEMO_SOURCE, REPO_ROOT, ensure_secrets, load_settings, settings
from pulse.services import registry
from pulse.services.clickhouse import ClickHouse
from pulse.services.superset import Superset


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def browser(s, repeats: int, slug: str = "product-analytics") -> dict:
    env = {
        **os.environ,
        "SUPERSET_URL": s.superset.base_url,
        "SUPERSET_USER": s.superset.admin_user,
        "SUPERSET_PASSWORD": s.superset.admin_password,
        "DASHBOARDS": slug,
        "REPEATS": str(repeats),
        "OUT_DIR": str(REPO_ROOT / "bench" / "results"),
    }
    done = subprocess.run(
        ["node", "dashboards.mjs"], cwd=REPO_ROOT / "tests" / "browser", env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    report = json.loads(done.stdout)["dashboards"][slug]
    if report["errors"] or report["failed_requests"]:
        raise RuntimeError(f"dashboard errors: {report['errors'] or report['failed_requests']}")
    return report


def clear_data_cache(s) -> None:
    cache = Superset(s).data_dir / "cache" / "data"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)


def datasets_call_ms(s, slug: str = "product-analytics", n: int = 20) -> dict:
    """The dashboard's first request, which every chart waits for, alone (no browser beside it)."""
    client = SupersetClient(s.superset)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.get(f"/api/v1/dashboard/{slug}/datasets")
        times.append((time.perf_counter() - t) * 1000)
    return {"p50": round(pct(times, 0.5), 1), "p95": round(pct(times, 0.95), 1)}


def warm_tabs(s, repeats: int) -> dict:
    report = browser(s, repeats + 1)
    return {tab["title"]: {"p50": pct(tab["all_drawn_ms"][1:], 0.5), "p95": pct(tab["all_drawn_ms"][1:], 0.95)}
            for tab in report["tabs"]}  # fmt: skip


def restart_superset(cache: bool) -> None:
    os.environ["PULSE_SUPERSET_DATASETS_CACHE"] = "true" if cache else "false"
    s = load_settings()
    registry.down(s, ["superset"], echo=lambda _m: None)
    registry.up(s, ["superset"], echo=lambda _m: None)


def compare_datasets_cache(s, repeats: int) -> dict:
    """Warm tabs and the datasets call without the cache, then with it: the same marts, the same run."""
    out = {}
    try:
        for cache in (False, True):
            restart_superset(cache)
            warm_tabs(s, 1)  # the first loads after a restart fill the chart cache and the workers' imports
            out["on" if cache else "off"] = {"datasets_call_ms": datasets_call_ms(s), "warm_tabs_ms": warm_tabs(s, repeats)}
    finally:
        os.environ.pop("PULSE_SUPERSET_DATASETS_CACHE", None)
    print("  the dashboard's datasets call and the tabs, warm, without / with the datasets cache:")
    off, on = out["off"], out["on"]
    print(f"    datasets call alone p50 {off['datasets_call_ms']['p50']:.0f} / {on['datasets_call_ms']['p50']:.0f} ms")
    for tab, t in off["warm_tabs_ms"].items():
        w = on["warm_tabs_ms"][tab]
        print(f"    {tab:<22} warm p50 {t['p50'] / 1000:.2f} / {w['p50'] / 1000:.2f} s, p95 {t['p95'] / 1000:.2f} / "
              f"{w['p95'] / 1000:.2f} s")  # fmt: skip
    return out


def bench(source: str, repeats: int, compare: bool = False) -> dict:
    s = settings()
    print(f"\n== source {source} ==")
    database = s.clickhouse.marts_database(source)
    ch = ch_client(s.clickhouse, database=database)
    [(events,)] = ch.query("SELECT sum(active_users) FROM segments_daily").result_rows
    t0 = time.perf_counter()
    deployed = pipeline.deploy_bi(s, source, warm=False)
    print(f"  deploy (memo + import): {time.perf_counter() - t0:.1f} s; {len(deployed.charts)} charts")
    res: dict = {"source": source, "user_days": int(events)}
    if compare:
        res["datasets_cache"] = compare_datasets_cache(s, repeats)

    keys = {"data_ms": "data in", "render_ms": "first screen drawn", "all_drawn_ms": "fully drawn"}
    cold: dict[str, dict[str, list[float]]] = {}
    for _ in range(max(3, repeats // 2)):
        clear_data_cache(s)
        for tab in browser(s, 1)["tabs"]:
            for key in keys:
                cold.setdefault(tab["title"], {k: [] for k in keys})[key] += tab[key]
    warm_report = browser(s, repeats + 1)  # each tab's first visit fills the cache and the browser's
    warm = {tab["title"]: {k: tab[k][1:] for k in keys} for tab in warm_report["tabs"]}
    res["charts_on_dashboard"] = warm_report["charts"]
    res["tabs"] = {}
    print(f"  main dashboard ({warm_report['charts']} charts in {len(warm)} tabs) in chromium, seconds from opening the")
    print("  dashboard (first tab) or clicking the tab (the others) to every chart of the tab drawn:")
    print(f"    {'tab':<22}{'charts':>7}  {'cold p50':>9}{'p95':>7}  {'warm p50':>9}{'p95':>7}  data-in warm p95")
    for tab in warm_report["tabs"]:
        c, w = cold[tab["title"]], warm[tab["title"]]
        row = {
            f"{kind}_{k}": {"p50": pct(v[k], 0.5), "p95": pct(v[k], 0.95), "n": len(v[k])}
            for kind, v in (("cold", c), ("warm", w))
            for k in keys
        }
        res["tabs"][tab["title"]] = row | {"charts": tab["charts"]}
        drawn = [pct(v["all_drawn_ms"], q) / 1000 for v in (c, w) for q in (0.5, 0.95)]
        print(
            f"    {tab['title']:<22}{tab['charts']:>7}  {drawn[0]:9.2f}{drawn[1]:7.2f}  {drawn[2]:9.2f}{drawn[3]:7.2f}"
            f"  {pct(w['data_ms'], 0.95) / 1000:.2f}"
        )
    worst = max(r["warm_all_drawn_ms"]["p95"] for r in res["tabs"].values())
    res["worst_tab_warm_p95_ms"] = worst
    print(f"    slowest tab fully drawn, warm p95: {worst / 1000:.2f} s (goal <= 3 s at 10M events; the browser shares 2 cores)")

    client = SupersetClient(s.superset)
    bundle = assets.load()
    per_chart = {}
    print(f"  {'chart':<22}{'cached p50':>11}{'p95':>8}{'forced p50':>12}{'p95':>8}{'direct CH p50':>15}{'forced/direct':>15}")
    for path, obj in bundle.items():
        if not path.startswith("charts/"):
            continue
        chart_id = deployed.charts[obj["uuid"]]
        queries = client.get(f"/api/v1/chart/{chart_id}/data/", format="json", type="query")["result"]
        sqls = [q["query"] for q in queries]
        timings: dict[str, list[float]] = {"cached": [], "forced": [], "direct": []}
        for _ in range(repeats):
            for kind, call in (
                ("forced", lambda cid=chart_id: client.chart_data(cid, force=True)),
                ("cached", lambda cid=chart_id: client.chart_data(cid)),
                ("direct", lambda qs=sqls: [ch.query(q) for q in qs]),
            ):
                t = time.perf_counter()
                try:
                    call()
                except Exception as exc:  # e.g. a virtual dataset's inner SQL names its table unqualified
                    print(f"  {Path(path).stem}: {kind} failed ({str(exc)[:120]}); left out")
                    timings[kind].append(float("nan"))
                    continue
                timings[kind].append((time.perf_counter() - t) * 1000)
        row = {k: {"p50": round(pct(v, 0.5), 1), "p95": round(pct(v, 0.95), 1)} for k, v in timings.items()}
        row["forced_over_direct"] = round(row["forced"]["p50"] / max(row["direct"]["p50"], 0.01), 1)
        per_chart[Path(path).stem] = row
        print(
            f"  {Path(path).stem:<22}{row['cached']['p50']:>9.0f}ms{row['cached']['p95']:>6.0f}ms"
            f"{row['forced']['p50']:>10.0f}ms{row['forced']['p95']:>6.0f}ms{row['direct']['p50']:>13.1f}ms"
            f"{row['forced_over_direct']:>14.1f}x"
        )
    res["charts_ms"] = per_chart
    for name, svc in (("superset", Superset(s)), ("clickhouse", ClickHouse(s))):
        pid = svc.pid()
        res[f"{name}_rss_mb"] = round(tree_rss_mb(pid)) if pid else 0
    print(f"  RSS: Superset {res['superset_rss_mb']:,} MiB (gunicorn, all workers), ClickHouse {res['clickhouse_rss_mb']:,} MiB")
    res["chart_api_cached_p50_ms"] = statistics.median(r["cached"]["p50"] for r in per_chart.values())
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", help="source with published marts (repeatable)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compare-datasets-cache", action="store_true", help="first measure without Pulse's datasets cache")
    args = parser.parse_args()
    s = settings()
    registry.up(s, ["s3", "postgres", "clickhouse", "superset"], echo=lambda _m: None)
    try:
        sources = args.source or ["bench1000000"]
        write_results("bi", [bench(source, args.repeats, args.compare_datasets_cache) for source in sources])
    finally:  # the dashboards back on the demo's marts, where this installation has them
        tables = "SELECT count() FROM system.tables WHERE database = {db:String}"
        demo = {"db": s.clickhouse.marts_database(DEMO_SOURCE)}
        [(demo_tables,)] = ch_client(s.clickhouse).query(tables, parameters=demo).result_rows
        if demo_tables:
            pipeline.deploy_bi(s, DEMO_SOURCE, warm=True)


if __name__ == "__main__":
    ensure_secrets()  # the installation's credentials, before any settings load
    main()
