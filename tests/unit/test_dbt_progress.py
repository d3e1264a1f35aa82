"""dbt's structured log read into a line per completed layer."""

from __future__ import annotations

import json

from pulse.modeling.dbt_progress import Progress, follow, planned


def node(uid: str, kind: str, fqn: list[str], parents: tuple[str, ...] = ()) -> dict:
    return {"unique_id": uid, "resource_type": kind, "fqn": fqn, "depends_on": {"nodes": list(parents)}}


MANIFEST = {
    "nodes": {
        n["unique_id"]: n
        for n in [
            node("model.p.stg_a", "model", ["p", "staging", "stg_a"]),
            node("model.p.int_b", "model", ["p", "intermediate", "int_b"], ("model.p.stg_a",)),
            node("model.p.kpi", "model", ["p", "marts", "core", "kpi"], ("model.p.int_b",)),
            node("model.p.fc", "model", ["p", "marts", "ml", "fc"], ("model.p.kpi",)),
            node("test.p.t1", "test", ["p", "t1"], ("model.p.stg_a",)),
            node("test.p.t2", "test", ["p", "t2"], ("model.p.fc", "model.p.kpi")),
        ]
    },
    "unit_tests": {"unit_test.p.kpi.u": node("unit_test.p.kpi.u", "unit_test", ["p", "u"], ("model.p.kpi",))},
}


def event(name: str, uid: str = "", **data) -> str:
    info = {"name": name, "msg": f"{name} {uid}".strip()}
    if uid:
        kind = uid.split(".")[0]
        data["node_info"] = {"unique_id": uid, "resource_type": kind}
    return json.dumps({"info": info, "data": data})


def run(tmp_path, order: list[str], domain: str | None = None, total: int | None = None) -> tuple[Progress, list[str]]:
    (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST))
    said: list[str] = []
    progress = Progress(tmp_path / "manifest.json", domain=domain, out=said.append)
    events = [event("MainReportVersion"), event("LogStartLine", order[0], total=total or len(order))]
    for uid in order:
        result = "LogTestResult" if uid.startswith(("test", "unit_test")) else "LogModelResult"
        events.append(event(result, uid, status="pass" if result == "LogTestResult" else "success"))
    return follow(events, progress), said


def test_a_line_each_time_a_layer_completes(tmp_path):
    order = ["model.p.stg_a", "test.p.t1", "model.p.int_b", "unit_test.p.kpi.u", "model.p.kpi", "model.p.fc", "test.p.t2"]
    progress, said = run(tmp_path, order)
    assert said == [
        "    staging 1/1 · intermediate 0/1 · marts 0/2 · tests 0/3",
        "    staging 1/1 · intermediate 1/1 · marts 0/2 · tests 1/3",
        "    staging 1/1 · intermediate 1/1 · marts 2/2 · tests 2/3",
        "    staging 1/1 · intermediate 1/1 · marts 2/2 · tests 3/3",
    ]
    assert progress.summary().startswith("4 models, 3 tests in ")


def test_a_domain_build_counts_its_models_and_the_tests_of_any_of_them(tmp_path):
    assert planned(MANIFEST, "ml") == {"model.p.fc": "marts", "test.p.t2": "tests"}
    _, said = run(tmp_path, ["model.p.fc", "test.p.t2"], domain="ml")
    assert said[-1] == "    marts 1/1 · tests 1/1"


def test_a_selection_it_cannot_plan_shows_counts_without_totals(tmp_path):
    progress, said = run(tmp_path, ["model.p.stg_a", "test.p.t1"], total=2)
    assert said == [] and progress.line() == "staging 1 · tests 1"


def test_failures_are_in_the_summary_and_plain_lines_are_passed_on(tmp_path):
    said: list[str] = []
    progress = Progress(tmp_path / "missing.json", out=said.append)
    follow(["Traceback: dbt crashed\n", event("LogTestResult", "test.p.t1", status="fail")], progress)
    assert said == ["Traceback: dbt crashed"]
    assert "0 models, 1 tests, 1 fail in" in progress.summary()
