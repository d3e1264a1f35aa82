"""The documentation stays true to the code: the generated configuration page, links between pages."""

from __future__ import annotations

import re

from pulse.config import REPO_ROOT, markdown

PAGES = [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def test_the_configuration_page_is_generated_from_the_code():
    page = REPO_ROOT / "docs" / "configuration.md"
    assert page.read_text() == markdown(), "docs/configuration.md is stale: .venv/bin/python -m pulse.config --markdown > it"


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO_ROOT)} -> {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_is_a_front_door():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "./scripts/test.sh" in readme and "./scripts/demo.sh" in readme
    assert not re.search(r"\d+ passed", readme), "test counts go stale: they belong in docs/testing.md"


def test_every_adr_has_context_decision_and_consequences():
    adrs = sorted((REPO_ROOT / "docs" / "adr").glob("[0-9][0-9][0-9][0-9]-*.md"))
    assert adrs
    index = (REPO_ROOT / "docs" / "adr" / "README.md").read_text()
    for adr in adrs:
        text = adr.read_text()
        assert all(f"## {part}" in text for part in ("Context", "Decision", "Consequences")), adr.name
        assert adr.name in index, f"{adr.name} missing from docs/adr/README.md"


def test_docs_use_step_names_not_build_stages():
    stale = [str(p.relative_to(REPO_ROOT)) for p in PAGES if re.search(r"\b[Ss]tage[ -][1-6]\b", p.read_text())]
    assert not stale, f"'stage N' is the order things were built, not a step name: {stale}"
