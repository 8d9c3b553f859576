"""The administration's forms word their problems as the task forms do, from the form's schema
(webui/adminforms.py, engine.forms.field_errors): each refusal names the field in GOV.UK's words, the
error summary links to the field (a date to its first wrong box), and what was typed is kept."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine import clock as clocks
from engine.models import AccessGrant, Child, School, User
from engine.people import add_user, set_case_team
from webui.adminforms import DETAILS

from ..test_case_life import with_message_forms
from ..test_runtime import start_review
from .conftest import PASSWORD_HASH


def summary_links(page: str) -> list[tuple[str, str]]:
    """(href, text) of each link of the page's error summary."""
    block = re.search(r'<div class="govuk-error-summary".*?</ul>', page, re.S)
    assert block, "no error summary"
    return [
        (href, html.unescape(re.sub(r"<.*?>", "", text)).strip())
        for href, text in re.findall(r'<a href="([^"]+)">(.*?)</a>', block.group(0), re.S)
    ]


def refused(response, message: str, field_id: str) -> str:
    """The page of a refused form: 422, the message in the summary linking to the field, which is there
    and carries the message too."""
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert (f"#{field_id}", message) in summary_links(page), summary_links(page)
    assert f'id="{field_id}"' in page
    assert page.count(html.escape(message, quote=False).replace("'", "&#39;")) >= 2 or page.count(message) >= 2
    return page


@pytest.fixture
def admin(deployed_app, browser):
    return browser("admin@demo.test")


def test_adding_a_person_names_each_field_and_keeps_what_was_typed(admin, council):
    response = admin.post(
        "/admin/users", {"name": "", "email": "pat.council.gov.uk", "organisation": "Elm"}, page_url="/admin/users"
    )
    page = refused(response, "Enter the person's name", "name")
    assert ("#email", "Enter an email address in the correct format, like name@council.gov.uk") in summary_links(page)
    assert 'value="pat.council.gov.uk"' in page and 'value="Elm"' in page
    with council() as s:
        assert s.scalar(select(User).where(User.email == "pat.council.gov.uk")) is None


def test_changing_a_person_refuses_an_organisation_too_long(admin, council):
    with council() as s:
        user_id = s.scalar(select(User.id).where(User.email == "dt@demo.test"))
    response = admin.post(
        f"/admin/users/{user_id}", {"organisation": "O" * 201, "active": "yes"}, page_url=f"/admin/users/{user_id}"
    )
    refused(response, "Organisation must be 200 characters or less", "organisation")
    with council() as s:
        assert s.get(User, user_id).organisation == "Oak Primary"


def test_adding_a_child_asks_for_the_date_of_birth_in_three_boxes(admin, council):
    response = admin.post(
        "/admin/children/new",
        {
            "child_id": "C900",
            "name": "",
            "date_of_birth-day": "12",
            "date_of_birth-year": "2015",
            "school": "Oak Primary",
        },
        page_url="/admin/children/new",
    )
    page = refused(response, "Enter the child's name", "name")
    assert ("#date_of_birth-month", "Date of birth must include a month") in summary_links(page)
    assert re.search(r'id="date_of_birth-day" name="date_of_birth-day" type="text" value="12"', page)
    assert 'value="2015"' in page and 'value="C900"' in page
    impossible = admin.post(
        "/admin/children/new",
        {
            "child_id": "C900",
            "name": "Casey",
            "date_of_birth-day": "31",
            "date_of_birth-month": "2",
            "date_of_birth-year": "2015",
        },
        page_url="/admin/children/new",
    )
    refused(impossible, "Date of birth must be a real date", "date_of_birth-day")
    unborn = admin.post(
        "/admin/children/new",
        {
            "child_id": "C900",
            "name": "Casey",
            "date_of_birth-day": "1",
            "date_of_birth-month": "1",
            "date_of_birth-year": "2199",
        },
        page_url="/admin/children/new",
    )
    refused(unborn, "Date of birth must be today or in the past", "date_of_birth-day")
    used = admin.post("/admin/children/new", {"child_id": "C001", "name": "Casey"}, page_url="/admin/children/new")
    assert used.status_code == 422 and "C001" in summary_links(used.get_data(as_text=True))[0][1]
    with council() as s:
        assert s.get(Child, "C900") is None
    added = admin.post(
        "/admin/children/new",
        {
            "child_id": "C900",
            "name": "Casey",
            "date_of_birth-day": "1",
            "date_of_birth-month": "5",
            "date_of_birth-year": "2015",
        },
        page_url="/admin/children/new",
    )
    assert added.status_code == 302
    with council() as s:
        assert s.get(Child, "C900").date_of_birth.isoformat() == "2015-05-01"


def test_a_case_team_choice_not_offered_is_named_by_its_role(admin):
    response = admin.post(
        "/admin/children/C001/team", {"social_worker": "auditor@nowhere.test"}, page_url="/admin/children/C001/team"
    )
    refused(response, "Social Worker must be chosen from the list", "social_worker")


def test_a_school_names_its_urn_and_name(admin, council):
    response = admin.post("/admin/schools", {"urn": "12", "name": " ", "teachers": ""}, page_url="/admin/schools")
    page = refused(response, "URN must be 6 or 7 digits, like 100000 (find it on Get Information about Schools)", "urn")
    assert 'value="12"' in page
    nameless = admin.post("/admin/schools", {"urn": "100001", "name": ""}, page_url="/admin/schools")
    refused(nameless, "Enter the school's name", "name")
    admin.post("/admin/schools", {"urn": "100001", "name": "Oak Primary"}, page_url="/admin/schools")
    renamed = admin.post("/admin/schools/100001", {"name": ""}, page_url="/admin/schools/100001")
    refused(renamed, "Enter the school's name", "name")
    with council() as s:
        assert s.get(School, "100001").name == "Oak Primary"


