"""In a real browser: the social worker corrects a child's school on the details page (after a date
that is not a real one) and reports a change of school for a child whose PEP waits for nothing; the VS
administrator withdraws a PEP with a reason and finds it in the child's timeline. Each new page, and
its error summary, passes axe (WCAG 2.2 A and AA)."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from engine.models import Child, Event, Instance

from ..test_case_life import with_message_forms
from ..test_runtime import start_review
from .conftest import sign_in, sign_out
from .test_accessibility import serious_violations


def test_edit_a_school_report_a_change_of_school_and_withdraw_a_pep(page, deployed_app, engine, council, clock):
    with_message_forms(council, clock)
    instance_id = start_review(engine, council)

    sign_in(page, "sw@demo.test")
    page.goto("/children/C001")
    page.get_by_role("link", name="Change the child's details").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Change the child's details")
    assert serious_violations(page) == []
    page.get_by_label("School or setting").fill("Oak Primary Academy")
    page.get_by_label("Day").fill("31")
    page.get_by_label("Month").fill("2")
    page.get_by_role("button", name="Save the details").click()
    summary = page.locator(".govuk-error-summary")
    expect(summary).to_contain_text("Date of birth must be a real date")
    assert serious_violations(page) == []
    summary.get_by_role("link", name="Date of birth must be a real date").click()
    expect(page.get_by_label("Day")).to_be_focused()
    page.get_by_label("Day").fill("1")
    page.get_by_label("Month").fill("5")
    page.get_by_label("Full care order (section 31)").check()
    page.get_by_role("button", name="Save the details").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Alex Example's details saved.")
    expect(page.locator(".govuk-summary-list")).to_contain_text("Oak Primary Academy")

    page.goto("/children/C002")  # no PEP is running for the second child: nothing waits for the change
    page.get_by_role("link", name="The child is changing school").click()
    assert serious_violations(page) == []
    page.get_by_label("New school or setting").fill("Birch Secondary School")
    page.get_by_label("Day").fill("20")
    page.get_by_label("Month").fill("4")
    page.get_by_label("Year").fill("2026")
    page.get_by_role("button", name="Record the change").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("no PEP was waiting for it")
    expect(page.locator(".govuk-summary-list")).to_contain_text("Birch Secondary School")
    sign_out(page)

    sign_in(page, "admin@demo.test")
    page.goto("/children/C001")
    page.get_by_role("link", name="Withdraw the Test termly review").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Are you sure you want to withdraw this PEP?")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Withdraw this PEP").click()
    expect(page.locator(".govuk-error-summary")).to_contain_text("Enter why the PEP is being withdrawn")
    assert serious_violations(page) == []
    page.get_by_label("Why is the PEP being withdrawn?").fill("Started twice by mistake")
    page.get_by_role("button", name="Withdraw this PEP").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text("Test termly review for Alex Example withdrawn.")
    expect(page.get_by_text("No PEP is in progress.")).to_be_visible()
    page.goto("/audit/children/C001")
    expect(page.get_by_text("PEP withdrawn: Started twice by mistake")).to_be_visible()
    expect(page.get_by_text("Changed the child's details (School or setting, Legal status)")).to_be_visible()
    assert serious_violations(page) == []

    with council() as s:
        assert s.get(Instance, instance_id).status == "cancelled"
        assert (s.get(Child, "C001").school, s.get(Child, "C002").school) == (
            "Oak Primary Academy",
            "Birch Secondary School",
        )
        assert s.scalar(select(Event).where(Event.kind == "change_reported")).data["received_by"] == []
