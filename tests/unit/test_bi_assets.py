"""Dashboards as code without a Superset: what deploy counts as a difference and what export writes."""

from __future__ import annotations

import copy

from pulse.bi import assets
from pulse.sources import spec as specs

MAIN = "dashboards/Product_analytics.yaml"


def viewed(dashboard: dict) -> dict:
    """The dashboard as Superset exports it after an owner opened it: the frontend stored its label colours."""
    live = copy.deepcopy(dashboard)
    live["metadata"] |= {
        "map_label_colors": {"ios": "#1FA8C9", "android": "#454E7C"},
        "shared_label_colors": ["ios", "android"],
        "color_scheme_domain": ["#1FA8C9", "#454E7C"],
        "color_namespace": None,
        "positions": {"CHART-1": {"x": 0}},
    }
    return live


def test_colours_the_frontend_stored_are_no_difference_and_are_not_exported():
    repo = assets.load()[MAIN]
    live = viewed(repo)
    assert assets.differences({MAIN: repo}, {MAIN: live}) == []
    assert assets.dump_yaml(assets.normalise(live, MAIN)) == assets.dump_yaml(assets.normalise(repo, MAIN))


def test_an_edited_colour_scheme_is_a_difference_and_a_custom_label_colour_is_exported():
    repo = assets.load()[MAIN]
    live = viewed(repo)
    live["metadata"]["color_scheme"] = "bnbColors"
    assert assets.differences({MAIN: repo}, {MAIN: live}) == [MAIN]
    live = viewed(repo)
    live["metadata"]["label_colors"] = {"ios": "#000000"}  # set by hand in Superset: export brings it to the repo
    assert assets.normalise(live, MAIN)["metadata"]["label_colors"] == {"ios": "#000000"}


def test_chart_titles_follow_the_sources_roles():
    bundle = assets.load()
    demo = assets.load()
    assets.titled_by_roles(demo, specs.load("demo").roles)
    assert demo == bundle  # the repo's titles are the demo's: deploying the demo changes nothing
    ga4, netflix = assets.load(), assets.load()
    assets.titled_by_roles(ga4, specs.load("ga4_export").roles)
    assets.titled_by_roles(netflix, specs.load("netflix_viewing").roles)
    assert ga4["charts/funnel.yaml"]["slice_name"] == "Funnel: view item → add to cart → begin checkout → purchase"
    assert netflix["charts/funnel.yaml"]["slice_name"] == "Funnel — this source's spec names no funnel steps"
    money = {p for p, c in netflix.items() if p.startswith("charts/") and c["slice_name"].endswith(assets.NO_REVENUE)}
    assert money == {f"charts/{name}.yaml" for name in assets.REVENUE_CHARTS}
    assert not any(c.get("slice_name", "").endswith(assets.NO_REVENUE) for c in ga4.values())


def charts_by_tab(dashboard: dict) -> dict[str, list[str]]:
    """Tab title -> the chart ids under it ("" for a dashboard without tabs), walking the layout from the root."""
    pos, out = dashboard["position"], {}

    def walk(node_id: str, tab: str, path: list[str]) -> None:
        node = pos[node_id]
        assert node.get("parents", path) == path, f"{node_id}: parents {node.get('parents')} but reached by {path}"
        if node["type"] == "TAB":
            tab = node["meta"]["text"]
        if node["type"] == "CHART":
            out.setdefault(tab, []).append(node_id)
        for child in node.get("children", []):
            walk(child, tab, [*path, node_id])

    walk("ROOT_ID", "", [])
    return out


def test_long_dashboards_are_in_tabs_of_a_few_charts_each_and_every_component_is_placed():
    bundle = assets.load()
    for path, dashboard in bundle.items():
        if not path.startswith("dashboards/"):
            continue
        tabs = charts_by_tab(dashboard)
        placed = {c for ids in tabs.values() for c in ids}
        components = {k for k, v in dashboard["position"].items() if isinstance(v, dict) and v.get("type") == "CHART"}
        assert placed == components, f"{path}: components outside the layout: {components - placed}"
        assert all(len(ids) <= 9 for ids in tabs.values()), f"{path}: a view of more than 9 charts: {tabs}"
    main = charts_by_tab(bundle[MAIN])
    assert list(main) == ["Overview", "Engagement", "Retention & cohorts", "Revenue", "Funnel", "Segments"]
    memo_tab = bundle[MAIN]["position"][bundle[MAIN]["position"][assets.MEMO_MARKDOWN_ID]["parents"][-2]]
    assert memo_tab["type"] == "TAB" and memo_tab["meta"]["text"] == "Memo"
