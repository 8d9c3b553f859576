"""Administration at a council's size: people and children found by search and filters, 50 a page,
and downloaded as CSV; case-team lists offering only the people who are that role; a school directory
whose designated teacher the school's children follow; importing a case system's extract on the web
(a dry run, then applying it, idempotent, bad rows named by number)."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import insert, select

from engine import clock as clocks
from engine.deploy import Bundle, deploy
from engine.models import CaseTeamMember, Child, Event, Instance, School, User
from engine.people import add_user, case_team

from ..conftest import ROOT
from ..test_import import EXTRACT, HEADINGS


@pytest.fixture
def many(council, clock):
    """120 more children (60 at Oak Primary, in the directory, with Dana as its teacher) and 80 more people."""
    with council.begin() as s:
        s.add(School(urn="100001", name="Oak Primary"))
        s.flush()
        s.execute(
            insert(Child),
            [
                {
                    "id": f"K{n:03d}",
                    "name": f"Kid {n:03d} Example",
                    "in_care": n % 10 != 0,
                    "school": "Oak Primary" if n % 2 else None,
                    "school_urn": "100001" if n % 2 else None,
                    "created_at": clock.now(),
                }
                for n in range(120)
            ],
        )
        s.execute(
            insert(User),
            [{"email": f"person{n:03d}@demo.test", "name": f"Person {n:03d}", "active": n % 4 != 0} for n in range(80)],
        )
        sw = s.scalar(select(User.id).where(User.email == "sw@demo.test"))
        s.execute(
            insert(CaseTeamMember),
            [{"child_id": f"K{n:03d}", "role_key": "social_worker", "user_id": sw} for n in range(0, 120, 3)],
        )
    return council


def test_children_are_found_by_name_school_care_and_social_worker_fifty_a_page(many, deployed_app, browser):
    admin = browser("admin@demo.test")
    first = admin.get("/children").get_data(as_text=True)
    assert "122 children you can see, 1 to 50 shown" in first and 'href="/children?page=3"' in first
    last = admin.get("/children?page=3").get_data(as_text=True)
    assert "101 to 122 shown" in last
    assert "60 children you can see" in admin.get("/children?school=100001&in_care=yes").get_data(as_text=True)
    assert "12 children you can see" in admin.get("/children?in_care=no").get_data(as_text=True)
    sw = admin.get("/children").get_data(as_text=True)
    assert "Sam Social-Worker" in sw  # the social worker filter, for those who see every child
    with many() as s:
        sw_id = s.scalar(select(User.id).where(User.email == "sw@demo.test"))
    assert "42 children you can see" in admin.get(f"/children?social_worker={sw_id}").get_data(as_text=True)
    assert "1 child you can see" in admin.get("/children?q=kid 007").get_data(as_text=True)
    assert "0 children you can see" in admin.get("/children?q=%25").get_data(as_text=True)  # a % is a %, not "any"


def test_a_teacher_finds_only_their_own_children_and_no_social_worker_filter(many, deployed_app, browser):
    teacher = browser("dt@demo.test").get("/children?page=9").get_data(as_text=True)
    assert "1 child you can see, 1 to 1 shown" in teacher and "Alex Example" in teacher
    assert 'name="social_worker"' not in teacher


def test_children_download_as_csv_as_filtered_and_only_those_the_person_may_see(many, deployed_app, browser):
    response = browser("admin@demo.test").get("/children.csv?school=100001")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert response.mimetype == "text/csv" and rows[0][:3] == ["Child ID", "Name", "Date of birth"]
    assert len(rows) == 61 and {row[5] for row in rows[1:]} == {"100001"}
    mine = list(csv.reader(io.StringIO(browser("dt@demo.test").get("/children.csv").get_data(as_text=True))))
    assert [row[0] for row in mine[1:]] == ["C001"]


def test_a_cell_that_looks_like_a_formula_is_written_as_text(council, deployed_app, browser):
    with council.begin() as s:
        s.get(Child, "C001").name = '=HYPERLINK("http://evil.test")'
    rows = list(csv.reader(io.StringIO(browser("admin@demo.test").get("/children.csv?q=C001").get_data(as_text=True))))
    assert rows[1][1].startswith("'=")


def test_people_are_found_by_name_role_and_status_fifty_a_page(many, deployed_app, browser):
    admin = browser("admin@demo.test")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "87 people, 1 to 50 shown" in page and "Pages of people" in page
    assert "Issue a new password" not in page  # each person's roles and password are changed on their own page
    assert "2 people" in admin.get("/admin/users?role=vs_education_adviser").get_data(as_text=True)
    assert "20 people" in admin.get("/admin/users?status=closed").get_data(as_text=True)
    assert "1 person" in admin.get("/admin/users?q=ERIN").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(admin.get("/admin/users.csv?status=closed").get_data(as_text=True))))
    assert rows[0] == ["Name", "Email", "Organisation", "Council-wide roles", "Can sign in"] and len(rows) == 21
    with many() as s:
        erin = s.scalar(select(User.id).where(User.email == "ea@demo.test"))
    person = admin.get(f"/admin/users/{erin}").get_data(as_text=True)
    assert "Erin Adviser" in person and "Issue a new password" in person


def test_the_case_team_offers_only_people_who_are_each_role(council, deployed_app, browser):
    with council.begin() as s:
        add_user(s, "auditor@demo.test", "Aud Inspector", roles=["Auditor"])
        add_user(s, "new.sw@demo.test", "Nia Worker", roles=["Social Worker"])
    admin = browser("admin@demo.test")
    page = admin.get("/admin/children/C002/team").get_data(as_text=True)
    social_worker = page.split('id="social_worker"')[1].split("</select>")[0]
    young_person = page.split('id="young_person"')[1].split("</select>")[0]
    teacher = page.split('id="designated_teacher"')[1].split("</select>")[0]
    assert "new.sw@demo.test" in social_worker and "sw@demo.test" in social_worker
    assert "dt@demo.test" not in social_worker and "auditor@demo.test" not in page
    assert "yp@demo.test" not in young_person  # the first child's young person
    assert "other.dt@demo.test" in teacher and "dt@demo.test" in teacher and "ea@demo.test" not in teacher
    refused = admin.post(
        "/admin/children/C002/team", {"social_worker": "dt@demo.test"}, page_url="/admin/children/C002/team"
    )
    assert refused.status_code == 422 and "Social Worker must be chosen from the list" in refused.get_data(as_text=True)
    saved = admin.post(
        "/admin/children/C002/team", {"social_worker": "new.sw@demo.test"}, page_url="/admin/children/C002/team"
    )
    assert saved.status_code == 302
    with council() as s:
        assert case_team(s, "C002")["social_worker"].email == "new.sw@demo.test"


def test_a_school_in_the_directory_sets_its_childrens_designated_teacher(council, deployed_app, browser, engine):
    admin = browser("admin@demo.test")
    added = admin.post(
        "/admin/schools",
        {"urn": "100001", "name": "Oak Primary", "teachers": "other.dt@demo.test"},
        page_url="/admin/schools",
    )
    assert added.status_code == 302
    with council() as s:
        assert case_team(s, "C001")["designated_teacher"].email == "dt@demo.test"  # typed school: not yet linked
    details = admin.post(
        "/children/C001/details",
        {
            "name": "Alex Example",
            "school": "oak primary",
            "date_of_birth-day": "1",
            "date_of_birth-month": "5",
            "date_of_birth-year": "2014",
        },
        page_url="/children/C001/details",
    )
    assert details.status_code == 302
    with council() as s:
        child = s.get(Child, "C001")
        assert child.school_urn == "100001"
        assert case_team(s, "C001")["designated_teacher"].email == "other.dt@demo.test"
        change = s.scalar(select(Event).where(Event.child_id == "C001", Event.kind == "case_team_changed"))
        assert change.data["school_urn"] == "100001" and change.data["from"] == "dt@demo.test"
    changed = admin.post(
        "/admin/schools/100001",
        {"name": "Oak Primary School", "teachers": "dt@demo.test"},
        page_url="/admin/schools/100001",
    )
    assert changed.status_code == 302
    with council() as s:
        assert case_team(s, "C001")["designated_teacher"].email == "dt@demo.test"  # follows the school's teacher
    unknown = admin.post(
        "/admin/schools/100001", {"name": "Oak", "teachers": "nobody@demo.test"}, page_url="/admin/schools/100001"
    )
    assert unknown.status_code == 422 and "There is no one with the email address nobody@demo.test" in unknown.get_data(
        as_text=True
    )
    assert admin.post("/admin/schools", {"urn": "12", "name": "X"}, page_url="/admin/schools").status_code == 422


def test_leaving_a_school_for_one_not_in_the_directory_takes_the_old_schools_teacher_off(
    council, deployed_app, browser
):
    admin = browser("admin@demo.test")
    admin.post(
        "/admin/schools",
        {"urn": "100001", "name": "Oak Primary", "teachers": "dt@demo.test"},
        page_url="/admin/schools",
    )
    form = {"name": "Alex Example", "date_of_birth-day": "1", "date_of_birth-month": "5", "date_of_birth-year": "2014"}
    admin.post("/children/C001/details", {**form, "school": "100001"}, page_url="/children/C001/details")
    admin.post("/children/C001/details", {**form, "school": "Birch Secondary"}, page_url="/children/C001/details")
    with council() as s:
        assert s.get(Child, "C001").school_urn is None
        assert "designated_teacher" not in case_team(s, "C001")


# ---- importing on the web ------------------------------------------------------------------------------


@pytest.fixture
def importing(deployed_app, council, clock, tmp_path):
    deployed_app.config["IMPORT_FOLDER"] = str(tmp_path / "imports")
    with clocks.using(clock), council.begin() as s:
        deploy(s, Bundle.from_dirs(ROOT), actor="owner@demo.test")
    return deployed_app


def upload(person, text: str):
    return person.post(
        "/admin/import",
        {"extract": (io.BytesIO(text.encode()), "extract.csv")},
        page_url="/admin/import",
        content_type="multipart/form-data",
    )


def digest_of(html: str) -> str:
    return html.split('name="digest" value="')[1].split('"')[0]


def test_an_import_is_checked_then_applied_then_changes_nothing_again(importing, council, browser):
    admin = browser("admin@demo.test")
    dry = upload(admin, EXTRACT)
    html = dry.get_data(as_text=True)
    assert dry.status_code == 200 and "What importing this file would do" in html
    assert "Row 2: Alex Example (C001): Unique pupil number" in html and "Remy Recent (N002)" in html
    with council() as s:
        assert s.get(Child, "N001") is None  # a dry run changes nothing
    applied = admin.post("/admin/import/apply", {"digest": digest_of(html)}, page_url="/admin/import")
    assert applied.status_code == 302 and applied.location.endswith("/children")
    with council() as s:
        assert s.get(Child, "N001").school_urn == "100001"
        assert [i.definition.process_id for i in s.scalars(select(Instance).where(Instance.child_id == "N002"))] == [
            "initial_pep"
        ]
        events = len(s.scalars(select(Event)).all())
    again = upload(admin, EXTRACT).get_data(as_text=True)

    def figure(title):
        return again.split(title)[1].split("</dd>")[0].split(">")[-1].strip()

    assert (figure("Children to add"), figure("Children to change"), figure("Initial PEPs to start")) == ("0", "0", "0")
    assert figure("Children left alone") == "3 as the file has them, 1 not in the file"
    admin.post("/admin/import/apply", {"digest": digest_of(again)}, page_url="/admin/import")
    with council() as s:
        assert len(s.scalars(select(Event).where(Event.kind != "record_viewed")).all()) <= events
        assert s.scalar(select(Child).where(Child.id == "N001")).name == "Nova New"


def test_an_import_with_bad_rows_names_them_and_cannot_be_applied(importing, council, browser):
    admin = browser("admin@demo.test")
    response = upload(admin, HEADINGS + "N001,Nova,30/02/2015,,,,,,,\n,Nobody,,,,,,,,\n")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "The file has 2 problems" in html
    assert "Row 2: the date of birth “30/02/2015” is not a real date" in html
    assert "Row 3: the child&#39;s id is missing" in html and 'name="digest"' not in html
    missing = upload(admin, "Forename,Surname\nA,B\n")
    assert missing.status_code == 422 and "no column for" in missing.get_data(as_text=True)
    assert admin.post("/admin/import/apply", {"digest": "0" * 64}, page_url="/admin/import").status_code == 302
    with council() as s:
        assert s.get(Child, "N001") is None


def test_what_an_import_brings_is_escaped_on_the_page(importing, browser):
    html = upload(browser("admin@demo.test"), HEADINGS + "C001,<script>alert(1)</script>,,,,,,,,\n").get_data(
        as_text=True
    )
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize("email", ["sw@demo.test", "dt@demo.test", "ea@demo.test", "yp@demo.test"])
def test_only_the_vs_administrator_imports(importing, browser, email):
    person = browser(email)
    assert person.get("/admin/import").status_code == 403
    assert upload(person, EXTRACT).status_code == 403


def test_dates_are_shown_as_people_read_them(importing, browser):
    assert date(2026, 2, 25)  # the recent entry of EXTRACT
    html = upload(browser("admin@demo.test"), EXTRACT).get_data(as_text=True)
    assert "entered care 25 February 2026" in html
