"""In a real browser: what the diagram refuses is refused on the page (never "Done"), a PEP sent back
says so in the inbox and on its page, and a page that went stale keeps what was typed and says why."""

from __future__ import annotations

from playwright.sync_api import expect

from engine.timers import fire_due_timers

from ..test_runtime import MEETING, PEP, complete, only_task, start_review
from .conftest import sign_in, sign_out
from .test_accessibility import serious_violations


def fill_date(page, day: str, month: str, year: str) -> None:
    page.get_by_label("Day").fill(day)
    page.get_by_label("Month").fill(month)
    page.get_by_label("Year").fill(year)


def test_a_refused_date_stays_on_the_page_and_a_pep_rated_red_comes_back_marked_sent_back(
    page, deployed_app, engine, council
):
    start_review(engine, council)
    sign_in(page, "sw@demo.test")
    page.get_by_role("link", name="Arrange the PEP meeting").click()
    fill_date(page, "14", "3", "2026")  # a Saturday
    page.get_by_label("Venue").fill("Oak Primary, meeting room 2")
    page.get_by_role("button", name="Submit").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Choose a working day")
    expect(page.locator(".govuk-notification-banner--success")).to_have_count(0)
    expect(page.get_by_label("Venue")).to_have_value("Oak Primary, meeting room 2")
    fill_date(page, "10", "3", "2026")
    page.get_by_role("button", name="Submit").click()
    banner = page.locator(".govuk-notification-banner--success")
    expect(banner).to_contain_text(
        "Arrange the PEP meeting for Alex Example is done. Next: Complete the PEP (Dana Teacher, by"
    )
    sign_out(page)

    complete(engine, council, only_task(council), "dt@demo.test", PEP)
    complete(engine, council, only_task(council), "ea@demo.test", {"rating": "Red", "feedback": "Targets unclear"})
    sign_in(page, "dt@demo.test")
    row = page.locator("tr", has=page.get_by_role("link", name="Complete the PEP"))
    expect(row).to_contain_text("Sent back")
    assert serious_violations(page) == []
    row.get_by_role("link", name="Complete the PEP").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text(
        "Sent back: the VS Education Adviser rated the PEP Red"
    )
    assert serious_violations(page) == []


def test_a_page_withdrawn_by_its_deadline_keeps_what_was_typed_and_says_why(page, deployed_app, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", {**MEETING, "meeting_date": "2026-02-23"})
    engine.clock.set("2026-03-02T23:45:00+00:00")  # the PEP is due by the end of today
    sign_in(page, "dt@demo.test")
    page.get_by_role("link", name="Complete the PEP").click()
    page.get_by_label("Attendance (%)").fill("96")
    engine.clock.set("2026-03-03T00:05:00+00:00")  # the deadline passed while the page was open:
    fire_due_timers(engine, council)  # the step went to the adviser
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Complete the PEP is no longer open")
    expect(page.locator("main")).to_contain_text("its deadline passed")
    expect(page.locator(".govuk-summary-list")).to_contain_text("96")
    assert serious_violations(page) == []
