"""The child's page, outside any PEP step: changing a child's details, reporting a change of school
for a child whose PEP waits for nothing, no second "becomes looked after" for a child in care, and
withdrawing a PEP with a reason. Who may do each, and 404 for those who may not see the child."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.models import Child, Event, Instance, User
from engine.people import add_user
from webui.grants import grant

from ..test_case_life import NEW_SCHOOL, with_message_forms
from ..test_runtime import start_review
from .conftest import snapshot

DETAILS = {
    "name": "Alex Example",
    "date_of_birth-day": "1",
    "date_of_birth-month": "5",
    "date_of_birth-year": "2014",
    "school": "Oak Primary",
    "legal_status": "",
    "in_area": "",
}


@pytest.fixture
def site(deployed_app, council, clock, engine):
    """The test processes with the case-life message forms, a review running for the first child, and an
    auditor granted that child."""
    with_message_forms(council, clock)
    with council.begin() as s:
        auditor = add_user(s, "auditor@demo.test", "Aud Inspector", roles=["Auditor"])
        auditor.password_hash = s.scalar(select(User.password_hash).where(User.email == "sw@demo.test"))
        grant(s, auditor, "C001", "Complaint ref 7", None, "admin@demo.test", engine.now())
    return {"review": start_review(engine, council)}


def events(council, kind, child_id="C001") -> list[Event]:
    with council() as s:
        return s.scalars(select(Event).where(Event.child_id == child_id, Event.kind == kind).order_by(Event.seq)).all()


# ---- (a) details -----------------------------------------------------------------------------------


def test_the_social_worker_changes_the_school_and_sees_it_on_the_childs_page(site, browser, council):
    sw = browser("sw@demo.test")
    page = sw.get("/children/C001")
    assert 'href="/children/C001/details"' in page.get_data(as_text=True)
    form = sw.get("/children/C001/details").get_data(as_text=True)
    assert 'value="Oak Primary"' in form and 'name="date_of_birth-day"' in form
    saved = sw.post(
        "/children/C001/details",
        {**DETAILS, "school": "Oak Primary Academy", "legal_status": "care_order", "in_area": "out"},
        page_url="/children/C001/details",
    )
    assert saved.status_code == 302
    shown = sw.get("/children/C001").get_data(as_text=True)
    assert "Oak Primary Academy" in shown and "Full care order (section 31)" in shown
    assert "Out of the council&#39;s area" in shown or "Out of the council's area" in shown
    [changed] = events(council, "child_details_changed")
    assert changed.data["changes"]["school"] == {"before": "Oak Primary", "after": "Oak Primary Academy"}


def test_details_with_mistakes_are_shown_again_with_govuk_errors_and_typed_text_escaped(site, browser, council):
    sw = browser("sw@demo.test")
    before = snapshot(council)
    response = sw.post(
        "/children/C001/details",
        {
            **DETAILS,
            "name": "",
            "school": "<script>alert(1)</script>",
            "date_of_birth-day": "31",
            "date_of_birth-month": "2",
        },
        page_url="/children/C001/details",
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "There is a problem" in body and "Error: Change the child" in body
    assert "Enter the child&#39;s full name" in body or "Enter the child's full name" in body
    assert 'href="#date_of_birth-day"' in body and "Date of birth must be a real date" in body
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert snapshot(council)["events"] == before["events"]


@pytest.mark.parametrize("who", ["dt@demo.test", "ea@demo.test", "yp@demo.test", "auditor@demo.test"])
def test_a_teacher_an_adviser_the_young_person_or_an_auditor_may_not_change_details(site, browser, council, who):
    person = browser(who)
    assert 'href="/children/C001/details"' not in person.get("/children/C001").get_data(as_text=True)
    assert person.get("/children/C001/details").status_code == 403
    assert person.post("/children/C001/details", {**DETAILS, "school": "Elsewhere"}).status_code == 403
    with council() as s:
        assert s.get(Child, "C001").school == "Oak Primary"


def test_someone_who_may_not_see_the_child_gets_404_for_its_details_and_withdrawal(site, browser, council):
    stranger = browser("other.dt@demo.test")  # the second child's teacher
    assert stranger.get("/children/C001/details").status_code == 404
    assert stranger.post("/children/C001/details", {**DETAILS, "school": "Elsewhere"}).status_code == 404
    assert stranger.get(f"/children/C001/peps/{site['review']}/withdraw").status_code == 404
    assert stranger.post(f"/children/C001/peps/{site['review']}/withdraw", {"reason": "x"}).status_code == 404
    with council() as s:
        assert s.get(Instance, site["review"]).status == "running"


# ---- (b) and (c) reporting changes -------------------------------------------------------------------


def test_a_change_of_school_is_offered_and_recorded_for_a_child_whose_pep_waits_for_nothing(site, browser, council):
    sw = browser("sw@demo.test")
    page = sw.get("/children/C002").get_data(as_text=True)
    assert "The child is changing school" in page and "The child is leaving care" in page
    assert "A child has become looked after" in page  # recorded, but no PEP has started for them yet
    done = sw.post(
        "/children/C002/changes/child_changes_school",
        {
            "new_school": NEW_SCHOOL["new_school"],
            "move_date-day": "20",
            "move_date-month": "4",
            "move_date-year": "2026",
            "reason": "A new foster home",
        },
        page_url="/children/C002/changes/child_changes_school",
        follow_redirects=True,
    )
    assert "no PEP was waiting for it" in done.get_data(as_text=True)
    with council() as s:
        assert s.get(Child, "C002").school == "Birch Secondary School"
    [reported] = events(council, "change_reported", "C002")
    assert reported.data["received_by"] == []


def test_becoming_looked_after_is_not_offered_nor_accepted_for_a_child_in_care(site, browser):
    sw = browser("sw@demo.test")
    assert "A child has become looked after" not in sw.get("/children/C001").get_data(as_text=True)
    assert sw.get("/children/C001/changes/child_becomes_looked_after").status_code == 404


def test_a_teacher_is_not_offered_a_change_of_school(site, browser):
    dt = browser("dt@demo.test")
    assert "The child is changing school" not in dt.get("/children/C001").get_data(as_text=True)
    assert dt.get("/children/C001/changes/child_changes_school").status_code == 404


# ---- (d) withdrawing a PEP -----------------------------------------------------------------------------


def test_the_vs_administrator_withdraws_a_pep_with_a_reason_and_the_timeline_shows_it(site, browser, council):
    admin = browser("admin@demo.test")
    url = f"/children/C001/peps/{site['review']}/withdraw"
    assert f'href="{url}"' in admin.get("/children/C001").get_data(as_text=True)
    confirm = admin.get(url).get_data(as_text=True)
    assert "Are you sure you want to withdraw this PEP?" in confirm and "Test termly review" in confirm
    refused = admin.post(url, {"reason": "  "}, page_url=url)
    assert refused.status_code == 422 and "Enter why the PEP is being withdrawn" in refused.get_data(as_text=True)
    done = admin.post(url, {"reason": "Started twice <b>by mistake</b>"}, page_url=url, follow_redirects=True)
    assert "Test termly review for Alex Example withdrawn." in done.get_data(as_text=True)
    with council() as s:
        assert s.get(Instance, site["review"]).status == "cancelled"
    timeline = admin.get("/audit/children/C001").get_data(as_text=True)
    assert "PEP withdrawn: Started twice &lt;b&gt;by mistake&lt;/b&gt;" in timeline
    assert admin.get(url).status_code == 404  # no longer running


@pytest.mark.parametrize("who", ["dt@demo.test", "sw@demo.test", "auditor@demo.test"])
def test_a_teacher_a_social_worker_or_an_auditor_may_not_withdraw_a_pep(site, browser, council, who):
    person = browser(who)
    url = f"/children/C001/peps/{site['review']}/withdraw"
    assert f'href="{url}"' not in person.get("/children/C001").get_data(as_text=True)
    assert person.get(url).status_code == 403
    assert person.post(url, {"reason": "I would rather not"}).status_code == 403
    with council() as s:
        assert s.get(Instance, site["review"]).status == "running"
