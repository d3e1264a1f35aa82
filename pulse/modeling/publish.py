"""Write–audit–publish for the marts.

dbt builds and tests a source's models in its *build* database (``<db>_<source>__build``, where the
incremental state lives too). Only when every model and test passed are the marts copied into the
*published* database (``<db>_<source>``, what dashboards read) and swapped in table by table with
``EXCHANGE TABLES`` (atomic per table). A failed build publishes nothing: the previous marts keep
serving, and the result says which test failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulse.common.clickhouse import client as ch_client
from pulse.common.quoting import ident
from pulse.config import Settings


@dataclass
class Failure:
    node: str  # dbt unique id, e.g. test.pulse.assert_funnel_is_ordered
    status: str  # fail | error
    message: str
    query: str = ""  # a test's compiled SQL: run it to see the failing rows


@dataclass
class BuildResult:
    source: str
    build_database: str
    marts_database: str
    exit_code: int
    published: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    summary: str = ""  # e.g. "24 models, 77 tests in 41.2 s"

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failures


def failures(target_dir: Path) -> list[Failure]:
    """Failed or errored nodes of dbt's last invocation (run_results.json)."""
    path = target_dir / "run_results.json"
    if not path.exists():
        return [Failure("dbt", "error", f"no {path}: dbt did not finish")]
    results = json.loads(path.read_text())["results"]
    return [
        Failure(r["unique_id"], r["status"], (r.get("message") or "").strip(), (r.get("compiled_code") or "").strip())
        for r in results
        if r["status"] in ("fail", "error", "runtime error")
    ]


def mart_models(target_dir: Path, domain: str | None = None) -> list[str]:
    """Names of the models in the project's marts folder, or in one domain folder of it (from dbt's manifest)."""
    manifest = json.loads((target_dir / "manifest.json").read_text())
    return sorted(
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model"
        and n["fqn"][1:2] == ["marts"]
        and (domain is None or n["fqn"][2:3] == [domain])
        and n["config"]["materialized"] != "ephemeral"
    )


def publish(settings: Settings, source: str, models: list[str]) -> list[str]:
    """Copy each built mart into the published database and swap it in; returns what was published."""
    cfg = settings.clickhouse
    build, pub = ident(cfg.build_database(source)), ident(cfg.marts_database(source))
    client: Any = ch_client(cfg)
    client.command(f"CREATE DATABASE IF NOT EXISTS {pub}")
    existing = {
        r[0] for r in client.query("SELECT name FROM system.tables WHERE database = {db:String}", parameters={
            "db": cfg.marts_database(source)}).result_rows
    }  # fmt: skip
    for name in models:
        staged = ident(f"{name}__publish")
        client.command(f"DROP TABLE IF EXISTS {pub}.{staged}")
        client.command(f"CREATE TABLE {pub}.{staged} AS {build}.{ident(name)}")
        client.command(f"INSERT INTO {pub}.{staged} SELECT * FROM {build}.{ident(name)}")
        if name in existing:
            client.command(f"EXCHANGE TABLES {pub}.{staged} AND {pub}.{ident(name)}")
            client.command(f"DROP TABLE {pub}.{staged}")
        else:
            client.command(f"RENAME TABLE {pub}.{staged} TO {pub}.{ident(name)}")
    return models
