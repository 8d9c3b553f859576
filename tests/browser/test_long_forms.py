"""In a real browser: the designated teacher's long ePEP in sections with "Check your answers", a question
revealed by an answer (and all of them shown without JavaScript), targets added and removed without
reloading the page, and error messages that name the target and point at the date box to fix."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from engine.models import TaskDraft, User
from webui.sample import sample_answers

from ..web.conftest import shipped_form_task
from .conftest import sign_in
from .test_accessibility import serious_violations as all_serious_violations


def serious_violations(page) -> list[str]:
    """axe's serious problems, but GOV.UK Frontend's own `aria-expanded` on a radio that reveals a question:
    its Radios module sets it (the Design System's researched pattern), which ARIA 1.2 does not list for
    radios; axe reports it on every conditional reveal."""
    reveal = page.evaluate(
        "() => [...document.querySelectorAll('input[type=radio][aria-controls]')].map(e => '#' + e.id)"
    )
    return [
        v
        for v in all_serious_violations(page)
        if not (v.startswith("aria-allowed-attr") and all(f"'{id}'" in str(reveal) for id in _targets(v)))
    ]


def _targets(violation: str) -> list[str]:
    import re

    return re.findall(r"'(#[^']+)'", violation)


@pytest.fixture
def epep(deployed_app, council, clock, engine):
    return shipped_form_task(council, clock, engine, "review_complete_epep")


@pytest.fixture
def ppg_meeting(deployed_app, council, clock, engine):
    return shipped_form_task(council, clock, engine, "ppg_arrange_meeting")


@pytest.mark.parametrize("width", [1280, 390])
def test_the_long_epep_is_a_task_list_of_sections_checked_before_it_is_submitted(
    page, epep, council, engine, width, tmp_path
):
    page.set_viewport_size({"width": width, "height": 900})
    with council.begin() as s:
        answers = sample_answers(engine.task_form(s, epep.id, "sw@demo.test")["form_schema"], engine.now().date())
        answers.update(
            meeting_date="2026-01-27", next_meeting_date="2036-04-20", moving_school=False, sen_status="None"
        )
        s.add(
            TaskDraft(
                task_id=epep.id,
                user_id=s.scalar(select(User.id).where(User.email == "sw@demo.test")),
                data=answers,
                saved_at=engine.now(),
                sections_done=[1, 2, 3, 4, 5, 7],
            )
        )
    sign_in(page, "sw@demo.test")
    page.goto(f"/tasks/{epep.id}")
    tasks = page.locator(".govuk-task-list").first
    expect(tasks.locator(".govuk-task-list__item")).to_have_count(7)
    expect(page.get_by_text("You have completed 6 of 7 sections.")).to_be_visible()
    expect(page.get_by_text("Cannot start yet")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing runs off a phone
    page.screenshot(path=str(tmp_path / f"task-list-{width}.png"), full_page=True)
    assert serious_violations(page) == []
    page.get_by_role("link", name="Targets and Pupil Premium Plus").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Targets and Pupil Premium Plus")
    target = page.get_by_role("group", name="Target 1", exact=True)
    funded = target.get_by_role("group", name="Is Pupil Premium Plus funding this target?")
    funded.get_by_label("Yes", exact=True).check()
    expect(target.get_by_label("Pupil Premium Plus (£)")).to_be_visible()
    funded.get_by_label("No", exact=True).check()
    expect(target.get_by_label("Pupil Premium Plus (£)")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(tmp_path / f"section-{width}.png"), full_page=True)
    assert serious_violations(page) == []
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_text("You have completed 7 of 7 sections.")).to_be_visible()
    page.get_by_role("link", name="Check your answers and submit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("is done")


def test_without_javascript_a_section_is_saved_and_the_task_list_says_so(chromium, live_server, epep):
    context = chromium.new_context(base_url=live_server, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, "sw@demo.test")
        page.goto(f"/tasks/{epep.id}")
        page.get_by_role("link", name="Views of the child and carers").click()
        page.get_by_label("The child's or young person's views").fill("I like art")
        page.get_by_role("button", name="Save and continue").click()
        expect(page.locator(".govuk-error-summary")).to_contain_text("Enter carers' views")
        page.get_by_role("link", name="Enter carers' views").click()
        page.get_by_label("Carers' views").fill("Settled and happy")
        page.get_by_role("button", name="Save and continue").click()
        row = page.locator(".govuk-task-list__item", has_text="Views of the child and carers")
        expect(row.locator(".govuk-task-list__status")).to_have_text("Completed")
    finally:
        context.close()


def test_a_no_reveals_the_question_it_asks(page, ppg_meeting):
    sign_in(page, "sw@demo.test")
    page.goto(f"/tasks/{ppg_meeting.id}")
    why = page.get_by_label("Why the carer / parent is not invited")
    expect(why).to_be_hidden()
    invited = page.get_by_role("group", name="The foster carer / parent is invited")
    invited.get_by_label("No", exact=True).check()
    expect(why).to_be_visible()
    expect(invited.get_by_label("No", exact=True)).to_have_attribute("aria-expanded", "true")
    assert serious_violations(page) == []
    invited.get_by_label("Yes", exact=True).check()
    expect(why).to_be_hidden()


def test_without_javascript_every_question_is_shown(chromium, live_server, ppg_meeting):
    context = chromium.new_context(base_url=live_server, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, "sw@demo.test")
        page.goto(f"/tasks/{ppg_meeting.id}")
        expect(page.get_by_label("Why the carer / parent is not invited")).to_be_visible()
    finally:
        context.close()


def test_targets_are_added_and_removed_without_reloading_and_errors_name_them(page, epep):
    sign_in(page, "sw@demo.test")
    page.goto(f"/tasks/{epep.id}/sections/6")
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_role("button", name="Add a target").click()
    expect(page.get_by_role("group", name="Target 1", exact=True)).to_be_visible()
    expect(page.get_by_label("Target (specific and measurable)")).to_be_focused()
    page.get_by_role("button", name="Add another target").click()
    expect(page.get_by_role("group", name="Target 2", exact=True)).to_be_visible()
    page.get_by_role("button", name="Remove Target 1").click()
    expect(page.get_by_role("group", name="Target 2", exact=True)).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True  # no reload
    target = page.get_by_role("group", name="Target 1", exact=True)
    target.get_by_label("Target (specific and measurable)").fill("Read a chapter book each week")
    by_when = target.get_by_role("group", name="By when")
    by_when.get_by_label("Day").fill("29")
    by_when.get_by_label("Year").fill("2026")
    page.get_by_role("button", name="Save and continue").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Target 1: enter strategies and support")
    expect(summary).not_to_contain_text("Enter the name of the person who chaired the meeting")  # another section's
    summary.get_by_role("link", name="Target 1: by when must be a real date").click()
    expect(
        page.get_by_role("group", name="Target 1", exact=True)
        .get_by_role("group", name="By when")
        .get_by_label("Month")
    ).to_be_focused()
    assert serious_violations(page) == []
