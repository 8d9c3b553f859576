"""Phone layouts: on a phone 390 pixels wide, the inbox, a task page and a child's page fit the screen
(nothing scrolls sideways); their tables become stacked rows, each value labelled."""

from __future__ import annotations

import pytest

from ..test_runtime import MEETING, complete, only_task, start_review
from .conftest import sign_in
from .test_accessibility import serious_violations

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def a_review_at_the_teacher(deployed_app, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    return only_task(council)


def overflow(page) -> int:
    """How far the page reaches past the right edge of the screen, in pixels."""
    return page.evaluate("document.documentElement.scrollWidth") - PHONE["width"]


def test_the_inbox_a_task_and_a_childs_page_fit_a_phone(page, a_review_at_the_teacher):
    page.set_viewport_size(PHONE)
    sign_in(page, "dt@demo.test")
    assert overflow(page) <= 0, "the inbox"
    page.goto(f"/tasks/{a_review_at_the_teacher.id}")
    assert overflow(page) <= 0, "the task page"
    page.goto("/children/C001")
    assert overflow(page) <= 0, "the child's page"


def test_the_inbox_rows_on_a_phone_label_each_value(page, a_review_at_the_teacher):
    page.set_viewport_size(PHONE)
    sign_in(page, "dt@demo.test")
    due = page.locator("#inbox-rows td[data-label='Due']").first
    assert due.is_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('#inbox-rows thead')).position") == "absolute" \
        or not page.locator("#inbox-rows thead").is_visible()
    assert serious_violations(page) == []
