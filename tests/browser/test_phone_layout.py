"""Phone layouts: on a phone 390 pixels wide, the inbox, a task page, a child's page, the oversight pages
and the administration's lists fit the screen (nothing scrolls sideways), for each role's main pages;
their tables become stacked rows, each value labelled."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.models import OpenTask, User

from ..test_oversight import build_small_council
from ..test_runtime import MEETING, complete, only_task, start_review
from ..web.conftest import PASSWORD_HASH
from .conftest import sign_in, sign_out
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
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#inbox-rows thead')).position") == "absolute"
        or not page.locator("#inbox-rows thead").is_visible()
    )
    assert serious_violations(page) == []


# each role's main pages, as its menu and inbox lead to them ("task": one of theirs; "child": the first
# child of their inbox)
MAIN_PAGES = {
    "sw@demo.test": ["/inbox", "task", "child", "/children", "/notifications"],
    "other.dt@demo.test": ["/inbox", "task", "child"],
    "vsh@demo.test": [
        "/inbox",
        "/inbox?view=pool",
        "/oversight/timeliness",
        "/oversight/timeliness?by=school",
        "/oversight/timeliness/children?figure=overdue",
        "/oversight/overdue",
        "/oversight/ppplus",
        "/oversight/quality",
        "/children",
        "/children/C004",
    ],
    "admin@demo.test": [
        "/inbox",
        "/children",
        "/children/C002",
        "/admin/users",
        "/admin/schools",
        "/admin/children/C001/team",
        "/admin/needs-a-person",
        "/admin/incidents",
        "/admin/grants",
        "/admin/import",
        "/admin/children/new",
        "/notifications",
        "/audit",
    ],
}


def test_each_roles_main_pages_fit_a_phone(page, deployed_app, engine, council, clock):
    build_small_council(engine, council, clock)
    start_review(engine, council, "C003")  # a PEP meeting for the social worker to arrange
    with council.begin() as s:
        s.scalar(select(User).where(User.email == "vsh@demo.test")).password_hash = PASSWORD_HASH
    page.set_viewport_size(PHONE)
    too_wide = []
    for email, paths in MAIN_PAGES.items():
        sign_in(page, email)
        for path in paths:
            if path == "task":
                with council() as s:
                    path = (
                        "/tasks/"
                        + s.scalars(
                            select(OpenTask.id).join(User, User.id == OpenTask.assignee_id).where(User.email == email)
                        ).first()
                    )
            elif path == "child":
                page.goto("/inbox")
                path = page.locator("#inbox-rows a[href^='/children/']").first.get_attribute("href")
            response = page.goto(path)
            assert response.status == 200, (email, path)
            if overflow(page) > 0:
                too_wide.append((email, path, overflow(page)))
        sign_out(page)
    assert too_wide == []
