"""Automated accessibility checks (axe-core, WCAG 2.2 A and AA rules) of the pages people use most:
no serious or critical violation on the inbox, a task form (with its error summary) and a child's page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..test_runtime import MEETING, complete, only_task, start_review
from .conftest import sign_in

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def serious_violations(page) -> list[str]:
    if not AXE.exists():
        pytest.skip("axe-core is not installed (npm ci installs it)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(f"async () => await axe.run(document, {{runOnly: {{type: 'tag', values: {json.dumps(TAGS)}}}}})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


@pytest.fixture
def a_review_at_the_teacher(deployed_app, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    return only_task(council)


def test_the_inbox_has_no_serious_accessibility_problems(page, a_review_at_the_teacher):
    sign_in(page, "dt@demo.test")
    assert serious_violations(page) == []


def test_a_task_form_and_its_error_summary_have_no_serious_accessibility_problems(page, a_review_at_the_teacher):
    sign_in(page, "dt@demo.test")
    page.goto(f"/tasks/{a_review_at_the_teacher.id}")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Add a SMART target").click()
    page.get_by_role("button", name="Submit").click()
    assert page.locator(".govuk-error-summary").is_visible()
    assert serious_violations(page) == []


def test_a_childs_page_has_no_serious_accessibility_problems(page, a_review_at_the_teacher):
    sign_in(page, "sw@demo.test")
    page.goto("/children/C001")
    assert serious_violations(page) == []
