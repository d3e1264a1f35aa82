"""ML end to end on real services: generator (steady state, whales) -> cleaning -> marts ->
forecasts and segments written to ClickHouse and S3; checked against the backtest and the
generator's own truth about its users."""

from __future__ import annotations

import errno
import subprocess
import sys
from datetime import date, timedelta

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from pulse.bi import memo
from pulse.common.clickhouse import client as ch_client
from pulse.config import REPO_ROOT
from pulse.datagen import USER_TRUTH_FILE, generate_dataset
from pulse.datagen.dirty import DirtParams
from pulse.datagen.events import GenParams
from pulse.domain import PUBLIC_COLUMNS
from pulse.lake import raw
from pulse.ml import forecast, run, segment, store
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
    truth = pd.read_csv(out / USER_TRUTH_FILE, dtype={"user_id": str}).set_index("user_id")  # ids are text in staging
    return stack, fc, seg, truth


def test_chosen_model_beats_seasonal_naive_on_the_backtest(ml):
    _, fc, _, _ = ml
    print("\n" + fc.table())
    scores = fc.scores[fc.scores.horizon.isin(forecast.HORIZONS)]
    for metric in ("dau", "revenue"):
        mean_mase = scores[scores.metric == metric].groupby("model").mase.mean()
        best = fc.best[metric]
        # chosen = the lowest mean MASE over the reported horizons, below 1 at h = 1 and 7 (better than the
        # seasonal-naive scale), and every other model (seasonal naive among them, unless it is the chosen one) is worse
        mase = scores[(scores.metric == metric) & (scores.model == best)].set_index("horizon").mase
        assert mase[1] < 1 and mase[7] < 1, (metric, mase.to_dict())
        assert all(mean_mase[best] < v for m, v in mean_mase.items() if m != best), (metric, mean_mase.to_dict())


def test_results_are_in_clickhouse_and_the_model_in_s3(ml):
    stack, fc, seg, _ = ml
    ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(SOURCE))
    ahead = ch.query_df("SELECT metric, model, origin, target_date FROM ml_forecasts_latest WHERE NOT is_backtest")
    assert dict(ahead.groupby("metric").model.unique().map(tuple)) == {m: (b,) for m, b in fc.best.items()}  # the chosen one
    for metric, g in ahead.groupby("metric"):  # the two weeks after the last complete day, each day once
        [origin] = g.origin.unique()
        assert sorted(g.target_date) == [origin + timedelta(days=d) for d in range(1, 15)], metric
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


def marts_series(ch, metric: str) -> pd.Series:
    """The metric per complete day, read from its mart here (not through pulse.ml), a missing day = 0."""
    table, day, value = {
        "dau": ("user_daily_metrics", "metric_date", "dau"),
        "revenue": ("revenue_daily", "revenue_date", "revenue_usd"),
    }[metric]
    frame = ch.query_df(f"SELECT {day} AS day, toFloat64({value}) AS v FROM {table} WHERE is_complete ORDER BY day")
    return frame.set_index(pd.to_datetime(frame.day)).v.asfreq("D", fill_value=0.0)


def test_stored_metrics_recompute_from_the_stored_backtest_rows(ml):
    """MAE, MAPE (zero actuals left out), sMAPE and MASE (scaled by the seasonal-naive in-sample error of the
    training days before each origin, recomputed from the marts) from the backtest rows in ClickHouse."""
    stack, _, _, _ = ml
    ch = ch_client(stack.clickhouse, database=stack.clickhouse.marts_database(SOURCE))
    rows = ch.query_df(
        "SELECT metric, model, origin, target_date, horizon, yhat, actual FROM ml_forecasts_latest WHERE is_backtest"
    )
    stored = ch.query_df("SELECT * FROM ml_model_metrics_latest").set_index(["metric", "model", "horizon"])
    assert len(stored) == len(rows.groupby(["metric", "model", "horizon"]))
    for metric in ("dau", "revenue"):
        series = marts_series(ch, metric)
        mine = rows[rows.metric == metric]
        assert (mine.actual.to_numpy() == series.loc[pd.to_datetime(mine.target_date)].to_numpy()).all()
        scale = {}
        for origin in map(pd.Timestamp, mine.origin.unique()):
            train = series.loc[:origin]
            diffs = [abs(a - b) for a, b in zip(train.iloc[7:], train.iloc[:-7], strict=True)]
            scale[origin] = (sum(diffs) / len(diffs)) if diffs and sum(diffs) > 0 else 1.0
        for (model, h), g in mine.groupby(["model", "horizon"]):
            err = (g.actual - g.yhat).abs()
            nonzero = g.actual != 0
            both = g.actual.abs() + g.yhat.abs()
            row = stored.loc[(metric, model, h)]
            assert row.folds == len(g) == g.origin.nunique()
            assert row.mae == pytest.approx(err.mean(), rel=1e-9)
            assert row.mape == pytest.approx(100 * (err[nonzero] / g.actual[nonzero].abs()).mean(), rel=1e-9)
            assert row.smape == pytest.approx(100 * (2 * err / both).where(both > 0, 0.0).mean(), rel=1e-9)
            scales = [scale[pd.Timestamp(o)] for o in g.origin]
            assert row.mase == pytest.approx((err / scales).mean(), rel=1e-9)


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
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    monkeypatch.setattr(store, "save_artefact", broken)
    with pytest.raises(OSError, match="simulated"):
        run.run_segment(stack, SOURCE, run_id="ml-test-2")
    [(latest,)] = ch.query("SELECT DISTINCT run_id FROM user_segments_latest").result_rows
    assert latest == "ml-test-1"


def test_ml_runs_on_a_public_layout_file(warehouse, spark, tmp_path):
    """Not tuned to the generator's RAW layout: the common public event-log CSV, through ingest-file."""
    from pulse.lake.ingest_file import ingest_file

    stack = warehouse
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


NOTEBOOKS = REPO_ROOT / "notebooks"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """The notebooks' ``pulse`` kernel: this venv's interpreter, registered under a throw-away prefix (never
    a kernel of the user's home)."""
    prefix = tmp_path_factory.mktemp("jupyter")
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", "pulse"], check=True,
                   capture_output=True)  # fmt: skip
    return prefix / "share" / "jupyter"


def executed(name: str) -> list[str]:
    """Run a notebook top to bottom in a fresh kernel; its outputs' text, cell by cell (a failing cell fails the test)."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="pulse", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text") or str(o.get("data", {}).get("text/plain", "")))
    return out


def test_the_notebooks_run_on_the_configured_source_and_show_what_pulse_ml_computed(ml, kernel, monkeypatch):
    stack, fc, seg, _ = ml
    monkeypatch.setenv("JUPYTER_PATH", str(kernel))
    monkeypatch.setenv("PULSE_AIRFLOW_SOURCE", SOURCE)  # Pulse's configured source: what the notebooks read
    for name in ("forecasting", "segmentation", "memo"):
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code"), (
            f"{name}.ipynb is committed with outputs"
        )
    text = "\n".join(executed("forecasting"))
    assert f"source {SOURCE}:" in text and str(dict(fc.best)) in text  # the same models chosen as by `pulse ml forecast`
    text = "\n".join(executed("segmentation"))
    assert f"chosen k = {seg.k}" in text
    text = "\n".join(executed("memo"))
    insights = memo.build(stack, SOURCE).insights
    assert f"{len(insights)} insights" in text and all(f.sql.strip()[:60] in text for f in insights)
