"""Where ML results live: append-only ClickHouse tables with a run ledger, artefacts in S3.

Tables (in the source's published marts database, so dashboards read them with the BI role):
``ml_forecasts``, ``ml_model_metrics``, ``user_segments``, ``segment_profiles``, each with
``run_id`` and ``trained_at``, plus ``ml_runs`` (one row per finished run). The ``*_latest`` views
show the newest run that *finished*: results are written first and the ledger row last, so a run
that fails half-way never becomes the latest. Re-running with the same run_id replaces its rows.

Artefacts: ``s3://<raw bucket>/ml/<source>/<kind>/<run_id>/{model.joblib,metadata.json}`` and
``…/<kind>/latest.json`` (written last), so a later run or the scheduler can load the last good model.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import joblib
import pandas as pd

from pulse.common import s3 as s3util
from pulse.common.clickhouse import client as ch_client
from pulse.common.quoting import ident
from pulse.config import Settings

TABLES = {
    "ml_runs": "run_id String, kind LowCardinality(String), source String, trained_at DateTime64(3), "
    "as_of_date Date, details String",
    "ml_forecasts": "run_id String, trained_at DateTime64(3), metric LowCardinality(String), model LowCardinality(String), "
    "target_date Date, horizon UInt8, yhat Float64, yhat_lower Nullable(Float64), yhat_upper Nullable(Float64), "
    "is_backtest Bool, origin Nullable(Date), actual Nullable(Float64)",
    "ml_model_metrics": "run_id String, trained_at DateTime64(3), metric LowCardinality(String), "
    "model LowCardinality(String), horizon UInt8, mae Float64, mape Nullable(Float64), smape Float64, mase Float64, "
    "folds UInt16, is_chosen Bool",
    "user_segments": "run_id String, trained_at DateTime64(3), as_of_date Date, user_id String, "
    "segment LowCardinality(String), cluster UInt8, recency_days Float64, active_days_30 Float64, "
    "sessions_90 Float64, revenue_usd Float64, purchases Float64, tenure_days Float64",
    "segment_profiles": "run_id String, trained_at DateTime64(3), as_of_date Date, cluster UInt8, "
    "segment LowCardinality(String), users UInt64, share Float64, centroid String",
}
KIND_TABLES = {"forecast": ["ml_forecasts", "ml_model_metrics"], "segment": ["user_segments", "segment_profiles"]}


def _client(settings: Settings, source: str) -> Any:
    return ch_client(settings.clickhouse, database=settings.clickhouse.marts_database(source))


def columns_of(definition: str) -> list[tuple[str, str]]:
    """``"a String, b Nullable(Float64)"`` -> [(a, String), (b, Nullable(Float64))]: commas inside types kept."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(definition + ","):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            name, _, kind = definition[start:i].strip().partition(" ")
            out.append((name, kind.strip()))
            start = i + 1
    return out


def migrate_table(client: Any, name: str, definition: str) -> None:
    """An existing table made by an older release gets this release's columns and types (CREATE TABLE IF
    NOT EXISTS would keep it as it was): a missing column is added, a changed type modified."""
    query = f"SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = '{name}'"
    have = dict(client.query(query).result_rows)
    for column, kind in columns_of(definition):
        if column not in have:
            client.command(f"ALTER TABLE {ident(name)} ADD COLUMN {ident(column)} {kind}")
        elif have[column] != kind:
            client.command(f"ALTER TABLE {ident(name)} MODIFY COLUMN {ident(column)} {kind}")


def ensure_tables(settings: Settings, source: str) -> None:
    client = _client(settings, source)
    for name, columns in TABLES.items():
        order = "(run_id)" if name == "ml_runs" else "(run_id, trained_at)"
        client.command(f"CREATE TABLE IF NOT EXISTS {ident(name)} ({columns}) ENGINE = MergeTree ORDER BY {order}")
        migrate_table(client, name, columns)
    for kind, tables in KIND_TABLES.items():
        # finished runs only; the newest *as-of date* wins, so backfilling an older day does not become "latest"
        latest = f"(SELECT argMax(run_id, (as_of_date, trained_at)) FROM ml_runs WHERE kind = '{kind}')"
        for name in tables:
            client.command(
                f"CREATE OR REPLACE VIEW {ident(name + '_latest')} AS SELECT * FROM {ident(name)} WHERE run_id = {latest}"
            )


def write_run(settings: Settings, source: str, kind: str, run_id: str, as_of, frames: dict[str, pd.DataFrame],
              details: dict) -> datetime:  # fmt: skip
    """Replace ``run_id``'s rows in each table, then record the run as finished (last)."""
    ensure_tables(settings, source)
    client = _client(settings, source)
    trained_at = datetime.now(UTC).replace(tzinfo=None)
    for name in KIND_TABLES[kind]:
        client.command(f"DELETE FROM {ident(name)} WHERE run_id = {{run_id:String}}", parameters={"run_id": run_id})
    client.command(  # a forecast and a segmentation may share a run id (one scheduled run): only this kind's row
        "DELETE FROM ml_runs WHERE run_id = {run_id:String} AND kind = {kind:String}", parameters={"run_id": run_id, "kind": kind}
    )
    for name, frame in frames.items():
        if len(frame):
            client.insert_df(name, frame.assign(run_id=run_id, trained_at=trained_at))
    client.insert(
        "ml_runs",
        [[run_id, kind, source, trained_at, as_of, json.dumps(details, default=str)]],
        column_names=["run_id", "kind", "source", "trained_at", "as_of_date", "details"],
    )
    return trained_at


def artefact_prefix(settings: Settings, source: str, kind: str) -> str:
    return f"ml/{source}/{kind}"


def save_artefact(settings: Settings, source: str, kind: str, run_id: str, model: Any, metadata: dict) -> str:
    s3 = s3util.client(settings.s3)
    s3util.ensure_bucket(s3, settings.s3.raw_bucket)
    prefix = f"{artefact_prefix(settings, source, kind)}/{run_id}"
    buf = io.BytesIO()
    joblib.dump(model, buf)
    bucket = settings.s3.raw_bucket
    s3.put_object(Bucket=bucket, Key=f"{prefix}/model.joblib", Body=buf.getvalue())
    s3.put_object(Bucket=bucket, Key=f"{prefix}/metadata.json", Body=json.dumps(metadata, indent=1, default=str).encode())
    latest = json.dumps({"run_id": run_id, "prefix": prefix}).encode()
    s3.put_object(Bucket=bucket, Key=f"{artefact_prefix(settings, source, kind)}/latest.json", Body=latest)
    return f"s3://{bucket}/{prefix}/"


def load_latest_artefact(settings: Settings, source: str, kind: str) -> tuple[Any, dict] | None:
    s3 = s3util.client(settings.s3)
    bucket = settings.s3.raw_bucket
    try:
        latest = json.loads(
            s3.get_object(Bucket=bucket, Key=f"{artefact_prefix(settings, source, kind)}/latest.json")["Body"].read()
        )
    except s3.exceptions.NoSuchKey:
        return None
    model = joblib.load(io.BytesIO(s3.get_object(Bucket=bucket, Key=f"{latest['prefix']}/model.joblib")["Body"].read()))
    meta = json.loads(s3.get_object(Bucket=bucket, Key=f"{latest['prefix']}/metadata.json")["Body"].read())
    return model, meta
