"""The professionals' web app, route by route, as the people who use it."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine import migration
from engine.deploy import deploy_changes, latest_bundle
from engine.history import events
from engine.models import Attachment, Instance, Notification, OpenTask, TaskDraft, TaskLink, User

from ..test_conflicts import VIEWS, start_parallel, task_named
from ..test_migration import definition
from ..test_runtime import MEETING, PEP, complete, only_task, start_review
from .conftest import PASSWORD, csrf_token


def task_ids(html: str) -> list[str]:
    return re.findall(r'/tasks/([0-9a-f-]{36})"', html)


def date_fields(name: str, iso: str) -> dict:
    year, month, day = iso.split("-")
    return {f"{name}-day": day, f"{name}-month": month, f"{name}-year": year}


# ---- signing in --------------------------------------------------------------------------------


def test_pages_need_signing_in(app):
    response = app.test_client().get("/inbox")
    assert response.status_code == 302 and "/sign-in" in response.location


def test_a_social_worker_signs_in_and_out(app, browser):
    sw = browser()
    response = sw.sign_in("sw@demo.test")
    assert response.status_code == 302 and response.location.endswith("/inbox")
    assert "Sam Social-Worker" in sw.get("/inbox").get_data(as_text=True)
    sw.post("/sign-out")
    assert sw.get("/inbox").status_code == 302


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(app, browser):
    response = browser().sign_in("sw@demo.test", "not the password")
    assert response.status_code == 400
    assert "The email address or password is not right" in response.get_data(as_text=True)


def test_repeated_failed_sign_ins_are_slowed_down(app, browser):
    person = browser()
    for _ in range(5):
        person.sign_in("sw@demo.test", "guess")
    response = person.sign_in("sw@demo.test", PASSWORD)
    assert response.status_code == 429 and "Too many failed attempts" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0


def test_a_password_hashed_with_older_parameters_still_signs_in_and_is_hashed_again(app, browser, council):
    from argon2 import PasswordHasher

    from webui.auth import hasher

    old = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4).hash(PASSWORD)  # the old default
    with council.begin() as s:
        s.scalars(select(User).where(User.email == "sw@demo.test")).one().password_hash = old

    assert browser().sign_in("sw@demo.test").status_code == 302
    with council() as s:
        now_stored = s.scalars(select(User.password_hash).where(User.email == "sw@demo.test")).one()
    assert now_stored != old and not hasher.check_needs_rehash(now_stored)
    assert "$m=19456,t=2,p=1$" in now_stored and hasher.verify(now_stored, PASSWORD)
    assert browser().sign_in("sw@demo.test").status_code == 302


def test_a_wrong_password_leaves_an_old_hash_as_it_was(app, browser, council):
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4).hash(PASSWORD)
    with council.begin() as s:
        s.scalars(select(User).where(User.email == "sw@demo.test")).one().password_hash = old

    assert browser().sign_in("sw@demo.test", "not the password").status_code == 400
    with council() as s:
        assert s.scalars(select(User.password_hash).where(User.email == "sw@demo.test")).one() == old


def test_a_form_posted_without_its_csrf_token_is_refused(app, browser):
    sw = browser("sw@demo.test")
    assert sw.client.post("/sign-out").status_code == 400


def test_pages_carry_security_headers(app, browser):
    response = browser("sw@demo.test").get("/inbox")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


# ---- the inbox ---------------------------------------------------------------------------------


def test_the_inbox_shows_my_tasks_and_not_other_peoples(deployed_app, browser, engine, council):
    start_review(engine, council, "C001")
    start_review(engine, council, "C002")
    complete(engine, council, only_task(council, "C002"), "sw@demo.test", MEETING)
    dt = browser("dt@demo.test").get("/inbox").get_data(as_text=True)
    assert "Nothing" not in dt and "You have no tasks" in dt
    sw = browser("sw@demo.test").get("/inbox").get_data(as_text=True)
    assert "Arrange the PEP meeting" in sw and "Alex Example" in sw
    other = browser("other.dt@demo.test").get("/inbox").get_data(as_text=True)
    assert "Complete the PEP" in other and "Blair Sample" in other and "Alex Example" not in other


def test_overdue_tasks_are_flagged_and_counted(deployed_app, browser, engine, council, clock):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    clock.set("2026-03-17T23:59:00+00:00")
    assert 'govuk-tag--red">Overdue' not in browser("dt@demo.test").get("/inbox").get_data(as_text=True)
    with council.begin() as s:  # the deadline passes without the timer having been swept yet
        only = s.scalars(select(OpenTask)).one()
        only.due_at = only.due_at.replace(day=16)
    html = browser("dt@demo.test").get("/inbox").get_data(as_text=True)
    assert 'govuk-tag--red">Overdue' in html


def test_filters_narrow_the_inbox_and_htmx_gets_just_the_rows(deployed_app, browser, engine, council):
    start_review(engine, council, "C001")
    start_review(engine, council, "C002")
    sw = browser("sw@demo.test")
    html = sw.get("/inbox?child=blair").get_data(as_text=True)
    assert "Blair Sample" in html and "Alex Example" not in html
    fragment = sw.get("/inbox?school=Oak+Primary", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.startswith('<div id="inbox-rows"') and "Alex Example" in fragment and "Blair" not in fragment


def test_a_vs_adviser_claims_qa_from_the_pool(deployed_app, browser, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", PEP)
    ea = browser("ea@demo.test")
    pool = ea.get("/inbox?view=pool").get_data(as_text=True)
    assert "Quality-assure the PEP" in pool and "Claim" in pool
    task_id = only_task(council).id
    response = ea.post(f"/tasks/{task_id}/claim")
    assert response.status_code == 302 and response.location.endswith(f"/tasks/{task_id}")
    assert "Quality-assure the PEP" in ea.get("/inbox").get_data(as_text=True)
    assert "Quality-assure" not in browser("ea2@demo.test").get("/inbox?view=pool").get_data(as_text=True)


def test_a_second_adviser_claiming_from_a_stale_pool_page_is_told_plainly_on_that_page(
    deployed_app, browser, engine, council
):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", PEP)
    task_id = only_task(council).id
    late = browser("ea2@demo.test")
    late.get("/inbox?view=pool")  # the page they claim from, before the first adviser took the task
    assert browser("ea@demo.test").post(f"/tasks/{task_id}/claim").status_code == 302
    response = late.post(
        f"/tasks/{task_id}/claim", page_url="/inbox?view=pool", headers={"Referer": "http://localhost/inbox?view=pool"}
    )
    assert response.status_code == 302 and response.location.endswith("/inbox?view=pool")
    page = late.get("/inbox?view=pool").get_data(as_text=True)
    assert "You cannot do that: it is not yours to do." in page and "C001" not in page


# ---- the task page ---------------------------------------------------------------------------------


def test_the_task_page_shows_instructions_and_the_form(deployed_app, browser, engine, council):
    start_review(engine, council)
    task = only_task(council)
    html = browser("sw@demo.test").get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "Invite the school and carers" in html
    assert 'name="meeting_date-day"' in html and 'name="venue"' in html


def test_invalid_answers_come_back_with_an_error_summary_linking_to_each_field(deployed_app, browser, engine, council):
    start_review(engine, council)
    task = only_task(council)
    sw = browser("sw@demo.test")
    response = sw.post(
        f"/tasks/{task.id}",
        {"_do": "submit", "meeting_date-day": "31", "meeting_date-month": "2", "meeting_date-year": "2026"},
        page_url=f"/tasks/{task.id}",
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "There is a problem" in html and 'href="#f-venue"' in html and "Enter venue" in html
    assert "must be a real date" in html and 'href="#f-meeting_date-day"' in html
    assert 'value="31"' in html  # what was typed is kept
    assert only_task(council).id == task.id


def test_a_draft_is_saved_and_comes_back(deployed_app, browser, engine, council):
    start_review(engine, council)
    task = only_task(council)
    sw = browser("sw@demo.test")
    sw.post(f"/tasks/{task.id}", {"_do": "save", "venue": "Oak Primary, room 4"}, page_url=f"/tasks/{task.id}")
    html = sw.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert 'value="Oak Primary, room 4"' in html and "Draft saved" in html
    sw.post(
        f"/tasks/{task.id}",
        {"_do": "submit", "venue": "Oak Primary, room 4", **date_fields("meeting_date", "2026-03-10")},
        page_url=f"/tasks/{task.id}",
    )
    with council() as s:
        assert s.scalars(select(TaskDraft)).all() == []


def test_submitting_moves_the_pep_on_to_the_teacher(deployed_app, browser, engine, council):
    start_review(engine, council)
    task = only_task(council)
    response = browser("sw@demo.test").post(
        f"/tasks/{task.id}",
        {"_do": "submit", "venue": "Oak Primary", **date_fields("meeting_date", "2026-03-10")},
        page_url=f"/tasks/{task.id}",
    )
    assert response.status_code == 302
    assert "Complete the PEP" in browser("dt@demo.test").get("/inbox").get_data(as_text=True)


def test_smart_targets_are_added_and_removed_as_repeatable_groups(deployed_app, browser, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    task = only_task(council)
    dt = browser("dt@demo.test")
    html = dt.post(
        f"/tasks/{task.id}", {"_do": "add:targets", "attendance_percent": "95"}, page_url=f"/tasks/{task.id}"
    ).get_data(as_text=True)
    assert 'name="targets.0.what"' in html and 'value="95"' in html
    html = dt.post(
        f"/tasks/{task.id}",
        {"_do": "add:targets", "targets.0._item": "1", "targets.0.what": "Read daily"},
        page_url=f"/tasks/{task.id}",
    ).get_data(as_text=True)
    assert 'name="targets.1.what"' in html and 'value="Read daily"' in html
    html = dt.post(
        f"/tasks/{task.id}",
        {
            "_do": "remove:targets.0",
            "targets.0._item": "1",
            "targets.0.what": "Read daily",
            "targets.1._item": "1",
            "targets.1.what": "Spell ten words",
        },
        page_url=f"/tasks/{task.id}",
    ).get_data(as_text=True)
    assert 'value="Spell ten words"' in html and "Read daily" not in html and 'name="targets.1.what"' not in html
    response = dt.post(
        f"/tasks/{task.id}",
        {
            "_do": "submit",
            "attendance_percent": "95",
            "targets.0._item": "1",
            "targets.0.what": "Spell ten words",
            **date_fields("targets.0.by_when", "2026-05-29"),
        },
        page_url=f"/tasks/{task.id}",
    )
    assert response.status_code == 302
    with council() as s:
        completed = [e for e in events(s, "C001") if e.kind == "task_completed"][-1]
    assert completed.data["data"] == {
        "attendance_percent": 95.0,
        "targets": [{"what": "Spell ten words", "by_when": "2026-05-29"}],
    }


def test_a_list_of_dates_and_a_field_called_action_are_answered_on_the_page(
    deployed_app, browser, engine, council, clock
):
    """Forms may ask for several plain answers (the next PEP dates) and name a field like a button."""
    form = "forms/complete_pep.schema.json"
    with clocks.using(clock), council.begin() as s:
        schema = json.loads(latest_bundle(s).files[form])
        schema["properties"]["pep_dates"] = {
            "type": "array",
            "title": "Dates of the next PEPs",
            "items": {"type": "string", "format": "date", "title": "PEP date"},
        }
        schema["properties"]["action"] = {"type": "string", "enum": ["Submit the ePEP", "Send it for checking"]}
        deploy_changes(s, {form: json.dumps(schema)}, "owner@demo.test")
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    task, dt = only_task(council), browser("dt@demo.test")
    url = f"/tasks/{task.id}"
    html = dt.post(url, {"_do": "add:pep_dates"}, page_url=url).get_data(as_text=True)
    assert 'name="pep_dates.0-day"' in html and "Add another PEP date" in html
    html = dt.post(url, {"_do": "add:pep_dates", **date_fields("pep_dates.0", "2026-06-10")}, page_url=url).get_data(
        as_text=True
    )
    assert 'name="pep_dates.1-day"' in html and 'value="10"' in html
    response = dt.post(
        url,
        {
            "_do": "submit",
            "attendance_percent": "95",
            "action": "Submit the ePEP",
            "targets.0._item": "1",
            "targets.0.what": "Spell ten words",
            **date_fields("targets.0.by_when", "2026-05-29"),
            **date_fields("pep_dates.0", "2026-06-10"),
            **date_fields("pep_dates.1", "2026-10-07"),
        },
        page_url=url,
    )
    assert response.status_code == 302
    with council() as s:
        submitted = [e for e in events(s, "C001") if e.kind == "task_completed"][-1].data["data"]
    assert submitted["pep_dates"] == ["2026-06-10", "2026-10-07"] and submitted["action"] == "Submit the ePEP"


def hidden(html: str) -> dict:
    """The page's own hidden fields (its CSRF token, the version and the basis it was built from)."""
    return dict(re.findall(r'<input type="hidden" name="(csrf_token|_version|_basis)" value="([^"]*)"', html))


