"""ML end to end on real services: generator (steady state, whales) -> cleaning -> marts ->
forecasts and segments written to ClickHouse and S3; checked against the backtest and the
generator's own truth about its users."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from pulse.common.clickhouse import client as ch_client
from pulse.datagen import USER_TRUTH_FILE, generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.domain import PUBLIC_COLUMNS
from pulse.lake import raw
from pulse.ml import run, segment, store
from pulse.modeling import dbt_runner
from pulse.services.clickhouse import ClickHouse
from pulse.staging import job

pytestmark = pytest.mark.integration
SOURCE = "mltest"
END = date(2026, 10, 31)


@pytest.fixture(scope="module")
def ml(stack, spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("ml") / SOURCE
    generate_dataset(out, GenParams(n_events=200_000, days=180, end_date=END, seed=42), DirtParams(rate=0.01))
    raw.upload_dataset(stack.s3, out, SOURCE)
    job.run(stack, SOURCE, spark=spark)
    ClickHouse(stack).start()
    assert dbt_runner.build(stack, SOURCE).ok
    fc = run.run_forecast(stack, SOURCE, run_id="ml-test-1")
    seg = run.run_segment(stack, SOURCE, run_id="ml-test-1")
    truth = pd.read_csv(out / USER_TRUTH_FILE).set_index("user_id")
    return stack, fc, seg, truth


def test_chosen_model_beats_seasonal_naive_on_the_backtest(ml):
    _, fc, _, _ = ml
    print("\n" + fc.table())
    mase = fc.scores.set_index(["metric", "model", "horizon"]).mase
    for metric in ("dau", "revenue"):
        best = fc.best[metric]
        for h in (1, 7):
            assert mase[(metric, best, h)] < 1, (metric, h)
            assert mase[(metric, best, h)] <= mase[(metric, "seasonal_naive", h)], (metric, h)


def test_results_are_in_clickhouse_and_the_model_in_s3(ml):
    stack, fc, seg, _ = ml
    ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(SOURCE))
    [(n, models)] = ch.query("SELECT count(), uniqExact(model) FROM ml_forecasts_latest WHERE NOT is_backtest").result_rows
    assert n == 28 and models <= 2  # 14 days x 2 metrics, each by its chosen model
    chosen = dict(ch.query("SELECT metric, model FROM ml_model_metrics_latest WHERE is_chosen AND horizon = 1").result_rows)
    assert chosen == fc.best
    [(users,)] = ch.query("SELECT count() FROM user_segments_latest").result_rows
    assert users == len(seg.assignment)
    sizes = dict(ch.query("SELECT segment, sum(users) FROM segment_profiles_latest GROUP BY segment").result_rows)
    assert sizes == seg.sizes
    model, meta = store.load_latest_artefact(stack, SOURCE, "forecast")
    assert meta["run_id"] == "ml-test-1" and set(model) == {"dau", "revenue"}
    assert (fc.output / "forecast_dau.png").exists() and (fc.output / "forecast_revenue.html").exists()
    assert (fc.output / "importance_dau.png").exists() and (seg.output / "segments.png").exists()


def test_segments_recover_the_generators_users(ml):
    _, _, seg, truth = ml
    assigned = seg.assignment.segment
    days = 180
    checks = {  # segment -> (generator truth, minimum precision, minimum recall)
        "high_value": (truth.whale.astype(bool), 0.6, 0.5),
        "dormant": (truth.churn_day <= days - 30, 0.7, 0.7),
        "new": (truth.signup_day >= days - 14, 0.4, 0.4),
    }
    for name, (flags, min_p, min_r) in checks.items():
        precision, recall = segment.recovery(assigned, flags, name)
        print(f"{name}: precision {precision:.2f} recall {recall:.2f}")
        assert precision >= min_p and recall >= min_r, name
    assert set(assigned.unique()) <= set(segment.SEGMENTS)


def test_rerun_replaces_and_a_failed_run_keeps_the_previous_latest(ml, monkeypatch):
    stack, _, seg, _ = ml
    ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(SOURCE))
    again = run.run_segment(stack, SOURCE, run_id="ml-test-1")  # same run id: replaced, not doubled
    assert ch.query("SELECT count() FROM user_segments WHERE run_id = 'ml-test-1'").result_rows == [(len(again.assignment),)]
    assert (again.assignment.segment == seg.assignment.segment).all()  # same data and seed, same segments

    def broken(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "save_artefact", broken)
    with pytest.raises(RuntimeError):
        run.run_segment(stack, SOURCE, run_id="ml-test-2")
    [(latest,)] = ch.query("SELECT DISTINCT run_id FROM user_segments_latest").result_rows
    assert latest == "ml-test-1"


def test_ml_runs_on_a_public_layout_file(stack, spark, tmp_path):
    """Not tuned to the generator's RAW layout: the common public event-log CSV, through ingest-file."""
    from pulse.lake.ingest_file import ingest_file

    gen = tmp_path / "gen"
    generate_dataset(gen, GenParams(n_events=80_000, days=150, end_date=END, seed=5), DirtParams(rate=0.0))
    frame = pd.concat(pd.read_csv(f, dtype=str) for f in sorted(gen.glob("ingest_date=*/*.csv.gz")))
    export = tmp_path / "2026-export.csv"
    frame[PUBLIC_COLUMNS].to_csv(export, index=False)  # no event ids, no currency, no platform: Pulse derives or defaults them
    source = "mlpublic"
    ingest_file(export, tmp_path / "raw")
    raw.upload_dataset(stack.s3, tmp_path / "raw", source)
    job.run(stack, source, spark=spark)
    assert dbt_runner.build(stack, source).ok
    fc = run.run_forecast(stack, source)
    seg = run.run_segment(stack, source)
    assert set(fc.best) == {"dau", "revenue"} and all(len(f) == 14 for f in fc.forecasts.values())
    assert sum(seg.sizes.values()) == len(seg.assignment) > 100
