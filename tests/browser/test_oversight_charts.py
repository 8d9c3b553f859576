"""The oversight pages with figures in them, in Chromium: each chart drawn from its table under the app's
own Content-Security-Policy (no inline script), named for screen readers and described as its table,
and the pages free of serious accessibility problems with the charts on them (the PP+ and quality
pages of a small council with known PP+ and QA cases, tests/test_ppplus_ledger.py)."""

from __future__ import annotations

import pytest

from tests.scenarios.test_all_ages_review import _deploy
from tests.test_ppplus_ledger import small_council

from .conftest import sign_in
from .test_accessibility import serious_violations

VSH = "vsh@council.test"


@pytest.fixture
def council(demo_council, engine):
    _deploy(demo_council, engine)
    return demo_council


@pytest.fixture
def known(app, engine, council):
    small_council(engine, council)
    return app


def charts(page) -> list[dict]:
    return page.eval_on_selector_all(
        "figure.app-chart canvas",
        """els => els.map(e => ({
        name: e.getAttribute('aria-label'), role: e.getAttribute('role'), width: e.width,
        description: document.getElementById(e.getAttribute('aria-describedby')).textContent,
        table: (b => b.matches('table') ? b : b.querySelector('table'))(e.closest('figure').previousElementSibling).id}))""",
    )


def test_the_ppplus_and_quality_pages_with_figures_have_no_serious_accessibility_problems(page, known):
    sign_in(page, VSH)
    for url in ("/oversight/ppplus?year=2025-26", "/oversight/quality?year=2025-26"):
        page.goto(url)
        page.wait_for_selector("figure.app-chart canvas")
        assert serious_violations(page) == [], url


def test_each_chart_is_drawn_from_its_table_under_the_apps_csp(chromium, live_server, known):
    context = chromium.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})  # CSP enforced
    page = context.new_page()
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_in(page, VSH)
    page.goto("/oversight/ppplus?year=2025-26")
    page.wait_for_selector("figure.app-chart canvas")
    [chart] = charts(page)
    assert chart["role"] == "img" and chart["width"] > 0 and chart["table"] == "by-school"
    assert chart["name"] == "PP+ requested, approved and released by school, 2025-26"
    assert "the table “By school, 2025-26” above, which holds the same figures" in chart["description"]
    page.goto("/oversight/quality?year=2025-26")
    page.wait_for_selector("figure.app-chart canvas")
    assert [c["table"] for c in charts(page)] == ["ratings"]
    assert problems == []
    context.close()


def test_without_javascript_the_tables_alone_hold_the_figures(chromium, live_server, known):
    context = chromium.new_context(base_url=live_server, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, VSH)
    page.goto("/oversight/quality?year=2025-26")
    assert page.locator("figure.app-chart").count() == 0
    assert page.locator("#ratings tbody tr").all_inner_texts() == ["Gold\t0", "Green\t1", "Amber\t2", "Red\t1"]
    context.close()