EPEP = {
    "_do": "submit",
    "attendance_percent": "96",
    "targets.0._item": "1",
    "targets.0.what": "Read every day",
    **date_fields("targets.0.by_when", "2026-05-29"),
}


def test_a_page_opened_before_another_branch_of_the_pep_moved_on_is_submitted(app, parallel, browser, engine):
    """The teacher opens the ePEP; meanwhile the social worker records the child's views on the other
    branch. The teacher's page (now an older version of the PEP) still goes through."""
    start_parallel(engine, parallel)
    epep = task_named(parallel, "Complete the ePEP")
    dt = browser("dt@demo.test")
    page = hidden(dt.get(f"/tasks/{epep.id}").get_data(as_text=True))
    complete(engine, parallel, task_named(parallel, "Record the child's views"), "sw@demo.test", VIEWS)

    response = dt.client.post(f"/tasks/{epep.id}", data={**EPEP, **page})

    assert response.status_code == 302
    with parallel() as s:
        assert s.get(Instance, epep.instance_id).version == int(page["_version"]) + 2
        assert [e.data["name"] for e in events(s, "C001") if e.kind == "task_completed"] == [
            "Record the child's views",
            "Complete the ePEP",
        ]


def test_a_page_opened_before_what_it_shows_changed_says_reload_and_keeps_the_answers(
    app, parallel, browser, engine, council
):
    """The PEP is moved to a version whose ePEP form asks a new question while the teacher's page, built
    from the old form, is open: refused (409), their answers still on the page."""
    instance_id = start_parallel(engine, parallel)
    epep = task_named(parallel, "Complete the ePEP")
    dt = browser("dt@demo.test")
    page = hidden(dt.get(f"/tasks/{epep.id}").get_data(as_text=True))
    with council.begin() as s:
        form = (
            latest_bundle(s)
            .files["forms/complete_pep.schema.json"]
            .replace('"properties": {', '"properties": {"tutoring": {"type": "string", "title": "Tutoring"},', 1)
        )
        deployment, _ = deploy_changes(s, {"forms/complete_pep.schema.json": form}, actor="owner@demo.test")
        migration.migrate(
            engine, s, instance_id, definition(s, "test_parallel_review", deployment.version).id, "owner@demo.test"
        )

    response = dt.client.post(f"/tasks/{epep.id}", data={**EPEP, **page})

    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Someone else changed this PEP" in html and "Reload the task" in html and 'value="Read every day"' in html
    shown = hidden(html)  # submitting this page again is refused again: it was built from the old form
    assert (shown["_version"], shown["_basis"]) == (page["_version"], page["_basis"])
    assert task_named(parallel, "Complete the ePEP").id == epep.id
    response = dt.client.post(
        f"/tasks/{epep.id}", data={**EPEP, **hidden(dt.get(f"/tasks/{epep.id}").get_data(as_text=True))}
    )
    assert response.status_code == 302


