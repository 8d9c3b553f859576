"""A VS Head's way from a figure to a child: the spring term's overdue PEPs, the children in the figure,
and the child's page, whose look is written to the child's history."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from engine.models import Event

from ..test_oversight import build_small_council
from .conftest import sign_in


def test_a_figure_leads_to_its_children_and_on_to_a_childs_page(page, deployed_app, engine, council, clock):
    build_small_council(engine, council, clock)
    sign_in(page, "ea@demo.test")
    page.get_by_role("link", name="Oversight").click()
    page.get_by_label("Period").select_option("2025-26 spring")
    page.get_by_role("button", name="Show the figures").click()
    page.locator("#peps").get_by_role("link", name="2 children: overdue now").click()
    expect(page.get_by_role("heading", name="Overdue now")).to_be_visible()
    page.get_by_role("link", name="Dee Initial").click()
    expect(page.get_by_role("heading", name="Dee Initial")).to_be_visible()
    with council() as s:
        assert s.scalars(select(Event.actor).where(Event.kind == "record_viewed", Event.child_id == "C004")).all() == [
            "ea@demo.test"
        ]


def test_a_termly_figure_of_a_school_leads_to_its_children_and_on_to_a_childs_page(
    page, deployed_app, engine, council, clock
):
    build_small_council(engine, council, clock)
    sign_in(page, "ea@demo.test")
    page.goto("/oversight/timeliness")
    page.get_by_label("Period").select_option("2025-26 spring")
    page.get_by_label("Break down by").select_option("school")
    page.get_by_role("button", name="Show the figures").click()
    page.locator("#termly-1").get_by_role(
        "link", name="1 children: no pep review completed in the term, Spring term 2025-26, Oak Primary"
    ).click()
    expect(page.get_by_role("heading", name="No PEP review completed in the term")).to_be_visible()
    expect(page.locator("main table tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Casey Late").click()
    expect(page.get_by_role("heading", name="Casey Late")).to_be_visible()
    with council() as s:
        assert s.scalars(select(Event.actor).where(Event.kind == "record_viewed", Event.child_id == "C003")).all() == [
            "ea@demo.test"
        ]
