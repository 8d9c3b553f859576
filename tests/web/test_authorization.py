"""Authorization matrix: every route that shows or changes a child's record, for every role, with the
person's own child and with someone else's. A child someone may not see is answered 404, and no page
ever shows the name of a child the person may not see. The auditor sees only the child granted to them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.models import Attachment, Event, OpenTask, User
from engine.people import add_user
from webui.grants import grant

from ..test_runtime import MEETING, complete, only_task, start_review

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
            s.add(Attachment(id=f"{child_id:0<36}", child_id=child_id, filename=f"{child_id}-ehcp.pdf",
                             content_type="application/pdf", size=4, sha256="x", content=b"%PDF",
                             uploaded_by="sw@demo.test", uploaded_at=engine.now()))
        found[child_id] = {"instance": instance_id, "task": only_task(council, child_id).id,
                           "attachment": f"{child_id:0<36}"}
    return found


def child_pages(child_id: str, ids: dict) -> list[str]:
    return [
        f"/children/{child_id}",
        f"/children/{child_id}/peps/{ids['instance']}",
        f"/children/{child_id}/peps/{ids['instance']}.pdf",
        f"/children/{child_id}/next-meeting.ics",
        f"/children/{child_id}/changes/meeting_rescheduled",
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
                assert response.status_code == expected, (email, url, response.status_code)
            else:
                assert response.status_code == 404, (email, url, response.status_code)
                no_leak(response, child_id)


@pytest.mark.parametrize("email", USERS)
def test_a_task_opens_only_for_its_holder_and_is_hidden_from_strangers(email, records, browser):
    person = browser(email)
    for child_id, ids in records.items():
        response = person.get(f"/tasks/{ids['task']}")
        if email == TASK_HOLDER[child_id]:
            assert response.status_code == 200
        elif child_id in SEES[email]:
            assert response.status_code == 403  # may see the child, may not do the teacher's step
        else:
            assert response.status_code == 404
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
def test_administration_is_for_the_vs_administrator_only(email, records, browser):
    person = browser(email)
    expected = 200 if email == "admin@demo.test" else 403
    for url in ("/admin/users", "/admin/children/new", "/admin/children/C001/team", "/admin/children/C002/team",
                "/admin/grants"):
        assert person.get(url).status_code == expected, (email, url)


def test_every_route_that_names_a_child_or_task_is_in_this_matrix(app):
    covered = {"/children/<child_id>", "/children/<child_id>/peps/<int:instance_id>",
               "/children/<child_id>/peps/<int:instance_id>.pdf", "/children/<child_id>/next-meeting.ics",
               "/children/<child_id>/changes/<message>", "/attachments/<attachment_id>", "/tasks/<task_id>",
               "/tasks/<task_id>/claim", "/tasks/<task_id>/release", "/tasks/<task_id>/link",
               "/admin/children/<child_id>/team", "/admin/users/<int:user_id>",
               "/admin/users/<int:user_id>/password", "/audit/children/<child_id>",
               "/audit/children/<child_id>/verification", "/audit/children/<child_id>/instances/<int:instance_id>/replay",
               "/audit/children/<child_id>/pack.pdf", "/audit/children/<child_id>/pack.json"}
    scoped = {rule.rule for rule in app.url_map.iter_rules()
              if any(arg in rule.arguments for arg in ("child_id", "task_id", "instance_id", "attachment_id", "user_id"))}
    assert scoped <= covered, f"routes missing from the authorization matrix: {scoped - covered}"


def test_instances_of_another_child_are_not_reachable_through_my_childs_address(records, browser):
    person = browser("dt@demo.test")
    other_instance = records["C002"]["instance"]
    assert person.get(f"/children/C001/peps/{other_instance}").status_code == 404


def test_a_refused_look_is_not_recorded_as_a_view(records, browser, council):
    browser("other.dt@demo.test").get("/children/C001")
    with council() as s:
        assert s.scalars(select(Event).where(Event.kind == "record_viewed", Event.child_id == "C001")).all() == []
