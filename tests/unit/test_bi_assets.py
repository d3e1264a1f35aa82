"""Dashboards as code without a Superset: what deploy counts as a difference and what export writes."""

from __future__ import annotations

import copy

from pulse.bi import assets

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
