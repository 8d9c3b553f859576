"""Authorization matrix: every route that shows or changes a child's record, for every role, with the
person's own child and with someone else's. A child someone may not see is answered 404, and no page
ever shows the name of a child the person may not see. The auditor sees only the child granted to them,
and changes nothing; the process owner sees no child at all, on any page of theirs either. A single-use
link is made only by the holder of the role its form names, and works once, for its own task; the
notifications page lists only what is about children the person may see.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import deploy_changes
from engine.models import (
    Attachment,
    CaseTeamMember,
    Deployment,
    Event,
    Notification,
    OpenTask,
    TaskLink,
    User,
)
from engine.people import PeopleError, add_user, set_case_team
from webui.grants import grant

from ..test_runtime import MEETING, complete, only_task, start_review
from .conftest import changed, csrf_token, snapshot

NAMES = {"C001": "Alex Example", "C002": "Blair Sample"}

# who may see which child: case teams (conftest) and Virtual School staff
SEES = {
    "sw@demo.test": {"C001", "C002"},
    "dt@demo.test": {"C001"},
    "other.dt@demo.test": {"C002"},
    "yp@demo.test": {"C001"},
    "ea@demo.test": {"C001", "C002"},
    "admin@demo.test": {"C001", "C002"},
    "auditor@demo.test": {"C001"},
    "owner@demo.test": set(),  # the process owner changes processes and sees no child
}
AUDITOR = "auditor@demo.test"
DETAIL_EDITORS = {"sw@demo.test", "admin@demo.test"}  # the child's social worker, the VS administrator
WITHDRAWERS = {"admin@demo.test"}  # (and the VS Head, whom this council has not)
OWNER = "owner@demo.test"
# whose task is open for each child once both reviews reach the teacher
TASK_HOLDER = {"C001": "dt@demo.test", "C002": "other.dt@demo.test"}
USERS = sorted(SEES)


@pytest.fixture
def records(deployed_app, engine, council):
    """Both children with a review at the teacher's step, an attachment each, and their ids; an auditor
    granted the first child."""
    with council.begin() as s:
        auditor = add_user(s, AUDITOR, "Aud Inspector", roles=["Auditor"])
        auditor.password_hash = s.scalar(select(User.password_hash).where(User.email == "sw@demo.test"))
        grant(s, auditor, "C001", "Complaint ref 7", None, "admin@demo.test", engine.now())
        add_user(s, OWNER, "Olu Owner", roles=["Process Owner"], password_hash=auditor.password_hash)
    found = {}
    for child_id in NAMES:
        instance_id = start_review(engine, council, child_id)
        complete(engine, council, only_task(council, child_id), "sw@demo.test", MEETING)
        with council.begin() as s:
            s.add(
                Attachment(
                    id=f"{child_id:0<36}",
                    child_id=child_id,
                    filename=f"{child_id}-ehcp.pdf",
                    content_type="application/pdf",
                    size=4,
                    sha256="x",
                    content=b"%PDF",
                    uploaded_by="sw@demo.test",
                    uploaded_at=engine.now(),
                )
            )
        found[child_id] = {
            "instance": instance_id,
            "task": only_task(council, child_id).id,
            "attachment": f"{child_id:0<36}",
        }
    return found


def child_pages(child_id: str, ids: dict) -> list[str]:
    return [
        f"/children/{child_id}",
        f"/children/{child_id}/peps/{ids['instance']}",
        f"/children/{child_id}/peps/{ids['instance']}.pdf",
        f"/children/{child_id}/next-meeting.ics",
        f"/children/{child_id}/changes/meeting_rescheduled",
        f"/children/{child_id}/details",
        f"/children/{child_id}/peps/{ids['instance']}/withdraw",
        f"/attachments/{ids['attachment']}",
        f"/audit/children/{child_id}",
        f"/audit/children/{child_id}/verification",
        f"/audit/children/{child_id}/instances/{ids['instance']}/replay",
        f"/audit/children/{child_id}/pack.pdf",
        f"/audit/children/{child_id}/pack.json",
    ]


def no_leak(response, child_id: str):
    body = response.get_data(as_text=True) if response.mimetype.startswith("text") else ""
    assert NAMES[child_id] not in body, f"{response.request.path} shows {NAMES[child_id]}"


@pytest.mark.parametrize("email", USERS)
def test_child_pages_answer_only_those_who_may_see_the_child(email, records, browser):
    person = browser(email)
    for child_id, ids in records.items():
        for url in child_pages(child_id, ids):
            response = person.get(url)
            if url.startswith("/audit/") and email not in (AUDITOR, "admin@demo.test"):
                assert response.status_code == 403  # for auditors and the VS administrator, whichever child
                no_leak(response, child_id)
            elif child_id in SEES[email]:
                expected = 200
                if url.endswith("/changes/meeting_rescheduled") and email in ("yp@demo.test", AUDITOR):
                    expected = 404  # the message form says who may report it; a young person may not
                if url.endswith("/details") and email not in DETAIL_EDITORS:
                    expected = 403  # sees the child, may not change their details
                if url.endswith("/withdraw") and email not in WITHDRAWERS:
                    expected = 403  # sees the child, may not withdraw their PEP
                assert response.status_code == expected, (email, url, response.status_code)
            else:
                assert response.status_code == 404, (email, url, response.status_code)
                no_leak(response, child_id)


@pytest.mark.parametrize("email", USERS)
def test_a_task_opens_only_for_its_holder_and_is_hidden_from_strangers(email, records, browser):
    person = browser(email)
    for child_id, ids in records.items():
        # the task, its answers to check, and a section of it (a long form's)
        for page in (f"/tasks/{ids['task']}", f"/tasks/{ids['task']}/check", f"/tasks/{ids['task']}/sections/1"):
            response = person.get(page)
            if email == TASK_HOLDER[child_id]:
                assert response.status_code in (200, 302), page  # no draft to check yet: back to the task
            elif child_id in SEES[email]:
                assert response.status_code == 403, page  # may see the child, may not do the teacher's step
            else:
                assert response.status_code == 404, page
                no_leak(response, child_id)


@pytest.mark.parametrize("email", USERS)
def test_claiming_releasing_and_linking_someone_elses_task_changes_nothing(email, records, browser, council):
    person = browser(email)
    for child_id, ids in records.items():
        if email == TASK_HOLDER[child_id]:
            continue
        for action in ("claim", "release", "link"):
            response = person.post(f"/tasks/{ids['task']}/{action}")
            refused = (403,) if email == AUDITOR else (302, 400, 404)  # auditors are refused every change
            assert response.status_code in refused, (email, action, response.status_code)  # never 200
            if child_id not in SEES[email] and email != AUDITOR:
                assert response.status_code in (302, 404)
                no_leak(response, child_id)
        with council() as s:
            task = s.get(OpenTask, ids["task"])
            assert task.assignee_id is not None and task.pooled is False


@pytest.mark.parametrize("email", USERS)
def test_lists_never_name_a_child_the_person_may_not_see(email, records, browser):
    person = browser(email)
    for url in ("/inbox", "/inbox?view=pool", "/children", "/notifications", "/audit"):
        response = person.get(url)
        assert response.status_code == (403 if url == "/audit" and email not in (AUDITOR, "admin@demo.test") else 200)
        for child_id in set(NAMES) - SEES[email]:
            no_leak(response, child_id)


@pytest.mark.parametrize("email", USERS)
def test_administration_is_for_the_vs_administrator_only(email, records, browser, council):
    person = browser(email)
    expected = 200 if email == "admin@demo.test" else 403
    with council() as s:
        with_user = f"/admin/users/{s.scalar(select(User.id).where(User.email == 'sw@demo.test'))}"
    for url in (
        "/admin/users",
        "/admin/users.csv",
        with_user,
        "/admin/children/new",
        "/admin/children/C001/team",
        "/admin/children/C002/team",
        "/admin/grants",
        "/admin/schools",
        "/admin/import",
        "/admin/needs-a-person",
    ):
        assert person.get(url).status_code == expected, (email, url)
    for url in ("/admin/schools", "/admin/import", "/admin/import/apply"):
        assert person.post(url).status_code in ((302, 400, 422) if expected == 200 else (403,)), (email, url)
    if email != "admin@demo.test":  # nor may anyone else give a child's task a person
        task_id = records["C001"]["task"]
        assert person.post(f"/admin/needs-a-person/{task_id}", {"person": email}).status_code == 403


@pytest.mark.parametrize("email", USERS)
def test_the_children_list_and_its_download_name_only_children_the_person_may_see(email, records, browser):
    person = browser(email)
    response = person.get("/children.csv")
    if email == AUDITOR:
        assert response.status_code == 403  # auditors read records one by one, as granted
        return
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    for child_id in NAMES:
        assert (NAMES[child_id] in body) == (child_id in SEES[email]), (email, child_id)
    for child_id in set(NAMES) - SEES[email]:
        no_leak(person.get(f"/children?q={child_id}"), child_id)


def test_every_route_that_names_a_child_or_task_is_in_this_matrix(app):
    covered = {
        "/children/<child_id>",
        "/children/<child_id>/peps/<int:instance_id>",
        "/children/<child_id>/peps/<int:instance_id>.pdf",
        "/children/<child_id>/next-meeting.ics",
        "/children/<child_id>/changes/<message>",
        "/children/<child_id>/details",
        "/children/<child_id>/peps/<int:instance_id>/withdraw",
        "/attachments/<attachment_id>",
        "/tasks/<task_id>",
        "/tasks/<task_id>/claim",
        "/tasks/<task_id>/release",
        "/tasks/<task_id>/link",
        "/admin/children/<child_id>/team",
        "/admin/users/<int:user_id>",
        "/admin/users/<int:user_id>/password",
        "/audit/children/<child_id>",
        "/audit/children/<child_id>/verification",
        "/audit/children/<child_id>/instances/<int:instance_id>/replay",
        "/audit/children/<child_id>/pack.pdf",
        "/audit/children/<child_id>/pack.json",
        "/admin/needs-a-person/<task_id>",
        "/tasks/<task_id>/check",
        "/tasks/<task_id>/sections/<int:number>",
    }
    scoped = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if any(arg in rule.arguments for arg in ("child_id", "task_id", "instance_id", "attachment_id", "user_id"))
    }
    assert scoped <= covered, f"routes missing from the authorization matrix: {scoped - covered}"


def test_instances_of_another_child_are_not_reachable_through_my_childs_address(records, browser):
    person = browser("dt@demo.test")
    other_instance = records["C002"]["instance"]
    assert person.get(f"/children/C001/peps/{other_instance}").status_code == 404
    admin = browser("admin@demo.test")
    assert admin.get(f"/children/C001/peps/{other_instance}/withdraw").status_code == 404


def test_a_refused_look_is_not_recorded_as_a_view(records, browser, council):
    browser("other.dt@demo.test").get("/children/C001")
    with council() as s:
        assert s.scalars(select(Event).where(Event.kind == "record_viewed", Event.child_id == "C001")).all() == []


# ---- single-use links --------------------------------------------------------------------------


def views_task(engine, council, child_id: str = "C001") -> OpenTask:
    """The young person's views, asked for: a step whose form allows single-use links (issued by the
    child's Social Worker, as `"x-single-use-link": true` says)."""
    with council.begin() as s:
        instance_id = engine.start(s, "test_views", child_id).id
    with council() as s:
        return s.scalars(select(OpenTask).where(OpenTask.instance_id == instance_id)).one()


