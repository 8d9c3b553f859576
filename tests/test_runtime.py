"""Running a PEP: who may do which step, form checks before anything runs, messages, cancellation."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from engine.errors import Conflict, EngineError, FormInvalid, NotAllowed, NotFound, TaskNotReady
from engine.history import events
from engine.models import Instance, Notification, OpenTask

MEETING = {"meeting_date": "2026-03-10", "venue": "Oak Primary, meeting room 2"}
PEP = {"attendance_percent": 96.5, "targets": [{"what": "Read a chapter book each week", "by_when": "2026-05-29"}]}


def open_tasks(sessions, child_id="C001"):
    with sessions() as s:
        return s.scalars(select(OpenTask).where(OpenTask.child_id == child_id).order_by(OpenTask.ready_at)).all()


def only_task(sessions, child_id="C001") -> OpenTask:
    tasks = open_tasks(sessions, child_id)
    assert len(tasks) == 1, [t.name for t in tasks]
    return tasks[0]


def start_review(engine, sessions, child_id="C001") -> int:
    with sessions.begin() as s:
        return engine.start(s, "test_review", child_id, actor="sw@demo.test").id


def complete(engine, sessions, task: OpenTask, actor: str, data: dict):
    with sessions.begin() as s:
        return engine.complete_task(s, task.id, actor, data)


def to_qa(engine, sessions, child_id="C001", dt="dt@demo.test"):
    """Start a review and take it to the QA step."""
    start_review(engine, sessions, child_id)
    complete(engine, sessions, only_task(sessions, child_id), "sw@demo.test", MEETING)
    complete(engine, sessions, only_task(sessions, child_id), dt, PEP)
    return only_task(sessions, child_id)


def test_a_new_review_asks_the_childs_social_worker_to_arrange_the_meeting(deployed, engine, council):
    start_review(engine, council)
    task = only_task(council)
    assert (task.name, task.lane, task.role_key) == ("Arrange the PEP meeting", "Social Worker", "social_worker")
    with council() as s:
        assert task.assignee_id == s.scalar(select(OpenTask.assignee_id).where(OpenTask.id == task.id))
        view = engine.task_view(s, task.id, "sw@demo.test")
    assert view["form_schema"]["required"] == ["meeting_date", "venue"]
    assert view["instructions"].startswith("Invite the school and carers")


def test_the_whole_review_runs_from_meeting_to_sign_off(deployed, engine, council):
    qa = to_qa(engine, council)
    assert (qa.name, qa.pooled, qa.assignee_id) == ("Quality-assure the PEP", True, None)
    instance = complete(engine, council, qa, "ea@demo.test", {"rating": "Green", "feedback": "Clear targets."})
    assert instance.status == "completed" and instance.next_timer_at is None
    assert open_tasks(council) == []
    with council() as s:
        kinds = [e.kind for e in events(s, "C001") if e.kind != "case_team_changed"]  # the team was set first
    assert kinds[0] == "instance_started" and kinds[-1] == "instance_completed"
    assert kinds.count("task_completed") == 3


def test_the_designated_teacher_gets_the_pep_with_its_deadline(deployed, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    task = only_task(council)
    assert task.name == "Complete the PEP" and task.role_key == "designated_teacher"
    # five working days after Tuesday 10 March 2026, end of day
    assert task.due_at.isoformat() == "2026-03-17T23:59:59+00:00"
    with council() as s:
        notes = s.scalars(select(Notification).where(Notification.task_id == task.id)).all()
    assert [n.kind for n in notes] == ["task_assigned"] and "Complete the PEP for Alex Example" in notes[0].subject


def test_a_task_can_be_completed_only_once(deployed, engine, council):
    start_review(engine, council)
    task = only_task(council)
    complete(engine, council, task, "sw@demo.test", MEETING)
    with pytest.raises(TaskNotReady):
        complete(engine, council, task, "sw@demo.test", MEETING)


def test_a_finished_reviews_data_can_be_read(deployed, engine, council):
    qa = to_qa(engine, council)
    complete(engine, council, qa, "ea@demo.test", {"rating": "Amber", "feedback": "Add a homework target."})
    instance_id = qa.instance_id
    with council() as s:
        data = engine.instance_data(s, instance_id)
    assert data["rating"] == "Amber" and data["venue"] == MEETING["venue"] and data["targets"] == PEP["targets"]


def test_a_teacher_cannot_do_the_social_workers_step(deployed, engine, council):
    start_review(engine, council)
    with pytest.raises(NotAllowed, match="does not hold the role Social Worker"):
        complete(engine, council, only_task(council), "dt@demo.test", MEETING)


def test_another_childs_teacher_cannot_complete_this_childs_pep(deployed, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    with pytest.raises(NotAllowed):
        complete(engine, council, only_task(council), "other.dt@demo.test", PEP)


def test_an_unknown_person_is_refused(deployed, engine, council):
    start_review(engine, council)
    with pytest.raises(NotAllowed, match="no active user"):
        complete(engine, council, only_task(council), "stranger@demo.test", MEETING)


def test_invalid_form_data_is_refused_field_by_field_before_the_task_runs(deployed, engine, council):
    instance_id = start_review(engine, council)
    task = only_task(council)
    with council() as s:
        version = s.get(Instance, instance_id).version
    with pytest.raises(FormInvalid) as caught:
        complete(engine, council, task, "sw@demo.test", {"meeting_date": "10/03/2026"})
    assert caught.value.errors == {
        "meeting_date": "Meeting date must be a real date",
        "venue": "Enter venue",
    }
    assert only_task(council).id == task.id
    with council() as s:
        assert s.get(Instance, instance_id).version == version


def test_a_meeting_on_a_bank_holiday_is_refused_by_the_diagrams_own_rule(deployed, engine, council):
    start_review(engine, council)
    with pytest.raises(FormInvalid) as caught:
        complete(engine, council, only_task(council), "sw@demo.test", {**MEETING, "meeting_date": "2026-04-03"})
    assert caught.value.errors == {"meeting_date": "Choose a working day: schools and offices are closed then"}
    assert only_task(council).name == "Arrange the PEP meeting"


def test_targets_are_checked_item_by_item(deployed, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    bad = {"attendance_percent": 120, "targets": [{"what": "Go", "by_when": "soon"}]}
    with pytest.raises(FormInvalid) as caught:
        complete(engine, council, only_task(council), "dt@demo.test", bad)
    assert set(caught.value.errors) == {"attendance_percent", "targets.0.what", "targets.0.by_when"}
    assert caught.value.errors["attendance_percent"] == "Attendance (%) must be 100 or less"


def test_a_vs_adviser_claims_the_qa_and_no_other_adviser_can_then_do_it(deployed, engine, council):
    qa = to_qa(engine, council)
    with council.begin() as s:
        engine.claim(s, qa.id, "ea@demo.test")
    with pytest.raises(NotAllowed):
        complete(engine, council, qa, "ea2@demo.test", {"rating": "Green"})
    with council.begin() as s:
        engine.release(s, qa.id, "ea@demo.test")
    complete(engine, council, qa, "ea2@demo.test", {"rating": "Green"})


def test_a_teacher_cannot_claim_a_vs_advisers_task(deployed, engine, council):
    qa = to_qa(engine, council)
    with pytest.raises(NotAllowed), council.begin() as s:
        engine.claim(s, qa.id, "dt@demo.test")


def test_a_red_rating_sends_the_pep_back_to_the_teacher(deployed, engine, council):
    qa = to_qa(engine, council)
    complete(engine, council, qa, "ea@demo.test", {"rating": "Red", "feedback": "Targets are not SMART."})
    back = only_task(council)
    assert back.name == "Complete the PEP" and back.role_key == "designated_teacher"
    with council() as s:
        assert engine.task_view(s, back.id, "dt@demo.test")["data"]["feedback"] == "Targets are not SMART."


def test_a_rescheduled_meeting_reaches_only_that_childs_review(deployed, engine, council):
    for child in ("C001", "C002"):
        start_review(engine, council, child)
    complete(engine, council, only_task(council, "C001"), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council, "C002"), "sw@demo.test", MEETING)
    with council.begin() as s:
        caught = engine.send_message(
            s, "meeting_rescheduled", "C001", {"meeting_date": "2026-03-24"}, actor="sw@demo.test"
        )
    assert [i.child_id for i in caught] == ["C001"]
    # BST has begun by 31 March: end of day in London is 22:59:59 UTC
    assert only_task(council, "C001").due_at.isoformat() == "2026-03-31T22:59:59+00:00"
    assert only_task(council, "C002").due_at.isoformat() == "2026-03-17T23:59:59+00:00"


def test_a_message_nobody_waits_for_reaches_no_one(deployed, engine, council):
    start_review(engine, council)
    with council.begin() as s:
        assert engine.send_message(s, "meeting_rescheduled", "C001", {"meeting_date": "2026-03-24"}) == []


def test_a_message_to_an_unknown_child_is_refused(deployed, engine, council):
    with pytest.raises(NotFound), council.begin() as s:
        engine.send_message(s, "child_leaves_care", "C999")


def test_a_child_leaving_care_closes_the_review_before_the_meeting(deployed, engine, council):
    instance_id = start_review(engine, council)
    with council.begin() as s:
        engine.send_message(s, "child_leaves_care", "C001", {})
    with council() as s:
        assert s.get(Instance, instance_id).status == "completed"
    assert open_tasks(council) == []


def test_cancelling_a_review_withdraws_its_tasks_and_timers(deployed, engine, council):
    instance_id = start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    with council.begin() as s:
        engine.cancel(s, instance_id, "sw@demo.test", reason="duplicate review")
    with council() as s:
        instance = s.get(Instance, instance_id)
        assert (instance.status, instance.next_timer_at, instance.waiting_messages) == ("cancelled", None, [])
        assert [e.kind for e in events(s, "C001")][-2:] == ["instance_cancelled", "task_withdrawn"]
    assert open_tasks(council) == []


def test_a_form_opened_before_someone_else_saved_is_a_conflict(deployed, engine, council):
    instance_id = start_review(engine, council)
    with council() as s:
        seen = s.get(Instance, instance_id).version
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    with pytest.raises(Conflict, match="reload"), council.begin() as s:
        engine.complete_task(s, only_task(council).id, "dt@demo.test", PEP, expected_version=seen)


def test_an_unknown_process_is_refused(deployed, engine, council):
    with pytest.raises(NotFound, match="no deployed process"), council.begin() as s:
        engine.start(s, "test_nothing", "C001")


def test_finishing_one_review_starts_the_next_linked_to_it(deployed, engine, council):
    with council.begin() as s:
        first = engine.send_message(s, "review_due", "C001", {"number": 1})[0]
    task = only_task(council)
    with council() as s:
        assert engine.task_view(s, task.id, "sw@demo.test")["instructions"] == "Review number 1 for Alex Example."
    complete(engine, council, task, "sw@demo.test", MEETING)
    with council() as s:
        second = s.scalars(select(Instance).where(Instance.previous_instance_id == first.id)).one()
        assert s.get(Instance, first.id).status == "completed" and second.status == "running"
        view = engine.task_view(s, only_task(council).id, "sw@demo.test")
    assert view["instructions"] == "Review number 2 for Alex Example."
    assert view["data"]["cycle"]["previous_meeting"] == "2026-03-10"


def test_an_attendance_typed_as_minus_zero_is_recorded_as_zero_as_postgresql_keeps_it(deployed, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", {**PEP, "attendance_percent": -0.0})
    with council() as s:
        recorded = [e for e in events(s, "C001") if e.kind == "task_completed"][-1].data["data"]["attendance_percent"]
        running = engine.task_view(s, only_task(council).id, "ea@demo.test")["data"]["attendance_percent"]
    assert math.copysign(1, recorded) == math.copysign(1, running) == 1  # JSONB has no -0.0: the history must not
    # (after each test the history is replayed: on PostgreSQL a -0.0 recorded and stored as 0.0 broke its hash)


def test_a_diagram_that_restarts_itself_at_once_is_stopped_not_looped_forever(council, engine):
    from engine.deploy import Bundle, deploy

    from .conftest import HERE

    with council.begin() as s:
        deploy(s, Bundle.from_dirs(HERE / "bundles" / "loop"), actor="owner@demo.test")
    with pytest.raises(EngineError, match="keeps starting processes"), council.begin() as s:
        engine.send_message(s, "ping", "C001")
    with council() as s:
        assert s.scalars(select(Instance)).all() == []


def test_an_answer_holding_a_nul_character_is_refused_before_anything_runs(deployed, engine, council):
    start_review(engine, council)
    with pytest.raises(FormInvalid) as refused, council.begin() as s:
        engine.complete_task(s, only_task(council).id, "sw@demo.test", {**MEETING, "venue": "Oak\x00"})
    assert refused.value.errors == {"venue": "Venue: remove the character that is not text (NUL)"}
    with pytest.raises(FormInvalid), council.begin() as s:
        engine.send_message(s, "meeting_rescheduled", "C001", {"meeting_date": "2026-03-24", "reason": "\x00"})
