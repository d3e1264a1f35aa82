"""Dashboards as code: the YAML bundle in ``superset/`` (Superset's own export format) deployed and exported.

The repo holds instance-free assets: stable UUIDs, chart ids 0, the local default ClickHouse URI with a
masked password, the demo source's marts database. ``render`` fills in what depends on the target
(ClickHouse address and BI user from Pulse's config, the source's marts database, the memo);
``normalise`` takes a live export back to the repo's form, so deploy can tell "nothing changed" and
``pulse bi export`` writes diffs that show only real edits.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from pulse.bi.client import SupersetClient, SupersetError
from pulse.config import DEMO_SOURCE, REPO_ROOT, Settings
from pulse.sources.spec import Roles

ASSETS_DIR = REPO_ROOT / "superset"
DATABASE_FILE = "databases/Pulse_ClickHouse.yaml"
MEMO_MARKDOWN_ID = "MARKDOWN-memo"
MEMO_PLACEHOLDER = "The memo appears here after `pulse bi deploy`."
# what the repo's YAML holds where the target decides (the local default, demo source)
REPO_URI = "clickhousedb://pulse_bi:XXXXXXXXXX@127.0.0.1:18123/pulse_demo"
REPO_SCHEMA = "pulse_demo"
REPO_REALTIME_SCHEMA = "pulse_realtime"  # the streaming stage's tables: one database, whatever the source

Bundle = dict[str, dict[str, Any]]  # relative path -> parsed YAML


def load(directory: Path = ASSETS_DIR) -> Bundle:
    return {
        str(p.relative_to(directory)): yaml.safe_load(p.read_text())
        for p in sorted(directory.rglob("*.yaml"))
        if p.name != "metadata.yaml"
    }


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, width=120)


def clickhouse_uri(settings: Settings, source: str) -> str:
    """The BI role's SQLAlchemy URI, password masked (Superset takes it separately at import)."""
    ch = settings.clickhouse
    host = urlsplit(ch.url).hostname
    query = "?secure=true" if ch.secure else ""
    return f"clickhousedb://{ch.bi_user}:XXXXXXXXXX@{host}:{ch.port}/{ch.marts_database(source)}{query}"


def is_realtime(dataset: dict) -> bool:
    return str(dataset.get("table_name", "")).startswith("realtime_")


# the charts that show money: on a source whose spec has no revenue role, their titles say why they are empty
REVENUE_CHARTS = ("revenue_trend", "arpu_arppu", "kpi_arpu", "kpi_arppu", "kpi_revenue", "revenue_by_country", "orders",
                  "ltv_by_cohort", "forecast_revenue", "backtest_revenue")  # fmt: skip
FUNNEL_CHART = "funnel"
NO_REVENUE = " — no revenue events in this source"


def titled_by_roles(out: Bundle, roles: Roles) -> None:
    """Chart titles that follow the source's roles: the funnel's own steps, and what is absent."""
    for path, obj in out.items():
        name = Path(path).stem
        if not path.startswith("charts/"):
            continue
        if name == FUNNEL_CHART:
            obj["slice_name"] = (
                "Funnel: " + " → ".join(s.replace("_", " ") for s in roles.funnel)
                if roles.funnel
                else "Funnel — this source's spec names no funnel steps"
            )
        elif name in REVENUE_CHARTS and not roles.revenue:
            obj["slice_name"] += NO_REVENUE


def render(
    bundle: Bundle, settings: Settings, source: str = DEMO_SOURCE, memo: str | None = None, roles: Roles | None = None
) -> Bundle:
    """The repo's assets for ``source``: its marts database, the memo, chart titles by its ``roles``."""
    out = copy.deepcopy(bundle)
    if roles is not None:
        titled_by_roles(out, roles)
    for path, obj in out.items():
        if path.startswith("databases/"):
            obj["sqlalchemy_uri"] = clickhouse_uri(settings, source)
        elif path.startswith("datasets/"):
            ch = settings.clickhouse
            obj["schema"] = ch.realtime_database if is_realtime(obj) else ch.marts_database(source)
        elif path.startswith("dashboards/") and memo is not None and MEMO_MARKDOWN_ID in obj["position"]:
            obj["position"][MEMO_MARKDOWN_ID]["meta"]["code"] = memo
    return out