def link_in(response) -> str:
    return re.search(r"<code>http://[^/]+(/l/[^<]+)</code>", response.get_data(as_text=True)).group(1)


@pytest.mark.parametrize("email", USERS)
def test_only_the_childs_social_worker_may_create_a_single_use_link(email, records, browser, engine, council):
    task = views_task(engine, council)
    response = browser(email).post(f"/tasks/{task.id}/link", page_url="/inbox")
    with council() as s:
        links = s.scalars(select(TaskLink)).all()
    if email == "sw@demo.test":  # the Social Worker in the first child's case team
        assert response.status_code == 200 and [link.task_id for link in links] == [task.id]
        return
    assert response.status_code == (404 if "C001" not in SEES[email] else 403), (email, response.status_code)
    assert links == [] and "/l/" not in response.get_data(as_text=True)
    if "C001" not in SEES[email]:
        no_leak(response, "C001")


def test_a_link_works_once_and_only_for_its_own_task(records, browser, engine, app, council):
    sw = browser("sw@demo.test")
    with council.begin() as s:  # one PEP of a kind at a time for a child: the second task is a second child's
        set_case_team(s, "C002", {"Young Person": "yp@demo.test"}, actor="admin@demo.test")
    first, second = views_task(engine, council), views_task(engine, council, "C002")
    first_url = link_in(sw.post(f"/tasks/{first.id}/link", page_url="/inbox"))
    second_url = link_in(sw.post(f"/tasks/{second.id}/link", page_url="/inbox"))
    anonymous = app.test_client()
    token = csrf_token(anonymous.get(first_url).get_data(as_text=True))
    thanks = anonymous.post(first_url, data={"enjoy": "Art", "help_needed": "A quiet place", "csrf_token": token})
    assert thanks.status_code == 200 and "Thank you" in thanks.get_data(as_text=True)
    with council() as s:
        assert s.get(OpenTask, first.id) is None and s.get(OpenTask, second.id) is not None  # its own task only
        completed = s.scalar(select(Event).where(Event.kind == "task_completed", Event.task_id == first.id))
        assert completed.actor == "yp@demo.test" and completed.data["link_issued_by"] == "sw@demo.test"
    assert anonymous.get(first_url).status_code == 410  # once: gone, said plainly
    assert (
        anonymous.post(first_url, data={"enjoy": "Again", "help_needed": "x", "csrf_token": token}).status_code == 410
    )
    assert anonymous.get(second_url).status_code == 200  # the other link still works, for its own task
    assert anonymous.get(first_url[:-1] + ("A" if first_url[-1] != "A" else "B")).status_code == 404


