"""What the diagram refuses is shown as a refusal, and people are told what happened and what is next:
a date refused on its field, a PEP sent back after a Red rating, drafts and returns marked in the
inbox, a cleared answer that stays cleared, and a next PEP meeting only from accepted answers."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from engine import history
from engine.history import events as events_of
from engine.models import Event, TaskDraft
from webui.documents import next_meeting

from ..test_runtime import MEETING, PEP, complete, only_task, start_review
from .conftest import csrf_token
from .test_audit import auditor, give, text  # noqa: F401 - the auditor fixture, used by name
from .test_routes import date_fields

SW, DT, EA = "sw@demo.test", "dt@demo.test", "ea@demo.test"


def submit(person, task_id: str, answers: dict):
    return person.post(f"/tasks/{task_id}", {"_do": "submit", **answers}, page_url=f"/tasks/{task_id}")


def kinds(council) -> list[str]:
    with council() as s:
        return list(s.scalars(select(Event.kind).where(Event.kind != "record_viewed").order_by(Event.id)))


def to_qa(engine, council) -> int:
    instance_id = start_review(engine, council)
    complete(engine, council, only_task(council), SW, MEETING)
    complete(engine, council, only_task(council), DT, PEP)
    return instance_id


def test_a_saturday_meeting_is_refused_on_its_field_and_nothing_is_recorded(deployed_app, browser, engine, council):
    start_review(engine, council)
    task = only_task(council)
    before = kinds(council)
    response = submit(browser(SW), task.id, {"venue": "Oak Primary", **date_fields("meeting_date", "2026-03-14")})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'href="#f-meeting_date-day"' in html and "Choose a working day" in html
    assert "is done" not in html
    assert kinds(council) == before and only_task(council).id == task.id
    assert "Not set" in browser(SW).get("/children/C001").get_data(as_text=True)


def test_after_submitting_the_person_is_told_what_happens_next_and_by_when(deployed_app, browser, engine, council):
    start_review(engine, council)
    sw = browser(SW)
    response = submit(sw, only_task(council).id, {"venue": "Oak Primary", **date_fields("meeting_date", "2026-03-10")})
    assert response.status_code == 302
    banner = sw.get("/inbox").get_data(as_text=True)
    assert "Arrange the PEP meeting for Alex Example is done. Next: Complete the PEP (Dana Teacher, by " in banner


def test_a_pep_rated_red_comes_back_marked_sent_back_with_the_reason(auditor, browser, engine, council):  # noqa: F811
    instance_id = to_qa(engine, council)
    ea = browser(EA)
    qa = only_task(council)
    ea.post(f"/tasks/{qa.id}/claim")
    response = submit(ea, qa.id, {"rating": "Red", "feedback": "Targets are not measurable"})
    assert response.status_code == 302
    assert "Next: Complete the PEP (Dana Teacher" in ea.get("/inbox").get_data(as_text=True)

    dt = browser(DT)
    inbox = dt.get("/inbox").get_data(as_text=True)
    assert "Sent back" in inbox and "Draft saved" not in inbox
    back = only_task(council)
    assert back.sent_back == "the VS Education Adviser rated the PEP Red"
    page = dt.get(f"/tasks/{back.id}").get_data(as_text=True)
    assert "There is a problem" in page and "Sent back: the VS Education Adviser rated the PEP Red" in page

    pep = dt.get(f"/children/C001/peps/{instance_id}").get_data(as_text=True)
    assert "One attempt was sent back to be done again; it is not part of this plan." in pep
    child_page = dt.get("/children/C001").get_data(as_text=True)
    assert 'Sent back</strong> <span class="govuk-body-s">the VS Education Adviser rated the PEP Red' in child_page
    give(council, engine, "C001")
    audit = text(browser(auditor).get("/audit/children/C001"))
    assert (
        "“Complete the PEP” assigned to Dana Teacher (Designated Teacher), sent back: the VS Education Adviser "
        "rated the PEP Red" in audit
    )


def test_a_draft_is_marked_in_the_inbox(deployed_app, browser, engine, council):
    start_review(engine, council)
    sw = browser(SW)
    sw.post(
        f"/tasks/{only_task(council).id}",
        {"_do": "save", "venue": "Oak Primary"},
        page_url=f"/tasks/{only_task(council).id}",
    )
    assert "Draft saved" in sw.get("/inbox").get_data(as_text=True)


def test_a_cleared_answer_stays_cleared(deployed_app, browser, engine, council):
    instance_id = to_qa(engine, council)
    complete(engine, council, only_task(council), EA, {"rating": "Red", "feedback": "Add a reading target"})
    complete(engine, council, only_task(council), DT, PEP)
    ea = browser(EA)
    qa = only_task(council)
    ea.post(f"/tasks/{qa.id}/claim")
    assert "Add a reading target" in ea.get(f"/tasks/{qa.id}").get_data(as_text=True)  # the earlier answer, pre-filled
    assert submit(ea, qa.id, {"rating": "Green", "feedback": ""}).status_code == 302  # cleared
    assert engine_data(engine, council, instance_id)["feedback"] is None
    with council() as s:
        qa_answers = [
            e.data["data"] for e in events_of(s, "C001") if e.kind == "task_completed" and e.data["task"] == "qa"
        ]
    assert qa_answers[-1] == {"rating": "Green", "feedback": None}  # recorded as cleared


def engine_data(engine, council, instance_id: int) -> dict:
    with council() as s:
        return engine.instance_data(s, instance_id)


def test_only_an_accepted_answer_becomes_the_next_pep_meeting(council, clock):
    """A record whose next date was then sent back gives no next meeting; the record that replaced it does."""
    with council.begin() as s:
        instance_id = s.scalar(select(Event.instance_id).limit(1))
        entry = {"actor": DT, "instance_id": instance_id}
        history.append(
            s,
            "C001",
            [
                {
                    **entry,
                    "kind": "task_completed",
                    "task_id": "t1",
                    "data": {"task": "record", "data": {"next_meeting_date": "2026-09-21"}},
                },
                {**entry, "kind": "task_ready", "task_id": "t2", "data": {"task": "record", "sent_back": "too late"}},
            ],
            clock.now(),
        )
        assert next_meeting(s, "C001", date(2026, 3, 2)) is None
        history.append(
            s,
            "C001",
            [
                {
                    **entry,
                    "kind": "task_completed",
                    "task_id": "t2",
                    "data": {"task": "record", "data": {"next_meeting_date": "2026-06-17"}},
                },
            ],
            clock.now(),
        )
        assert next_meeting(s, "C001", date(2026, 3, 2))["date"] == "2026-06-17"
        assert next_meeting(s, "C001", date(2026, 6, 18)) is None  # held already: none is set yet


def test_answers_posted_after_the_session_timed_out_are_kept_as_a_draft(deployed_app, browser, engine, council, clock):
    start_review(engine, council)
    complete(engine, council, only_task(council), SW, MEETING)
    task = only_task(council)
    dt = browser(DT)
    page = dt.get(f"/tasks/{task.id}").get_data(as_text=True)  # the page is opened, and written for 40 minutes
    clock.advance(minutes=40)
    response = dt.client.post(
        f"/tasks/{task.id}",
        data={
            "_do": "submit",
            "attendance_percent": "96",
            "targets.0.what": "Read <b>daily</b>",
            "csrf_token": csrf_token(page),
        },
    )
    assert response.status_code == 302 and f"/sign-in?next=/tasks/{task.id}" in response.location
    told = dt.get(response.location).get_data(as_text=True)
    assert "We signed you out because you had not done anything for 30 minutes" in told
    assert "Your answers to “Complete the PEP” are saved as a draft." in told
    assert dt.sign_in(DT).status_code == 302
    again = dt.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert 'value="96"' in again and "Read &lt;b&gt;daily&lt;/b&gt;" in again and "<b>daily" not in again
    assert only_task(council).id == task.id  # nothing was submitted


def test_a_timed_out_session_keeps_nothing_for_a_task_that_is_not_theirs(deployed_app, browser, engine, council, clock):
    start_review(engine, council)
    task = only_task(council)  # the social worker's
    dt = browser(DT)
    page = dt.get("/inbox").get_data(as_text=True)
    clock.advance(minutes=40)
    dt.client.post(f"/tasks/{task.id}", data={"_do": "submit", "venue": "x", "csrf_token": csrf_token(page)})
    with council() as s:
        assert s.scalars(select(TaskDraft)).all() == []
