"""In a real browser: the social worker, the designated teacher and the VS adviser take one termly
review from start to QA sign-off, with a validation error and its fix on the way."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from engine.models import Instance

from ..test_runtime import start_review
from .conftest import sign_in, sign_out


def test_a_termly_review_from_start_to_qa_sign_off(page, deployed_app, engine, council):
    instance_id = start_review(engine, council)

    sign_in(page, "sw@demo.test")
    page.get_by_role("link", name="Arrange the PEP meeting").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Arrange the PEP meeting")
    page.get_by_label("Day").fill("31")
    page.get_by_label("Month").fill("2")
    page.get_by_label("Year").fill("2026")
    page.get_by_role("button", name="Submit").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("There is a problem")
    expect(summary).to_contain_text("Enter venue")
    expect(summary).to_contain_text("Meeting date must be a real date")
    summary.get_by_role("link", name="Enter venue").click()
    expect(page.get_by_label("Venue")).to_be_focused()
    page.get_by_label("Venue").fill("Oak Primary, meeting room 2")
    page.get_by_label("Day").fill("10")
    page.get_by_label("Month").fill("3")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text(
        "Arrange the PEP meeting for Alex Example is done"
    )
    sign_out(page)

    sign_in(page, "dt@demo.test")
    page.get_by_role("link", name="Complete the PEP").click()
    page.get_by_label("Attendance (%)").fill("96")
    page.get_by_role("button", name="Add a SMART target").click()
    page.get_by_label("Target").fill("Read a chapter book each week")
    page.get_by_role("group", name="By when").get_by_label("Day").fill("29")
    page.get_by_role("group", name="By when").get_by_label("Month").fill("5")
    page.get_by_role("group", name="By when").get_by_label("Year").fill("2026")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Complete the PEP for Alex Example is done")
    sign_out(page)

    sign_in(page, "ea@demo.test")
    page.get_by_role("link", name="To claim from pools").click()
    page.get_by_role("button", name="Claim Quality-assure the PEP for Alex Example").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Quality-assure the PEP")
    page.get_by_label("Green").check()
    page.get_by_label("Feedback (optional)").fill("Clear, SMART targets. Signed off.")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("is done")

    with council() as s:
        assert s.get(Instance, instance_id).status == "completed"
        assert s.scalars(select(Instance)).one().ended_at is not None
    page.goto("/children/C001")
    expect(page.get_by_role("heading", name="Earlier PEPs")).to_be_visible()
    expect(page.get_by_text("(completed)")).to_be_visible()