def to_zip(bundle: Bundle) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        metadata = {"version": "1.0.0", "type": "assets", "timestamp": "1970-01-01T00:00:00+00:00"}
        zf.writestr("pulse_assets/metadata.yaml", dump_yaml(metadata))
        for path, obj in bundle.items():
            zf.writestr(f"pulse_assets/{path}", dump_yaml(obj))
    return buf.getvalue()


def from_zip(data: bytes) -> Bundle:
    """A Superset export, keyed by path below its root folder."""
    out: Bundle = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            rel = name.split("/", 1)[1]
            if rel.endswith(".yaml") and rel != "metadata.yaml":
                out[rel] = yaml.safe_load(zf.read(name))
    return out


def normalise(obj: dict, path: str, keep_memo: bool = False) -> dict:
    """An exported object in the repo's instance-free form (the memo, computed at deploy, kept only for comparing)."""
    obj = copy.deepcopy(obj)
    if path.startswith("databases/"):
        obj["sqlalchemy_uri"] = REPO_URI
    elif path.startswith("datasets/"):
        obj["schema"] = REPO_REALTIME_SCHEMA if is_realtime(obj) else REPO_SCHEMA
        # Superset exports these in its own (id) order: sort, so order is never a difference
        obj["metrics"] = sorted(obj.get("metrics") or [], key=lambda m: m["metric_name"])
        obj["columns"] = sorted(obj.get("columns") or [], key=lambda c: c["column_name"])
    elif path.startswith("charts/"):
        obj["params"]["datasource"] = "__table"
        obj["params"].pop("slice_id", None)
        if obj.get("query_context"):
            qc = json.loads(obj["query_context"])
            qc["datasource"] = {"id": 0, "type": "table"}
            qc.get("form_data", {})["datasource"] = "__table"
            qc.get("form_data", {}).pop("slice_id", None)
            obj["query_context"] = json.dumps(qc)
    elif path.startswith("dashboards/"):
        for node in obj.get("position", {}).values():
            if isinstance(node, dict) and node.get("type") == "CHART":
                node["meta"]["chartId"] = 0
            if isinstance(node, dict) and node.get("id") == MEMO_MARKDOWN_ID and not keep_memo:
                node["meta"]["code"] = MEMO_PLACEHOLDER
        for flt in obj.get("metadata", {}).get("native_filter_configuration", []):
            flt["chartsInScope"], flt["tabsInScope"] = [], []  # derived by Superset from the scope and the layout
        _drop_view_state(obj.get("metadata", {}))
        obj.get("metadata", {}).get("global_chart_configuration", {})["chartsInScope"] = []
    return obj


# what Superset writes into a dashboard itself: chart positions, and the label colours its frontend stores
# (PUT /api/v1/dashboard/<id>/colors) whenever an owner opens the dashboard — state of the instance, not edits
VIEW_STATE = {"positions": None, "map_label_colors": None, "shared_label_colors": [], "color_scheme_domain": []}


def _drop_view_state(metadata: dict) -> None:
    for key, repo_value in VIEW_STATE.items():
        if repo_value is None:
            metadata.pop(key, None)
        elif key in metadata:
            metadata[key] = repo_value
    if metadata.get("color_namespace", "") is None:
        metadata.pop("color_namespace")


def _ours(bundle: Bundle, live: Bundle) -> dict[str, tuple[str, dict]]:
    """Live objects that belong to the repo's assets, matched by UUID: repo path -> (live path, object)."""
    by_uuid = {str(obj.get("uuid")): (path, obj) for path, obj in live.items()}
    return {path: by_uuid[str(obj["uuid"])] for path, obj in bundle.items() if str(obj["uuid"]) in by_uuid}