# ---- notifications -----------------------------------------------------------------------------

ROLE_KEYS = [
    "social_worker",
    "designated_teacher",
    "young_person",
    "vs_education_adviser",
    "vs_administrator",
    "process_owner",
    "auditor",
]


@pytest.fixture
def notifications(records, council, engine):
    """A notification about each child to each person, and to each role."""
    with council.begin() as s:
        people = dict(s.execute(select(User.email, User.id)).all())
        for child_id, name in NAMES.items():
            for email in USERS:
                s.add(
                    Notification(
                        child_id=child_id,
                        kind="notice",
                        subject=f"For {email} about {name}",
                        body=f"{name} ({child_id})",
                        created_at=engine.now(),
                        user_id=people[email],
                    )
                )
            for role in ROLE_KEYS:
                s.add(
                    Notification(
                        child_id=child_id,
                        kind="notice",
                        subject=f"For every {role} about {name}",
                        body=f"{name} ({child_id})",
                        created_at=engine.now(),
                        role_key=role,
                    )
                )


@pytest.mark.parametrize("email", USERS)
def test_notifications_list_only_what_is_about_children_the_person_may_see(email, notifications, browser):
    page = browser(email).get("/notifications")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for child_id, name in NAMES.items():
        if child_id in SEES[email]:
            assert f"For {email} about {name}" in html  # their own, about a child they may see
        else:
            no_leak(page, child_id)
            assert f"({child_id})" not in html


