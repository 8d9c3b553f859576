"""Automated accessibility checks (axe-core, WCAG 2.2 A and AA rules) of the pages people use most:
no serious or critical violation on the inbox, a task form (with its error summary, and with the PEP
beside it on a review step), a child's page, the process owners' modeller and forms editor, and the
auditors' timeline and replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from engine import clock as clocks
from engine.deploy import Bundle, deploy
from engine.people import add_user
from tools.bpmn_layout import rewrite
from webui.grants import grant

from ..conftest import BASIC_BUNDLE
from ..test_runtime import MEETING, PEP, complete, only_task, start_review
from ..web.conftest import PASSWORD_HASH
from ..web.test_review_pages import qa_reviews, to_qa
from .conftest import sign_in

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def serious_violations(page) -> list[str]:
    if not AXE.exists():
        pytest.skip("axe-core is not installed (npm ci installs it)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        f"async () => await axe.run(document, {{runOnly: {{type: 'tag', values: {json.dumps(TAGS)}}}}})"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
def a_review_at_the_teacher(deployed_app, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    return only_task(council)


def test_the_inbox_has_no_serious_accessibility_problems(page, a_review_at_the_teacher):
    sign_in(page, "dt@demo.test")
    assert serious_violations(page) == []


def test_a_task_form_and_its_error_summary_have_no_serious_accessibility_problems(page, a_review_at_the_teacher):
    sign_in(page, "dt@demo.test")
    page.goto(f"/tasks/{a_review_at_the_teacher.id}")
    assert serious_violations(page) == []
    page.get_by_role("button", name="Add a SMART target").click()
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".govuk-error-summary")).to_be_visible()  # waits for the page the POST returns
    assert serious_violations(page) == []


def test_a_review_step_with_the_pep_beside_its_form_has_no_serious_accessibility_problems(
    page, deployed_app, engine, council, clock
):
    qa_reviews(council, clock, "pep")
    _instance_id, qa = to_qa(engine, council)
    sign_in(page, "ea@demo.test")
    page.goto(f"/tasks/{qa.id}")
    expect(page.get_by_role("region", name="The PEP you are reviewing")).to_be_visible()
    assert serious_violations(page) == []
    page.get_by_role("button", name="Submit").click()
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    assert serious_violations(page) == []


def test_a_childs_page_has_no_serious_accessibility_problems(page, a_review_at_the_teacher):
    sign_in(page, "sw@demo.test")
    page.goto("/children/C001")
    assert serious_violations(page) == []


@pytest.fixture
def a_laid_out_review_with_owner_and_auditor(app, engine, council, clock):
    """The basic bundle with diagram interchange (so bpmn-js draws it), a review at QA, a process owner
    and an auditor granted the child."""
    bundle = Bundle.from_dirs(BASIC_BUNDLE)
    for path in bundle.bpmn_files():
        bundle.files[path] = rewrite(bundle.files[path])
    with clocks.using(clock), council.begin() as s:
        deploy(s, bundle, actor="setup@demo.test")
        add_user(s, "owner@demo.test", "Olu Owner", roles=["Process Owner"], password_hash=PASSWORD_HASH)
        auditor = add_user(s, "auditor@demo.test", "Aud Inspector", roles=["Auditor"], password_hash=PASSWORD_HASH)
        grant(s, auditor, "C001", "Inspection", None, "admin@demo.test", engine.now())
    instance_id = start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", PEP)
    return instance_id


def test_the_modeller_and_forms_editor_have_no_serious_accessibility_problems(
    page, a_laid_out_review_with_owner_and_auditor
):
    sign_in(page, "owner@demo.test")
    for url in (
        "/processes",
        "/processes/test_review/edit",
        "/processes/forms/complete_pep.schema.json/edit",
        "/processes/test_views/delete",
    ):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert serious_violations(page) == [], url


def test_the_auditors_timeline_and_replay_have_no_serious_accessibility_problems(
    page, a_laid_out_review_with_owner_and_auditor
):
    sign_in(page, "auditor@demo.test")
    instance_id = a_laid_out_review_with_owner_and_auditor
    for url in ("/audit", "/audit/children/C001", f"/audit/children/C001/instances/{instance_id}/replay"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert serious_violations(page) == [], url


def test_a_young_persons_link_its_thanks_and_its_used_page_have_no_serious_accessibility_problems(
    page, deployed_app, engine, council
):
    with council.begin() as s:
        engine.start(s, "test_views", "C001")
    sign_in(page, "sw@demo.test")
    page.goto("/children/C001")
    page.get_by_role("button", name="Create a single-use link").click()
    link = "/l/" + page.locator("main code").inner_text().split("/l/")[1]  # the path: the test server is not BASE_URL
    page.context.clear_cookies()  # the young person has no account
    page.goto(link)
    assert serious_violations(page) == []
    assert page.get_by_role("link", name="Sign in").count() == 0
    page.get_by_label("What do you enjoy at school?").fill("Art")
    page.get_by_label("What would help you?").fill("A quiet place to read")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    assert serious_violations(page) == []
    page.goto(link)
    expect(page.get_by_role("heading", name="This link no longer works")).to_be_visible()
    assert serious_violations(page) == []


def test_the_incidents_page_has_no_serious_accessibility_problems(page, deployed_app, engine, council, clock):
    from engine.models import Incident

    with council.begin() as s:
        instance = engine.start(s, "test_fragile", "C001", data={"divisor": 0})
        s.add(
            Incident(
                instance_id=instance.id,
                child_id="C001",
                at=clock.now(),
                source="timer",
                message="process test_fragile, element divide: error: division by zero",
            )
        )
    sign_in(page, "admin@demo.test")
    page.goto("/admin/incidents")
    expect(page.get_by_role("button", name="Mark as resolved incident 1")).to_be_visible()
    assert serious_violations(page) == []


def test_the_needs_a_person_page_and_its_error_have_no_serious_accessibility_problems(
    page, deployed_app, engine, council, clock
):
    from datetime import date

    from engine.people import add_child

    with clocks.using(clock), council.begin() as s:  # a child with no social worker yet: the review waits for one
        add_child(s, "C004", "Robin Newcomer", date(2013, 4, 2), "Oak Primary")
        engine.start(s, "test_review", "C004", actor="admin@demo.test")
    sign_in(page, "admin@demo.test")
    page.goto("/admin/needs-a-person")
    button = page.get_by_role("button", name="Make them the Social Worker for Robin Newcomer")
    expect(button).to_be_visible()
    assert serious_violations(page) == []
    button.click()  # nobody chosen
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    assert serious_violations(page) == []


def test_the_people_children_schools_and_import_pages_have_no_serious_accessibility_problems(
    page, deployed_app, council, tmp_path
):
    from engine.models import School

    deployed_app.config["IMPORT_FOLDER"] = str(tmp_path / "imports")
    with council.begin() as s:
        s.add(School(urn="100001", name="Oak Primary"))
    sign_in(page, "admin@demo.test")
    for url in (
        "/admin/users",
        "/admin/users/1",
        "/children",
        "/admin/schools",
        "/admin/schools/100001",
        "/admin/children/C001/team",
        "/admin/import",
    ):
        page.goto(url)
        assert serious_violations(page) == [], url
    extract = tmp_path / "extract.csv"
    extract.write_text("Child ID,Name,Date of birth\nN001,Nova New,31/02/2015\nN002,Remy Recent,2012-06-30\n")
    page.set_input_files("#extract", str(extract))
    page.get_by_role("button", name="Check the file").click()
    expect(page.locator(".govuk-error-summary")).to_be_visible()  # row 2's date is not a real date
    assert serious_violations(page) == []
    extract.write_text("Child ID,Name,Date of birth\nN001,Nova New,28/02/2015\n")
    page.goto("/admin/import")
    page.set_input_files("#extract", str(extract))
    page.get_by_role("button", name="Check the file").click()
    expect(page.get_by_role("button", name="Import this file")).to_be_visible()
    assert serious_violations(page) == []


def test_the_oversight_pages_have_no_serious_accessibility_problems(page, deployed_app, engine, council, clock):
    from ..test_oversight import build_small_council

    build_small_council(engine, council, clock)
    sign_in(page, "admin@demo.test")
    for url in (
        "/oversight/timeliness?period=2025-26+spring",
        "/oversight/timeliness?period=2025-26&by=school",
        "/oversight/timeliness/children?period=2025-26+spring&figure=overdue",
        "/oversight/timeliness/children?period=2025-26+spring&figure=children",
        "/oversight/overdue",
    ):
        page.goto(url)
        assert serious_violations(page) == [], url
    page.get_by_role("button", name="Remind the holders of the selected tasks").click()  # nothing selected
    expect(page.locator(".govuk-error-summary")).to_be_visible()
    assert serious_violations(page) == []


def test_the_ppplus_and_quality_pages_have_no_serious_accessibility_problems(page, a_review_at_the_teacher):
    sign_in(page, "admin@demo.test")
    for url in ("/oversight/ppplus?year=2025-26", "/oversight/quality?year=2025-26"):
        page.goto(url)
        assert serious_violations(page) == [], url
