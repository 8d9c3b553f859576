"""In a real browser: the VS education adviser opens the QA step and reads the designated teacher's ePEP
beside the form (stacked above it on a phone), then opens the PEP itself from there."""

from __future__ import annotations

from playwright.sync_api import expect

from ..web.test_review_pages import qa_reviews, to_qa
from .conftest import sign_in
from .test_accessibility import serious_violations


def test_the_adviser_reads_the_epep_beside_the_qa_form(page, deployed_app, engine, council, clock):
    qa_reviews(council, clock, "pep")
    instance_id, _qa = to_qa(engine, council)

    sign_in(page, "ea@demo.test")
    page.get_by_role("link", name="To claim from pools").click()
    page.get_by_role("button", name="Claim Quality-assure the PEP for Alex Example").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Quality-assure the PEP")
    reviewed = page.get_by_role("region", name="The PEP you are reviewing")
    expect(reviewed.get_by_role("heading", name="Complete the PEP")).to_be_visible()
    expect(reviewed).to_contain_text("Attendance (%)")
    expect(reviewed).to_contain_text("96.5")
    expect(reviewed).to_contain_text("Read a chapter book each week")
    rating = page.get_by_label("Green")
    expect(rating).to_be_visible()

    side, form = reviewed.bounding_box(), page.locator("form", has=rating).bounding_box()
    assert side["x"] + side["width"] <= form["x"], "on a desktop the PEP is beside the form"
    assert abs(side["y"] - form["y"]) < 120, "… at the same height"
    assert serious_violations(page) == []

    page.set_viewport_size({"width": 375, "height": 800})
    side, form = reviewed.bounding_box(), page.locator("form", has=rating).bounding_box()
    assert side["y"] + side["height"] <= form["y"], "on a phone the PEP is above the form"

    page.set_viewport_size({"width": 1280, "height": 900})
    reviewed.get_by_role("link", name="Open the PEP").click()
    page.wait_for_url(f"**/children/C001/peps/{instance_id}")
    expect(page.get_by_role("heading", name="Complete the PEP")).to_be_visible()
