"""DAG integrity: every DAG file imports in Airflow's own venv (as the dag-processor loads it), no cycles,
owners and tags set, the documented shape of pulse_daily; parse time per DAG file printed."""

from __future__ import annotations

import pytest

from pulse.config import load_settings
from pulse.services.airflow import DAGS_FOLDER, PLUGINS_FOLDER, dag_environment

from .airflow_venv import run_json

SCRIPT = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])  # the plugins folder, as Airflow puts it on sys.path
from airflow.dag_processing.dagbag import DagBag
out = {"files": {}, "errors": {}, "dags": {}}
for path in sorted(Path(sys.argv[1]).glob("*.py")):
    t0 = time.perf_counter()
    bag = DagBag(dag_folder=str(path), safe_mode=False)
    out["files"][path.name] = round(time.perf_counter() - t0, 3)
    out["errors"].update(bag.import_errors)
    for dag_id, dag in bag.dags.items():
        dag.check_cycle() if hasattr(dag, "check_cycle") else None
        out["dags"][dag_id] = {
            "tags": sorted(dag.tags),
            "owners": sorted({t.owner for t in dag.tasks}),
            "tasks": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
            "max_active_runs": dag.max_active_runs,
            "catchup": dag.catchup,
            "callbacks": {t.task_id: bool(t.on_failure_callback) for t in dag.tasks},
            "retries": {t.task_id: t.retries for t in dag.tasks},
            "timeouts": {t.task_id: t.execution_timeout.total_seconds() if t.execution_timeout else None for t in dag.tasks},
        }
print(json.dumps(out))
"""


def load_dags(home, settings: dict[str, str]) -> dict:
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    return run_json(SCRIPT, [str(DAGS_FOLDER), str(PLUGINS_FOLDER)], env | settings)


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory) -> dict:
    return load_dags(tmp_path_factory.mktemp("airflow-home"), dag_environment(load_settings()) | {"PULSE_AIRFLOW_RETRIES": "3"})


def test_the_dag_file_takes_its_settings_from_pulse_only(tmp_path):
    """No defaults of its own: without Pulse's settings the file does not load, and says which one is missing."""
    settings = dag_environment(load_settings())
    del settings["PULSE_AIRFLOW_SOURCE"]
    errors = load_dags(tmp_path, settings)["errors"]
    assert any("PULSE_AIRFLOW_SOURCE is not set" in e for e in errors.values()), errors


def test_every_dag_file_imports_without_errors(dagbag, capsys):
    assert dagbag["errors"] == {}
    assert set(dagbag["dags"]) == {"pulse_daily", "pulse_bi_refresh"}
    with capsys.disabled():
        for name, seconds in dagbag["files"].items():
            print(f"\n  DAG file {name}: parsed in {seconds:.3f}s ({', '.join(sorted(dagbag['dags']))})", end="")
    assert all(seconds < 5 for seconds in dagbag["files"].values())


def test_owners_tags_callbacks_and_limits(dagbag):
    for dag_id, dag in dagbag["dags"].items():
        assert dag["owners"] == ["pulse"], dag_id
        assert "pulse" in dag["tags"], dag_id
        assert dag["max_active_runs"] == 1 and dag["catchup"] is False, dag_id
        assert all(dag["callbacks"].values()), f"{dag_id}: every task alerts on failure"
        assert all(t for t in dag["timeouts"].values()), f"{dag_id}: every task has a timeout"


def test_pulse_daily_runs_the_stages_in_order(dagbag):
    tasks = dagbag["dags"]["pulse_daily"]["tasks"]
    assert tasks["wait_for_raw"] == ["clean"]
    assert tasks["clean"] == ["build_marts"]
    assert tasks["build_marts"] == ["forecast", "segment"]
    assert tasks["forecast"] == tasks["segment"] == ["ml_output"]
    assert tasks["ml_output"] == ["data_alert"]
    assert tasks["data_alert"] == []
    retries = dagbag["dags"]["pulse_daily"]["retries"]
    assert retries["clean"] == 3 and retries["wait_for_raw"] == 0  # from Pulse's config; a sensor timeout is final
    assert dagbag["dags"]["pulse_bi_refresh"]["tasks"] == {"which_source": ["refresh_bi"], "refresh_bi": []}