# ---- the process owner -------------------------------------------------------------------------


def shows_no_child(response):
    body = response.get_data(as_text=True) if response.mimetype.startswith(("text", "application/json")) else ""
    for child_id, name in NAMES.items():
        assert name not in body and child_id not in body, f"{response.request.path} shows {child_id}"


def test_the_process_owner_reaches_no_childs_record_by_any_address(records, browser):
    owner = browser(OWNER)
    for child_id, ids in records.items():
        for url in [*child_pages(child_id, ids), f"/tasks/{ids['task']}", f"/admin/children/{child_id}/team"]:
            response = owner.get(url)
            assert response.status_code in (403, 404), (url, response.status_code)
            shows_no_child(response)
        for action in ("claim", "release", "link"):
            response = owner.post(f"/tasks/{ids['task']}/{action}")
            assert response.status_code in (302, 404), (action, response.status_code)
            shows_no_child(response)
    for url in ("/inbox", "/inbox?view=pool", "/children", "/notifications"):
        shows_no_child(owner.get(url, follow_redirects=True))


def test_the_process_owners_pages_name_no_child(records, browser, council):
    owner = browser(OWNER)
    with council.begin() as s:  # a second version, so that the children's running reviews could move to it
        xml = next(f.content for f in s.scalars(select(Deployment)).one().files if f.path == "processes/review.bpmn")
        deploy_changes(s, {"processes/review.bpmn": xml.replace('name="Rating?"', 'name="What rating?"')}, OWNER)
    pages = [
        "/processes",
        "/processes/test_review/versions",
        "/processes/test_review/versions/1",
        "/processes/test_review/versions/2",
        "/processes/test_review/versions/2/download",
        "/processes/test_review/diff",
        "/processes/test_review/diff?a=1&b=2",
        "/processes/test_review/migrate",
        "/processes/test_review/edit",
        "/processes/test_review/diagram.json",
        "/processes/vocabulary.json",
        "/processes/forms",
        "/processes/forms/complete_pep.schema.json",
        "/processes/upload",
    ]
    for url in pages:
        response = owner.get(url)
        assert response.status_code == 200, url
        shows_no_child(response)
    moved = owner.post(
        "/processes/test_review/migrate", {}, page_url="/processes/test_review/migrate", follow_redirects=True
    )
    assert moved.status_code == 200 and "Moved 2 PEP(s) to version 2" in moved.get_data(as_text=True)
    shows_no_child(moved)