def test_a_page_without_its_basis_says_reload_once_the_pep_moved_on(deployed_app, browser, engine, council):
    """A page opened before pages carried what they were built from has only its version to go by."""
    start_review(engine, council)
    task = only_task(council)
    sw = browser("sw@demo.test")
    page = sw.get(f"/tasks/{task.id}").get_data(as_text=True)
    stale = re.search(r'name="_version" value="(\d+)"', page).group(1)
    with council.begin() as s:  # meanwhile someone else's step moves the PEP on
        s.get(Instance, task.instance_id).version += 1
    response = sw.client.post(
        f"/tasks/{task.id}",
        data={
            "_do": "submit",
            "venue": "Oak",
            **date_fields("meeting_date", "2026-03-10"),
            "_version": stale,
            "csrf_token": csrf_token(page),
        },
    )
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "Someone else changed this PEP" in html and "Reload the task" in html and 'value="Oak"' in html


def test_someone_elses_task_is_not_found_and_a_colleagues_is_forbidden(deployed_app, browser, engine, council):
    start_review(engine, council, "C001")
    task = only_task(council, "C001")
    assert browser("other.dt@demo.test").get(f"/tasks/{task.id}").status_code == 404
    assert browser("dt@demo.test").get(f"/tasks/{task.id}").status_code == 403