def test_an_import_without_a_file_asks_for_one(admin):
    response = admin.post("/admin/import", {}, page_url="/admin/import")
    refused(response, "Select a file for the extract (CSV)", "extract")


def test_giving_an_auditor_access_names_each_field(admin, council, clock):
    with clocks.using(clock), council.begin() as s:
        add_user(s, "auditor@demo.test", "Aud Inspector", roles=["Auditor"], password_hash=PASSWORD_HASH)
    response = admin.post(
        "/admin/grants",
        {"scope": "child", "reason": "", "expires-day": "40", "expires-month": "1", "expires-year": "2027"},
        page_url="/admin/grants",
    )
    page = refused(response, "Select the auditor", "auditor")
    links = summary_links(page)
    assert ("#child_id", "Enter the case number of the child") in links
    assert ("#reason", "Enter why the auditor needs access (the inspection, complaint or request)") in links
    assert ("#expires-day", "Last day of access must be a real date") in links
    assert [href for href, _ in links] == ["#auditor", "#child_id", "#reason", "#expires-day"]  # in the form's order
    assert 'value="40"' in page
    unknown = admin.post(
        "/admin/grants",
        {"auditor": "auditor@demo.test", "scope": "child", "child_id": "C999", "reason": "Complaint"},
        page_url="/admin/grants",
    )
    refused(unknown, "Enter the case number of a child of the council", "child_id")
    with council() as s:
        assert s.scalars(select(AccessGrant)).all() == []


def test_naming_a_person_for_a_task_says_whom_to_select(admin, engine, council):
    start_review(engine, council, "C002")
    with council.begin() as s:
        set_case_team(s, "C002", {"Social Worker": None}, actor="admin@demo.test")
    page = admin.get("/admin/needs-a-person").get_data(as_text=True)
    task_id = re.search(r'action="/admin/needs-a-person/([^"]+)"', page).group(1)
    response = admin.post(f"/admin/needs-a-person/{task_id}", {"person": ""}, page_url="/admin/needs-a-person")
    refused(response, "Select Blair Sample's Social Worker", f"person-{task_id}")


def test_changing_a_childs_details_names_each_field_and_keeps_what_was_typed(admin, council):
    response = admin.post(
        "/children/C001/details",
        {
            "name": "",
            "date_of_birth-day": "1",
            "date_of_birth-month": "2",
            "date_of_birth-year": "14",
            "legal_status": "adopted_by_wolves",
        },
        page_url="/children/C001/details",
    )
    page = refused(response, "Enter the child's full name", "name")
    links = summary_links(page)
    assert ("#date_of_birth-year", "Date of birth must include a year with 4 numbers") in links
    assert ("#legal_status", "Legal status must be chosen from the list") in links
    assert 'value="14"' in page
    with council() as s:
        assert s.get(Child, "C001").name == "Alex Example"


@pytest.mark.parametrize(
    ("answers", "field", "message"),
    [
        ({"name": " "}, "name", "Enter the child's full name"),
        ({"name": "x" * 201}, "name", "Full name must be 200 characters or less"),
        (
            {"date_of_birth-day": "1", "date_of_birth-year": "2014"},
            "date_of_birth",
            "Date of birth must include a month",
        ),
        ({"date_of_birth-year": "2014"}, "date_of_birth", "Date of birth must include a day and month"),
        (
            {"date_of_birth-day": "31", "date_of_birth-month": "2", "date_of_birth-year": "2014"},
            "date_of_birth",
            "Date of birth must be a real date",
        ),
        (
            {"date_of_birth-day": "3", "date_of_birth-month": "3", "date_of_birth-year": "2199"},
            "date_of_birth",
            "Date of birth must be today or in the past",
        ),
        ({"school": "a\x00b"}, "school", "School or setting: remove the character that is not text (NUL)"),
        ({"in_area": "moon"}, "in_area", "Where the child lives must be chosen from the list"),
    ],
)
def test_details_typed_in_are_refused_field_by_field_in_govuk_words(answers, field, message):
    _data, errors = DETAILS.read(MultiDict({"name": "Alex Example", **answers}))
    assert errors == {field: message}


def test_details_typed_in_are_read_as_the_record_holds_them():
    data, errors = DETAILS.read(
        MultiDict(
            {
                "name": " Alex Example ",
                "date_of_birth-day": "1",
                "date_of_birth-month": "5",
                "date_of_birth-year": "2014",
                "school": "",
                "legal_status": "section_20",
                "in_area": "in",
            }
        )
    )
    assert errors == {}
    assert data == {
        "name": "Alex Example",
        "date_of_birth": "2014-05-01",
        "legal_status": "section_20",
        "in_area": "in",
    }


def test_withdrawing_a_pep_asks_why(admin, engine, council):
    instance_id = start_review(engine, council)
    response = admin.post(
        f"/children/C001/peps/{instance_id}/withdraw",
        {"reason": "  "},
        page_url=f"/children/C001/peps/{instance_id}/withdraw",
    )
    refused(response, "Enter why the PEP is being withdrawn", "reason")


def test_a_report_of_a_change_names_its_fields(deployed_app, browser, council, clock, engine):
    with_message_forms(council, clock)
    social_worker = browser("sw@demo.test")
    response = social_worker.post(
        "/children/C002/changes/child_changes_school", {}, page_url="/children/C002/changes/child_changes_school"
    )
    assert response.status_code == 422
    links = summary_links(response.get_data(as_text=True))
    assert links and all(href.startswith("#f-") for href, _ in links)
    assert all(text.startswith(("Enter ", "Select ", "Answer ")) for _, text in links), links