def _subset(want: Any, have: Any) -> bool:
    """Does ``have`` agree with everything ``want`` says? (Superset adds fields of its own on export.)"""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_subset(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(_subset(w, h) for w, h in zip(want, have, strict=True))
    if isinstance(want, str) and isinstance(have, str) and want.startswith("{"):
        try:  # JSON strings (query_context): compare parsed
            return _subset(json.loads(want), json.loads(have))
        except ValueError:
            pass
    return want == have


def differences(desired: Bundle, live: Bundle) -> list[str]:
    """Repo paths whose live object is missing or differs (both taken to the instance-free form)."""
    matched = _ours(desired, live)
    changed = []
    for path, obj in desired.items():
        if path not in matched:
            changed.append(path)
            continue
        live_path, live_obj = matched[path]
        if not _subset(normalise(obj, path, keep_memo=True), normalise(live_obj, live_path, keep_memo=True)):
            changed.append(path)
    return changed


@dataclass
class DeployResult:
    url: str
    changed: list[str]
    dashboards: dict[str, str] = field(default_factory=dict)  # title -> URL
    charts: dict[str, int] = field(default_factory=dict)  # chart UUID -> id
    warmed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # chart name -> error of its query
    seconds: float = 0.0
    memo: Any = None  # the pulse.bi.memo.Memo shown on the main dashboard, when deployed with one
    memo_path: Path | None = None


def deploy(
    settings: Settings,
    source: str = DEMO_SOURCE,
    memo: str | None = None,
    warm: bool = True,
    directory: Path = ASSETS_DIR,
    roles: Roles | None = None,
) -> DeployResult:
    """Import the assets if anything differs from what is live; then refresh every chart's cached data."""
    import time

    started = time.monotonic()
    client = SupersetClient(settings.superset)
    desired = render(load(directory), settings, source, memo, roles)
    live = from_zip(client.export_assets())
    changed = differences(desired, live)
    if changed:
        client.import_bundle(to_zip(desired), passwords={DATABASE_FILE: settings.clickhouse.bi_password})
    result = DeployResult(url=settings.superset.base_url, changed=changed)
    result.charts = _chart_ids(client, desired)
    for path, obj in desired.items():
        if path.startswith("dashboards/"):
            result.dashboards[obj["dashboard_title"]] = f"{settings.superset.base_url}/superset/dashboard/{obj['slug']}/"
    if warm:
        names = {str(obj["uuid"]): obj["slice_name"] for path, obj in desired.items() if path.startswith("charts/")}
        for uuid, chart_id in result.charts.items():
            try:
                client.chart_data(chart_id, force=True)  # runs the query and stores it in the data cache
                result.warmed += 1
            except SupersetError as exc:  # e.g. the ML dashboard before any ML run: report, keep going
                result.failed[names[uuid]] = str(exc)[:300]
    result.seconds = time.monotonic() - started
    return result


def _chart_ids(client: SupersetClient, bundle: Bundle) -> dict[str, int]:
    wanted = {str(obj["uuid"]) for path, obj in bundle.items() if path.startswith("charts/")}
    ids: dict[str, int] = {}
    page = 0
    while True:
        rows = client.get("/api/v1/chart/", q=json.dumps({"columns": ["id", "uuid"], "page": page, "page_size": 100}))["result"]
        ids.update({r["uuid"]: r["id"] for r in rows if r["uuid"] in wanted})
        if len(rows) < 100:
            return ids
        page += 1


def export(settings: Settings, directory: Path = ASSETS_DIR) -> list[str]:
    """Write the live versions of the repo's assets back into ``directory`` in normalised form.
    Returns the paths whose content changed."""
    client = SupersetClient(settings.superset)
    current = load(directory)
    live = from_zip(client.export_assets())
    changed = []
    for path, (live_path, obj) in _ours(current, live).items():
        text = dump_yaml(normalise(obj, live_path))
        target = directory / path
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            changed.append(path)
    return changed
