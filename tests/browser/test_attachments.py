"""In a real browser: the social worker adds a document to "Other documents", the answers are refused
once (the file stays attached), then submitted; the file is listed on the child's page and downloads."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from ..test_runtime import only_task, start_review
from ..web.test_attachments import files_form  # noqa: F401 - the meeting form with file fields
from .conftest import sign_in
from .test_accessibility import serious_violations

REPORT = {"name": "school-report.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 synthetic report"}


def test_a_document_added_to_a_list_is_kept_through_a_refusal_listed_and_downloadable(
    page,
    files_form,  # noqa: F811 - the fixture imported above
    engine,
    council,
):
    start_review(engine, council)
    task = only_task(council)

    sign_in(page, "sw@demo.test")
    page.goto(f"/tasks/{task.id}")
    page.get_by_label("Venue").fill("Oak Primary, meeting room 2")
    page.get_by_role("button", name="Add a document").click()
    page.get_by_label("Document 1").set_input_files(REPORT)
    page.get_by_role("button", name="Submit").click()  # no meeting date: refused, the file kept
    expect(page.locator(".govuk-error-summary")).to_contain_text("Enter meeting date")
    expect(page.get_by_role("link", name="school-report.pdf")).to_be_visible()
    assert serious_violations(page) == []

    page.get_by_label("Day").fill("10")
    page.get_by_label("Month").fill("3")
    page.get_by_label("Year").fill("2026")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".govuk-notification-banner")).to_contain_text(
        "Arrange the PEP meeting for Alex Example is done"
    )

    page.goto("/children/C001")
    attachments = page.locator("#attachments")
    expect(attachments).to_contain_text("Arrange the PEP meeting")
    assert serious_violations(page) == []
    with page.expect_download() as download:
        attachments.get_by_role("link", name="school-report.pdf").click()
    assert download.value.suggested_filename == "school-report.pdf"
    assert Path(download.value.path()).read_bytes() == REPORT["buffer"]


def test_a_file_attached_to_a_draft_can_be_removed(page, files_form, engine, council):  # noqa: F811
    start_review(engine, council)
    sign_in(page, "sw@demo.test")
    page.goto(f"/tasks/{only_task(council).id}")
    page.get_by_label("Evidence (optional)").set_input_files({**REPORT, "name": "wrong-child.pdf"})
    page.get_by_role("button", name="Save and come back later").click()
    expect(page.get_by_role("link", name="wrong-child.pdf")).to_be_visible()
    assert serious_violations(page) == []
    page.get_by_role("button", name="Remove wrong-child.pdf from Evidence").click()
    expect(page.get_by_label("Evidence (optional)")).to_be_visible()
    expect(page.get_by_text("wrong-child.pdf")).to_have_count(0)
    page.goto("/children/C001")
    expect(page.locator("#attachments")).to_have_text("None.")
