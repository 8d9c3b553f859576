"""What the Virtual School reports on is in every child's history, in the same words for every council:
entering and leaving care, the meeting held, the PEP signed off, the term or deadline each PEP answers,
and every overdue step: reminded on its due date and escalated one working day later, once each."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, select

from engine import clock as clocks
from engine import history
from engine.deploy import Bundle, DeploymentRejected, deploy_changes, latest_bundle
from engine.history import events
from engine.models import Child, Event, Notification, OpenTask
from engine.overdue import Policy
from engine.replay import replay_child

from .conftest import HERE
from .helpers import sweep
from .test_replay import rechain
from .test_runtime import MEETING, complete, only_task, start_review

STATUTORY_BUNDLE = HERE / "bundles" / "statutory"
NEW_KINDS = {
    "task_overdue",
    "task_reminded",
    "task_escalated",
    "meeting_held",
    "pep_signed_off",
    "entered_care",
    "left_care",
}


@pytest.fixture
def statutory(deployed, council, clock):
    """The basic bundle and the statutory test processes (tests/bundles/statutory)."""
    with clocks.using(clock), council.begin() as s:
        deploy_changes(s, Bundle.from_dirs(STATUTORY_BUNDLE).files, actor="owner@demo.test")
    return council


def start(engine, sessions, process_id, child_id="C001", **data):
    with sessions.begin() as s:
        return engine.start(s, process_id, child_id, actor="sw@demo.test", data=data).id


def history_of(sessions, child_id="C001", kinds=None):
    with sessions() as s:
        return [e for e in events(s, child_id) if kinds is None or e.kind in kinds]


def notices(sessions, kind):
    with sessions() as s:
        return s.scalars(select(Notification).where(Notification.kind == kind).order_by(Notification.id)).all()


def to_submission(engine, sessions):
    """A termly PEP started on Monday 2 March 2026 with its meeting recorded: the DT's submission is due
    by the end of Monday 9 March (5 working days)."""
    start(engine, sessions, "test_termly")
    complete(engine, sessions, only_task(sessions), "sw@demo.test", {"meeting_date": "2026-03-04"})
    return only_task(sessions)


# ---- item 5: every overdue step escalated within one working day ------------------------------------


def test_dt_submits_late_reminded_on_the_due_date_escalated_to_the_ea_a_working_day_after_once_each(statutory, engine):
    task = to_submission(engine, statutory)
    assert task.due_at.isoformat() == "2026-03-09T23:59:59+00:00"
    assert (task.overdue_remind, task.overdue_escalate_to) == (True, "vs_education_adviser")

    sweep(engine, statutory, "2026-03-09T23:00:00+00:00")  # not yet due
    assert history_of(statutory, kinds={"task_overdue", "task_reminded"}) == []

    result = sweep(engine, statutory, "2026-03-10T00:00:30+00:00")  # the due date has passed
    assert (result.overdue, result.reminded, result.escalated) == (1, 1, 0)
    reminded = history_of(statutory, kinds={"task_reminded"})
    assert [e.data["user_id"] for e in reminded] == [task.assignee_id]  # the DT herself
    assert [(n.user_id, n.task_id) for n in notices(statutory, "task_reminder")] == [(task.assignee_id, task.id)]

    sweep(engine, statutory, "2026-03-10T18:00:00+00:00")  # the same working day: nothing more
    assert history_of(statutory, kinds={"task_escalated"}) == []

    result = sweep(engine, statutory, "2026-03-11T00:00:30+00:00")  # one working day after the due date
    assert result.escalated == 1
    (escalated,) = history_of(statutory, kinds={"task_escalated"})
    assert escalated.task_id == task.id and escalated.data["to_role"] == "vs_education_adviser"
    assert escalated.data["to_pool"] is True  # nobody in the child's team: the advisers' pool
    assert [(n.role_key, n.user_id) for n in notices(statutory, "task_escalated")] == [("vs_education_adviser", None)]

    sweep(engine, statutory, "2026-03-16T09:00:00+00:00")
    complete(engine, statutory, only_task(statutory), "dt@demo.test", {"summary": "Late, sorry"})
    sweep(engine, statutory, "2026-03-20T09:00:00+00:00")
    kinds = [e.kind for e in history_of(statutory, kinds={"task_overdue", "task_reminded", "task_escalated"})]
    assert kinds == ["task_overdue", "task_reminded", "task_escalated"]  # once each
    completed = history_of(statutory, kinds={"task_completed"})[-1]
    assert completed.data["late"] is True


def test_a_task_whose_diagram_draws_its_own_escalation_timer_is_not_escalated_twice(statutory, engine):
    start(engine, statutory, "test_initial_own_timer", entered_care="2026-03-02")
    task = only_task(statutory)
    assert (task.overdue_remind, task.overdue_escalate_to) == (False, None)

    result = sweep(engine, statutory, "2026-03-10T00:00:30+00:00")
    assert result.timers_fired == 1 and (result.overdue, result.reminded, result.escalated) == (1, 0, 0)
    sweep(engine, statutory, "2026-03-13T09:00:00+00:00")

    timer = history_of(statutory, kinds={"timer_fired"})[-1]
    assert (timer.data["guards"], timer.data["effect"]) == ("prepare", "escalates")
    kinds = [e.kind for e in history_of(statutory, kinds={"task_overdue", "task_reminded", "task_escalated"})]
    assert kinds == ["task_overdue"]  # recorded, but the diagram's own timer did the escalating
    assert notices(statutory, "task_escalated") == [] and len(notices(statutory, "escalation")) == 1


def test_the_sweep_records_task_overdue_when_the_due_date_passes(statutory, engine):
    task = to_submission(engine, statutory)
    sweep(engine, statutory, "2026-03-09T23:59:59+00:00")  # at the very moment: not yet past
    assert history_of(statutory, kinds={"task_overdue"}) == []
    sweep(engine, statutory, "2026-03-10T00:00:00+00:00")
    (overdue,) = history_of(statutory, kinds={"task_overdue"})
    assert (overdue.task_id, overdue.instance_id, overdue.actor) == (task.id, task.instance_id, "system")
    assert overdue.data["due_at"] == "2026-03-09T23:59:59+00:00" and overdue.data["name"] == "Submit the PEP"
    with statutory() as s:
        row = s.get(OpenTask, task.id)
        assert (row.overdue_stage, row.overdue_at.isoformat()) == ("overdue", "2026-03-10T23:59:59+00:00")


def test_a_diagram_may_name_another_role_to_escalate_to_or_none(statutory, engine, clock):
    bundle = latest_bundle_with(
        statutory,
        clock,
        '<spiffworkflow:property name="dueDate" value="review_due" />',
        '<spiffworkflow:property name="dueDate" value="review_due" />'
        '<spiffworkflow:property name="overdueEscalateTo" value="VSH" />',
    )
    assert bundle
    task = to_submission(engine, statutory)
    assert task.overdue_escalate_to == "vs_head"


def test_the_shipped_policy_names_known_roles(council):
    from engine.roles import RoleDirectory

    with council() as s:
        policy = Policy.load()
        assert policy.problems(RoleDirectory.load(s)) == []
    assert (policy.remind, policy.escalate_after_working_days, policy.escalate_to) == (True, 1, "VS Education Adviser")


# ---- item 4: statutory events, declared ------------------------------------------------------------


def test_a_pep_records_the_term_it_answers(statutory, engine):
    start(engine, statutory, "test_termly")
    (started,) = history_of(statutory, kinds={"instance_started"})
    assert started.data["answers"] == {"kind": "termly", "term": "2025-26 spring"}


def test_an_initial_pep_records_the_statutory_deadline_it_answers(statutory, engine):
    start(engine, statutory, "test_initial_own_timer", entered_care="2026-03-02")
    (started,) = history_of(statutory, kinds={"instance_started"})
    # the end of the 20th working day after Monday 2 March 2026, in British Summer Time
    assert started.data["answers"] == {"kind": "initial", "deadline": "2026-03-30T22:59:59+00:00"}


def test_the_meeting_held_and_the_sign_off_are_recorded_as_the_diagram_and_form_declare(statutory, engine):
    to_submission(engine, statutory)
    complete(engine, statutory, only_task(statutory), "dt@demo.test", {"summary": "On time"})
    held = history_of(statutory, kinds={"meeting_held"})
    assert [(e.data["date"], e.data["field"], e.data["task"]) for e in held] == [
        ("2026-03-04", "meeting_date", "record_meeting")
    ]
    (signed,) = history_of(statutory, kinds={"pep_signed_off"})
    assert signed.data["element"] == "signed_off" and signed.instance_id == held[0].instance_id


def test_entering_and_leaving_care_are_recorded_with_their_dates(statutory, engine):
    with statutory.begin() as s:
        engine.send_message(
            s,
            "child_becomes_looked_after",
            "C002",
            {"entry": "planned", "entered_care": "2026-02-27", "education_setting": "school"},
        )
    with statutory.begin() as s:
        engine.send_message(s, "child_leaves_care", "C002", {"left_care": "2026-03-01", "reason": "Returned home"})
    recorded = history_of(statutory, "C002", kinds={"entered_care", "left_care"})
    assert [(e.kind, e.data["date"]) for e in recorded] == [("entered_care", "2026-02-27"), ("left_care", "2026-03-01")]


def test_timers_say_what_they_guard_and_whether_they_remind_or_end_it(deployed, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    sweep(engine, council, "2026-03-14T08:00:00+00:00")
    sweep(engine, council, "2026-03-18T00:00:01+00:00")
    timers = history_of(council, kinds={"timer_fired"})
    assert [(e.data["timer"], e.data["guards"], e.data["effect"]) for e in timers] == [
        ("reminder", "complete_pep", "reminds"),
        ("late", "complete_pep", "ends"),
    ]
    (withdrawn,) = history_of(council, kinds={"task_withdrawn"})
    assert withdrawn.data["by_deadline"]["timer"] == "late"


# ---- deploy checks the declarations ------------------------------------------------------------------


def latest_bundle_with(sessions, clock, old: str, new: str, path="processes/statutory.bpmn"):
    with clocks.using(clock), sessions.begin() as s:
        bundle = latest_bundle(s)
        assert old in bundle.files[path]
        return deploy_changes(s, {path: bundle.files[path].replace(old, new, 1)}, actor="owner@demo.test")


def refused(sessions, clock, changes: dict[str, str]) -> list[str]:
    with clocks.using(clock), sessions() as s:
        with pytest.raises(DeploymentRejected) as caught:
            deploy_changes(s, changes, actor="owner@demo.test")
        s.rollback()
    return [f"{e.element_id}: {e.message}" for e in caught.value.errors]


def test_deploy_refuses_declarations_it_does_not_know(statutory, clock):
    with statutory() as s:
        files = latest_bundle(s).files
    diagram = files["processes/statutory.bpmn"]
    form = json.loads(files["forms/statutory_meeting.schema.json"])
    form["properties"]["notes"]["x-event"] = "meeting_held"  # not a date question
    errors = refused(
        statutory,
        clock,
        {
            "forms/statutory_meeting.schema.json": json.dumps(form),
            "processes/statutory.bpmn": diagram.replace('value="pep_signed_off"', 'value="pep_approved"')
            .replace('<spiffworkflow:property name="answersDate" value="review_due" />', "")
            .replace(
                'name="dueDate" value="prep_due" />',
                'name="dueDate" value="prep_due" /><spiffworkflow:property name="overdueEscalateTo" value="Head" />',
            ),
        },
    )
    assert any(e.startswith("notes: x-event") and "date question" in e for e in errors), errors
    assert any(e.startswith('signed_off: statutoryEvent "pep_approved"') for e in errors), errors
    assert any(e.startswith('termly_start: answers "termly" needs answersDate') for e in errors), errors
    assert any(e.startswith('prepare: overdueEscalateTo: "Head" is not a known role') for e in errors), errors


# ---- histories written before these events still replay and verify --------------------------------------


@pytest.mark.tampered  # rewritten below as the engine wrote it before the statutory vocabulary
def test_a_history_written_before_the_statutory_events_still_replays_and_verifies(statutory, engine):
    to_submission(engine, statutory)
    sweep(engine, statutory, "2026-03-11T00:00:30+00:00")  # overdue, reminded, escalated
    complete(engine, statutory, only_task(statutory), "dt@demo.test", {"summary": "Late"})
    start_review(engine, statutory)
    complete(engine, statutory, only_task(statutory), "sw@demo.test", MEETING)
    sweep(engine, statutory, "2026-03-20T09:00:00+00:00")  # the review's deadline ends the DT's task
    with statutory() as s:
        assert replay_child(s, engine, "C001").ok
        assert any("guards" in e.data for e in events(s, "C001") if e.kind == "timer_fired")
    with statutory.begin() as s:  # the same history as the engine wrote it before: none of the new events or keys
        written = events(s, "C001")
        sizes = {
            e.id: sum(1 for later in written[i : i + e.data["step_events"]] if later.kind not in NEW_KINDS)
            for i, e in enumerate(written)
            if "step_events" in e.data
        }
        s.execute(delete(Event).where(Event.child_id == "C001", Event.kind.in_(NEW_KINDS)))
        for seq, event in enumerate((e for e in written if e.kind not in NEW_KINDS), start=1):
            data = {
                k: v
                for k, v in event.data.items()
                if k not in ("answers", "guards", "guards_name", "effect", "by_deadline")
            }
            if event.id in sizes:
                data["step_events"] = sizes[event.id]
            event.seq, event.data = seq, data
        s.flush()
        rechain(s)
        s.get(Child, "C001").history_seq = seq
    with statutory() as s:
        assert all(e.kind not in NEW_KINDS for e in events(s, "C001"))
        result = replay_child(s, engine, "C001")
        assert result.ok, result.problems
        assert history.verify(s, "C001").ok