# ---- the auditor -------------------------------------------------------------------------------


def test_an_auditor_changes_nothing_whatever_they_post(records, browser, app, council):
    auditor = browser(AUDITOR)
    ids = records["C001"]
    values = {
        "child_id": "C001",
        "task_id": ids["task"],
        "instance_id": ids["instance"],
        "number": 1,
        "attachment_id": ids["attachment"],
        "user_id": 1,
        "grant_id": 1,
        "incident_id": 1,
        "message": "meeting_rescheduled",
        "process_id": "test_review",
        "name": "qa.schema.json",
        "version": 1,
        "token": "x",
        "urn": "100001",
    }
    before = snapshot(council)
    posts = [rule for rule in app.url_map.iter_rules() if "POST" in rule.methods]
    for rule in posts:
        url = rule.rule
        for argument in rule.arguments:
            url = re.sub(rf"<(?:\w+:)?{argument}>", str(values[argument]), url)
        if rule.endpoint in ("auth.sign_out", "auth.change_password", "auth.sign_in", "links.use"):
            continue  # their own account; and a link's page, which acts for no one signed in
        response = auditor.post(url, {"reason": "x", "confirm": "yes"})
        assert response.status_code == 403, (url, response.status_code)
    assert snapshot(council) == before


def test_an_auditor_cannot_be_put_in_a_case_team(records, browser, council, clock):
    with (
        pytest.raises(PeopleError, match="auditors see a child only through a grant"),
        clocks.using(clock),
        council.begin() as s,
    ):
        set_case_team(s, "C002", {"Designated Teacher": AUDITOR})
    admin = browser("admin@demo.test")
    page = admin.get("/admin/children/C002/team").get_data(as_text=True)
    assert AUDITOR not in page and "Aud Inspector" not in page  # not offered
    refused = admin.post(
        "/admin/children/C002/team",
        {"designated_teacher": AUDITOR, "social_worker": "sw@demo.test"},
        page_url="/admin/children/C002/team",
    )
    # an auditor is not among the choices, so the form refuses them before the engine would
    assert refused.status_code == 422 and "Designated Teacher must be chosen from the list" in refused.get_data(
        as_text=True
    )
    with council() as s:
        auditor = s.scalar(select(User.id).where(User.email == AUDITOR))
        assert auditor not in set(s.scalars(select(CaseTeamMember.user_id)))
    assert browser(AUDITOR).get("/children/C002").status_code == 404