def test_a_reminder_followed_after_the_task_ended_says_who_completed_it_and_when(
    deployed_app, browser, engine, council
):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    task = only_task(council)  # the teacher's PEP: they were told of it
    with council() as s:
        dt_id = s.scalar(select(User.id).where(User.email == "dt@demo.test"))
        assert s.scalar(select(Notification.id).where(Notification.task_id == task.id, Notification.user_id == dt_id))
    complete(engine, council, task, "dt@demo.test", PEP)
    response = browser("dt@demo.test").get(f"/tasks/{task.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 410 and "Complete the PEP is no longer open" in html
    assert "You completed it on" in html and "while you had it open" not in html
    assert "Nothing was submitted" not in html and "Alex Example" in html
    assert browser("other.dt@demo.test").get(f"/tasks/{task.id}").status_code == 404  # never told, nothing said
    assert browser("ea@demo.test").get(f"/tasks/{task.id}").status_code == 404  # sees the child, was not told


def test_an_evidence_file_is_attached_and_can_be_downloaded(deployed_app, browser, engine, council):
    # the test form has no attachment field, so the child page's attachment list is checked via the model
    with council.begin() as s:
        s.add(
            Attachment(
                id="a" * 36,
                child_id="C001",
                filename="ehcp.pdf",
                content_type="application/pdf",
                size=4,
                sha256="x",
                content=b"%PDF",
                uploaded_by="sw@demo.test",
                uploaded_at=engine.now(),
            )
        )
    sw = browser("sw@demo.test")
    assert "ehcp.pdf" in sw.get("/children/C001").get_data(as_text=True)
    download = sw.get("/attachments/" + "a" * 36)
    assert download.status_code == 200 and download.data == b"%PDF"
    assert browser("other.dt@demo.test").get("/attachments/" + "a" * 36).status_code == 404


# ---- a child's record ----------------------------------------------------------------------------


def test_a_childs_page_shows_the_current_pep_who_holds_each_step_and_earlier_peps(
    deployed_app, browser, engine, council
):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    html = browser("sw@demo.test").get("/children/C001").get_data(as_text=True)
    assert "Test termly review" in html and "Complete the PEP" in html and "Dana Teacher (Designated Teacher)" in html
    assert "10 March 2026" in html and "next-meeting.ics" in html


def test_a_meeting_venue_typed_as_markup_is_shown_as_text_on_the_childs_page(deployed_app, browser, engine, council):
    start_review(engine, council)
    venue = '<script>alert("venue")</script><a href="https://evil.example">Room 1</a>'
    complete(engine, council, only_task(council), "sw@demo.test", {**MEETING, "venue": venue})
    html = browser("sw@demo.test").get("/children/C001").get_data(as_text=True)
    assert "<script>alert" not in html and 'href="https://evil.example"' not in html
    assert "&lt;script&gt;alert(&#34;venue&#34;)&lt;/script&gt;" in html and "next-meeting.ics" in html


def test_every_look_at_a_childs_record_is_written_to_their_history(deployed_app, browser, engine, council):
    browser("sw@demo.test").get("/children/C001")
    with council() as s:
        viewed = [e for e in events(s, "C001") if e.kind == "record_viewed"]
    assert [(e.actor, e.data["page"]) for e in viewed] == [("sw@demo.test", "child")]


def test_the_pep_document_has_every_section_and_a_pdf_and_an_invitation(deployed_app, browser, engine, council):
    instance_id = start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", PEP)
    sw = browser("sw@demo.test")
    html = sw.get(f"/children/C001/peps/{instance_id}").get_data(as_text=True)
    assert "Arrange the PEP meeting" in html and "Oak Primary, meeting room 2" in html
    assert "Read a chapter book each week" in html and "Attendance (%)" in html
    pdf = sw.get(f"/children/C001/peps/{instance_id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF") and pdf.mimetype == "application/pdf"
    ics = sw.get("/children/C001/next-meeting.ics")
    assert ics.status_code == 200 and b"BEGIN:VEVENT" in ics.data and b"DTSTART;VALUE=DATE:20260310" in ics.data


def test_a_social_worker_reports_a_rescheduled_meeting_from_the_childs_page(deployed_app, browser, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    sw = browser("sw@demo.test")
    assert "The PEP meeting has moved" in sw.get("/children/C001").get_data(as_text=True)
    url = "/children/C001/changes/meeting_rescheduled"
    refused = sw.post(url, {"reason": "x"}, page_url=url)
    assert refused.status_code == 422 and "Enter new meeting date" in refused.get_data(as_text=True)
    done = sw.post(url, {**date_fields("meeting_date", "2026-03-24"), "reason": "School trip"}, page_url=url)
    assert done.status_code == 302
    assert only_task(council).due_at.isoformat() == "2026-03-31T22:59:59+00:00"


def test_a_young_person_gives_their_views_through_a_single_use_link(deployed_app, browser, engine, council, app):
    with council.begin() as s:
        engine.start(s, "test_views", "C001")
    task = only_task(council)
    sw = browser("sw@demo.test")
    created = sw.post(f"/tasks/{task.id}/link", page_url="/children/C001").get_data(as_text=True)
    url = re.search(r"<code>http://[^/]+(/l/[^<]+)</code>", created).group(1)
    anonymous = app.test_client()
    page = anonymous.get(url)
    assert page.status_code == 200 and "What would help you?" in page.get_data(as_text=True)
    token = csrf_token(page.get_data(as_text=True))
    refused = anonymous.post(url, data={"enjoy": "Art", "csrf_token": token})
    assert refused.status_code == 422 and "Answer the question: What would help you?" in refused.get_data(as_text=True)
    thanks = anonymous.post(
        url, data={"enjoy": "Art", "help_needed": "A quiet place to read", "attend_meeting": "yes", "csrf_token": token}
    )
    assert thanks.status_code == 200 and "Thank you" in thanks.get_data(as_text=True)
    used = anonymous.get(url)  # single use: said plainly, for a young person, with no sign-in
    assert used.status_code == 410
    page = used.get_data(as_text=True)
    assert "This link no longer works" in page and "It has been used already" in page
    assert "Sign in" not in page and "/sign-in" not in page and "Go to your tasks" not in page
    with council() as s:
        completed = [e for e in events(s, "C001") if e.kind == "task_completed"][-1]
    assert completed.actor == "yp@demo.test" and completed.data["data"]["attend_meeting"] is True
    assert completed.data["link_issued_by"] == "sw@demo.test"
    audit = browser("admin@demo.test").get("/audit/children/C001").get_data(as_text=True)
    assert "submitted through a single-use link issued by Sam Social-Worker" in audit


@pytest.mark.parametrize("email", ["admin@demo.test", "ea@demo.test", "dt@demo.test"])
def test_only_the_childs_social_worker_may_issue_a_link_to_answer_as_the_young_person(
    deployed_app, browser, engine, council, email
):
    with council.begin() as s:
        engine.start(s, "test_views", "C001")
    task = only_task(council)
    person = browser(email)
    assert "Create a single-use link" not in person.get("/children/C001").get_data(as_text=True)
    refused = person.post(f"/tasks/{task.id}/link", page_url="/children/C001")
    assert refused.status_code == 403 and "/l/" not in refused.get_data(as_text=True)
    with council() as s:
        assert s.scalars(select(TaskLink)).all() == []


def test_an_expired_link_does_not_work(deployed_app, browser, engine, council, app, clock):
    with council.begin() as s:
        engine.start(s, "test_views", "C001")
    created = browser("sw@demo.test").post(f"/tasks/{only_task(council).id}/link", page_url="/children/C001")
    url = re.search(r"<code>http://[^/]+(/l/[^<]+)</code>", created.get_data(as_text=True)).group(1)
    clock.advance(days=15)
    expired = app.test_client().get(url)
    assert expired.status_code == 410 and "more than 14 days ago" in expired.get_data(as_text=True)
    assert app.test_client().get("/l/not-a-link").status_code == 404


# ---- administration and notifications -----------------------------------------------------------


def test_the_vs_administrator_adds_a_person_and_sets_a_case_team(deployed_app, browser, council):
    admin = browser("admin@demo.test")
    html = admin.post(
        "/admin/users",
        {
            "name": "Nia Teacher",
            "email": "nia@school.test",
            "organisation": "Ash School",
            "roles": "designated_teacher",
        },  # what she is: case teams offer her as one
        page_url="/admin/users",
    ).get_data(as_text=True)
    assert "Account created for <strong>nia@school.test</strong>" in html
    response = admin.post(
        "/admin/children/C002/team",
        {"designated_teacher": "nia@school.test", "social_worker": "sw@demo.test"},
        page_url="/admin/children/C002/team",
    )
    assert response.status_code == 302
    with council() as s:
        nia = s.scalars(select(User).where(User.email == "nia@school.test")).one()
        assert nia.password_hash.startswith("$argon2")


def test_only_the_vs_administrator_manages_people(deployed_app, browser):
    assert browser("sw@demo.test").get("/admin/users").status_code == 403


def test_without_email_set_up_notifications_wait_in_the_outbox(deployed_app, browser, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    html = browser("dt@demo.test").get("/notifications").get_data(as_text=True)
    assert "Email is not set up" in html and "Complete the PEP for Alex Example" in html
    with council() as s:
        assert s.scalars(select(Notification).where(Notification.sent_at.is_not(None))).all() == []


def test_a_declaration_is_one_checkbox_and_an_empty_answer_shows_empty():
    from werkzeug.datastructures import MultiDict

    from webui.formschema import build_fields, parse_submission

    schema = {
        "type": "object",
        "required": ["sent_securely"],
        "properties": {
            "sent_securely": {"type": "boolean", "const": True, "title": "I sent the PEP securely"},
            "notes": {"type": "string", "x-widget": "textarea", "title": "Notes"},
        },
    }
    declaration, notes = build_fields(schema, {"notes": None}, {})
    assert (declaration.widget, notes.value) == ("confirm", "")
    assert parse_submission(schema, MultiDict({"sent_securely": "yes"})) == {"sent_securely": True}
    assert parse_submission(schema, MultiDict({})) == {}


def test_an_optional_date_that_may_be_null_is_still_a_date():
    from webui.formschema import widget_for

    assert widget_for({"type": ["string", "null"], "format": "date"}) == "date"
    assert widget_for({"type": ["integer", "null"]}) == "number"


def test_with_email_set_up_notifications_are_sent_to_the_holder_or_the_roles_pool(
    deployed_app, engine, council, monkeypatch
):
    from engine import mail

    sent = []

    class FakeSMTP:
        def __init__(self, host, port, timeout):
            assert (host, port) == ("smtp.council.test", 587)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def starttls(self):
            sent.append("starttls")

        def login(self, user, password):
            sent.append(("login", user))

        def send_message(self, message):
            sent.append((message["To"], message["Subject"]))

    monkeypatch.setattr(mail.smtplib, "SMTP", FakeSMTP)
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", PEP)
    config = {
        **deployed_app.config,
        "SMTP_HOST": "smtp.council.test",
        "SMTP_PORT": 587,
        "SMTP_STARTTLS": True,
        "SMTP_USER": "pep",
        "SMTP_PASSWORD": "secret",
    }
    assert mail.deliver_pending(config, council, engine.now) == 3
    assert sent[:2] == ["starttls", ("login", "pep")]
    recipients = {to: subject for to, subject in sent[2:]}
    assert recipients["sw@demo.test"].startswith("Arrange the PEP meeting for Alex Example")
    assert recipients["dt@demo.test"].startswith("Complete the PEP for Alex Example")
    assert recipients["ea@demo.test, ea2@demo.test"].startswith("Quality-assure the PEP for Alex Example")
    assert mail.deliver_pending(config, council, engine.now) == 0  # nothing is sent twice


def test_a_person_changes_the_first_password_they_were_given(app, browser):
    from .conftest import PASSWORD

    sw = browser("sw@demo.test")
    refused = sw.post(
        "/account/password",
        {"current_password": "wrong", "new_password": "short", "confirm_password": "short"},
        page_url="/account/password",
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "Your current password is not right" in html and "at least 12 characters" in html
    changed = sw.post(
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "a new long passphrase",
            "confirm_password": "a new long passphrase",
        },
        page_url="/account/password",
    )
    assert changed.status_code == 302
    assert browser().sign_in("sw@demo.test", PASSWORD).status_code == 400
    assert browser().sign_in("sw@demo.test", "a new long passphrase").status_code == 302


def test_the_vs_administrator_issues_a_new_password_to_someone_who_forgot_theirs(app, browser, council):
    import re

    from .conftest import PASSWORD

    with council() as s:
        sw_id = s.scalars(select(User).where(User.email == "sw@demo.test")).one().id
    assert browser("dt@demo.test").post(f"/admin/users/{sw_id}/password").status_code == 403
    html = (
        browser("admin@demo.test")
        .post(f"/admin/users/{sw_id}/password", page_url="/admin/users")
        .get_data(as_text=True)
    )
    new = re.search(
        r"New password for <strong>sw@demo.test</strong>. Their password is <code>([^<]+)</code>", html
    ).group(1)
    assert browser().sign_in("sw@demo.test", PASSWORD).status_code == 400
    assert browser().sign_in("sw@demo.test", new).status_code == 302


def test_a_page_whose_pep_was_closed_meanwhile_keeps_the_answers_and_says_why(
    deployed_app, browser, engine, council, clock
):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    task = only_task(council)  # the teacher's PEP, with its deadline
    dt = browser("dt@demo.test")
    url = f"/tasks/{task.id}"
    page = dt.get(url).get_data(as_text=True)
    with council.begin() as s:  # the PEP is closed while the teacher is writing
        engine.cancel(s, task.instance_id, "admin@demo.test", reason="The child left care")
    response = dt.client.post(
        url,
        data={
            "_do": "submit",
            "_version": "2",
            "_child": "C001",
            "attendance_percent": "96",
            "csrf_token": csrf_token(page),
        },
    )
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "is no longer open" in html and "when this PEP was closed" in html
    assert "Nothing you wrote was submitted" in html and "96" in html
    with council() as s:
        dt_id = s.scalar(select(User.id).where(User.email == "dt@demo.test"))
        assert s.get(TaskDraft, (task.id, dt_id)).data == {"attendance_percent": "96"}
    assert browser("other.dt@demo.test").client.post(
        url, data={"_child": "C001", "csrf_token": csrf_token(page)}
    ).status_code in (400, 404)  # nothing said to others