# ---- the Virtual School's oversight pages ------------------------------------------------------------

OVERSIGHT = {"ea@demo.test", "admin@demo.test"}  # roles marked `oversight: true` (and the VS Head)
OVERSIGHT_PAGES = (
    "/oversight/timeliness",
    "/oversight/timeliness?period=now&by=school",
    "/oversight/timeliness/children?figure=due",
    "/oversight/timeliness/children.csv?figure=children",
    "/oversight/overdue",
    "/oversight/overdue.csv",
    "/oversight/timeliness.csv?by=social_worker",
    "/oversight/timeliness.xlsx?by=school",
    "/oversight/timeliness?by=designated_teacher&q=dana&page=2",
)


@pytest.mark.parametrize("email", USERS)
def test_the_oversight_pages_are_for_the_oversight_roles_and_name_only_children_they_see(
    email, records, browser, council
):
    person = browser(email)
    for url in OVERSIGHT_PAGES:
        response = person.get(url)
        assert response.status_code == (200 if email in OVERSIGHT else 403), (email, url)
        for child_id in set(NAMES) - SEES[email]:
            no_leak(response, child_id)
    before = snapshot(council)
    for url in ("/oversight/overdue/remind", "/oversight/overdue/assign"):
        response = person.post(url, {"task": [records["C001"]["task"]], "person": "1"})
        assert response.status_code in ((302, 422) if email in OVERSIGHT else (403,)), (email, url)
    if email not in OVERSIGHT:
        assert changed(before, snapshot(council)) == set()


# ---- the PP+ and quality pages (webui/ledger.py): the oversight roles, and nobody else ---------------

LEDGER_PAGES = [
    "/oversight/ppplus",
    "/oversight/ppplus.csv",
    "/oversight/ppplus.xlsx",
    "/oversight/quality",
    "/oversight/quality.csv",
    "/oversight/quality.xlsx",
    "/oversight/quality/annual-report.pdf",
    "/oversight/quality/annual-report.xlsx",
]
OVERSEERS = {"ea@demo.test", "admin@demo.test"}  # VS education adviser, VS administrator (and the VS Head)


@pytest.mark.parametrize("email", USERS)
def test_oversight_pages_answer_only_the_virtual_school(email, records, browser):
    person = browser(email)
    for url in LEDGER_PAGES:
        response = person.get(url)
        assert response.status_code == (200 if email in OVERSEERS else 403), (email, url, response.status_code)
        if email not in SEES or not SEES[email] >= set(NAMES):
            for child_id in NAMES:
                no_leak(response, child_id)


def test_the_ledger_pages_need_signing_in(app):
    for url in LEDGER_PAGES:
        assert app.test_client().get(url).status_code == 302
