"""Central Bedfordshire's Post 16 PEP protocol (processes/post16.bpmn), driven step by step.

The young person is P16 of the demo council (social worker sw2, designated teacher at Riverside
College, Personal Adviser, carer and the young person in the case team). The clock starts on Monday
2 March 2026; the agreed meeting is on Tuesday 24 March 2026, so the social worker must confirm it by
Saturday 14 March and the designated teacher must submit by Tuesday 31 March (5 working days).
"""

from __future__ import annotations

import pytest
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import Bundle, deploy
from engine.history import events
from engine.models import Instance, Notification, OpenTask, User
from engine.runtime import FormInvalid, NotAllowed, TaskNotReady
from tests.conftest import shipped_bundle

from ..helpers import recorded_after_the_fact, sweep

CHILD = "P16"
SW, DT, PA = "sw2@council.test", "dt@college.test", "pa@council.test"
EA, EA2, ADMIN = "ea@council.test", "ea2@council.test", "admin@council.test"
OTHER_SW, OTHER_DT = "sw@council.test", "dt@elm.test"
MEETING_DATE = "2026-03-24"

PREVIOUS_TARGETS = [
    {"what": "Complete the Level 2 maths resit coursework", "strategies": "Weekly tutor session", "who": "Maths tutor",
     "by_when": "2026-02-27", "pp_plus_amount": 150},
]
CONFIRM = {"meeting_date": MEETING_DATE, "meeting_time": "10:00", "venue": "Riverside College, room 4",
           "chair": "VS Education Adviser", "confirmed_with_school": True, "confirmed_with_carer": "Yes",
           "confirmed_with_virtual_school": True}
PREPARE = {"education_provider": "Riverside College", "course_of_study": "Level 2 Construction",
           "qualification_level": "Level 2", "progress_summary": "On track in all units; maths predicted grade 4.",
           "attendance_percent": 91.5, "attendance_notes": "Autumn and spring terms to date",
           "previous_targets": [{"what": "Complete the Level 2 maths resit coursework", "outcome": "Achieved"}]}
SDQ_CURRENT = {"sdq_on_file": True, "sdq_young_person_score": 14, "sdq_young_person_date": "2025-11-10",
               "sdq_key_worker_score": 16, "sdq_key_worker_date": "2025-12-01", "sdq_key_worker_name": "Kim Keyworker"}
CHAIR = {"meeting_date": MEETING_DATE, "chaired_by_name": "Erin Adviser", "young_person_present": True,
         "carer_present": "Yes"}
SOCIAL_CARE = {"social_care_input": "Settled in placement; preparing for semi-independent living.",
               "living_arrangements": "Foster placement, Leighton Buzzard", "pathway_plan_up_to_date": True}
TARGETS = [
    {"what": "Pass the Level 2 maths resit", "strategies": "Two tutor sessions a week", "who": "Maths tutor",
     "evidence_of_impact": "Mock grade 5", "by_when": "2026-06-12", "pp_plus_amount": 300},
    {"what": "Apply for a Level 3 apprenticeship", "strategies": "Careers adviser sessions", "who": "Personal Adviser",
     "by_when": "2026-05-29"},
]
RECORD = {"meeting_notes": "Reviewed progress and next steps.", "young_person_views": "I want to be an electrician.",
          "carer_views": "Proud of the progress.", "targets": TARGETS, "next_meeting_date": "2026-06-23",
          "next_meeting_time": "14:00", "next_meeting_venue": "Riverside College, room 4"}
SUBMIT = {"update_notes": "Added the careers plan.", "targets": TARGETS, "action": "Submit the ePEP",
          "understood_cannot_amend": True}
QA_CHECKS = {"child_voice_evident": True, "previous_targets_evaluated": True, "targets_smart": True,
             "eet_plan_recorded": True}
QA_READY = {"qa_rating": "Green", "qa_feedback": "Clear, SMART targets and the young person's voice.",
            "qa_outcome": "Ready for saving", **QA_CHECKS}
SAVE = {"saved_in_mosaic": True, "saved_in_virtual_school_box": True, "saved_on": "2026-04-01",
        "copy_sent_to_conference_and_review_team": True, "copy_sent_to_social_worker": True,
        "copy_sent_to_leaving_care_team_administrator": True}
DISTRIBUTE = {"distributed_on": "2026-04-02", "shared_with_young_person": True, "shared_with_foster_carer": "Shared",
              "shared_with_parents": "Not appropriate", "reason_not_shared": "Court order: no contact."}
CASE_NOTE = {"case_note_added": True, "case_note_date": "2026-04-02"}

CYCLE_CATCHER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="catcher" targetNamespace="http://t">
  <bpmn:message id="pep_cycle_due" name="pep_cycle_due" />
  <bpmn:process id="test_cycle_catcher" isExecutable="true">
    <bpmn:startEvent id="caught"><bpmn:outgoing>c1</bpmn:outgoing>
      <bpmn:messageEventDefinition id="caught_def" messageRef="pep_cycle_due">
        <bpmn:extensionElements><spiffworkflow:messageVariable>cycle</spiffworkflow:messageVariable></bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="c1" sourceRef="caught" targetRef="done" />
    <bpmn:endEvent id="done"><bpmn:incoming>c1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


# ---- fixtures and helpers ---------------------------------------------------------------------

def _deploy(sessions, clock, bundle: Bundle):
    with clocks.using(clock), sessions.begin() as s:
        deploy(s, bundle, actor="owner@council.test")
    return sessions


@pytest.fixture
def council(demo_council, clock):
    """The demo council with only the post-16 diagram and its forms deployed."""
    return _deploy(demo_council, clock, shipped_bundle("post16.bpmn", forms=("post16_",)))


@pytest.fixture
def council_with_router(demo_council, clock):
    """As `council`, plus a stand-in for the cycle router that catches pep_cycle_due."""
    bundle = shipped_bundle("post16.bpmn", forms=("post16_",))
    bundle.add("processes/test_cycle_catcher.bpmn", CYCLE_CATCHER)
    return _deploy(demo_council, clock, bundle)


def start(engine, sessions, child=CHILD, next_meeting_date=MEETING_DATE, previous_targets=PREVIOUS_TARGETS) -> int:
    """Send post16_review_due, as the cycle router does, and return the new instance's id."""
    payload = {"variant": "post16_review_due", "next_meeting_date": next_meeting_date,
               "previous_targets": previous_targets}
    with sessions.begin() as s:
        started = engine.send_message(s, "post16_review_due", child, payload)
        assert [i.definition.process_id for i in started] == ["post16"]
        return started[0].id


def open_tasks(sessions, child=CHILD) -> list[OpenTask]:
    with sessions() as s:
        return s.scalars(select(OpenTask).where(OpenTask.child_id == child).order_by(OpenTask.ready_at)).all()


def only_task(sessions, spec_id: str | None = None, child=CHILD) -> OpenTask:
    tasks = open_tasks(sessions, child)
    assert len(tasks) == 1, [t.spec_id for t in tasks]
    if spec_id:
        assert tasks[0].spec_id == spec_id
    return tasks[0]


def task(sessions, spec_id: str, child=CHILD) -> OpenTask:
    found = [t for t in open_tasks(sessions, child) if t.spec_id == spec_id]
    assert len(found) == 1, [t.spec_id for t in open_tasks(sessions, child)]
    return found[0]


def complete(engine, sessions, open_task: OpenTask, actor: str, data: dict):
    with sessions() as s:
        recorded_after_the_fact(engine, s, open_task.id, actor, data)
    with sessions.begin() as s:
        return engine.complete_task(s, open_task.id, actor, data)


def do(engine, sessions, spec_id: str, actor: str, data: dict):
    """Complete the open task `spec_id` as `actor`."""
    return complete(engine, sessions, task(sessions, spec_id), actor, data)


def view(engine, sessions, spec_id: str, actor: str) -> dict:
    with sessions() as s:
        return engine.task_view(s, task(sessions, spec_id).id, actor)


def data(engine, sessions, instance_id: int) -> dict:
    """The instance's process data: what its open task sees, else what its last step left."""
    with sessions() as s:
        instance = s.get(Instance, instance_id)
        spec, subprocess_specs = engine.serializer.spec_from_dict(instance.definition.spec)
        workflow = engine.serializer.state_from_dict(instance.state, spec, subprocess_specs, engine.script_engine)
    ready = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
    return dict((ready[0] if ready else workflow.last_task).data)


def notices(sessions, kind: str | None = None, since: int = 0) -> list[tuple[str, str]]:
    """(recipient, subject) of queued notifications: a user's email, or "pool:<role>"."""
    with sessions() as s:
        query = select(Notification, User.email).outerjoin(User, User.id == Notification.user_id).where(
            Notification.id > since).order_by(Notification.id)
        if kind:
            query = query.where(Notification.kind == kind)
        return [(email or f"pool:{n.role_key}", n.subject) for n, email in s.execute(query)]


def last_notice_id(sessions) -> int:
    with sessions() as s:
        return max(s.scalars(select(Notification.id)).all(), default=0)


def history(sessions, child=CHILD):
    with sessions() as s:
        return events(s, child)


def to_prepare(engine, sessions, confirm=CONFIRM) -> int:
    instance_id = start(engine, sessions)
    do(engine, sessions, "confirm_meeting", SW, confirm)
    return instance_id


def to_meeting(engine, sessions, confirm=CONFIRM, sdq=SDQ_CURRENT) -> int:
    instance_id = to_prepare(engine, sessions, confirm)
    do(engine, sessions, "prepare_epep", DT, PREPARE)
    do(engine, sessions, "collect_sdq", SW, sdq)
    return instance_id


def to_submission(engine, sessions) -> int:
    instance_id = to_meeting(engine, sessions)
    do(engine, sessions, "chair_meeting_ea", EA, CHAIR)
    do(engine, sessions, "provide_social_care_input", SW, SOCIAL_CARE)
    do(engine, sessions, "record_meeting", DT, RECORD)
    return instance_id


def to_qa(engine, sessions) -> int:
    instance_id = to_submission(engine, sessions)
    do(engine, sessions, "update_and_submit", DT, SUBMIT)
    return instance_id


def to_filing(engine, sessions) -> int:
    instance_id = to_qa(engine, sessions)
    do(engine, sessions, "quality_assure", EA, QA_READY)
    return instance_id


# ---- Pre PEP: the social worker confirms the meeting at least 10 days ahead -------------------

def test_the_agreed_meeting_goes_to_the_social_worker_to_confirm_ten_days_ahead(council, engine):
    start(engine, council)
    confirm = only_task(council, "confirm_meeting")
    assert (confirm.role_key, confirm.lane) == ("social_worker", "Social Worker")
    with council() as s:
        assert s.get(User, confirm.assignee_id).email == SW
    # 10 calendar days before Tuesday 24 March: the end of Saturday 14 March
    assert confirm.due_at.isoformat() == "2026-03-14T23:59:59+00:00"
    shown = view(engine, council, "confirm_meeting", SW)
    assert shown["data"]["meeting_date"] == MEETING_DATE
    assert "at least 10 days before the meeting (by 14 March 2026)" in shown["instructions"]


def test_without_an_agreed_date_the_social_worker_arranges_one_first(council, engine):
    start(engine, council, next_meeting_date=None, previous_targets=[])
    only_task(council, "arrange_meeting")
    do(engine, council, "arrange_meeting", SW,
       {"meeting_date": "2026-04-21", "meeting_time": "09:30", "venue": "Riverside College"})
    confirm = only_task(council, "confirm_meeting")
    assert confirm.due_at.isoformat() == "2026-04-11T22:59:59+00:00"  # end of 11 April, BST
    assert view(engine, council, "confirm_meeting", SW)["data"]["venue"] == "Riverside College"


def test_only_the_young_persons_social_worker_confirms_the_meeting(council, engine):
    start(engine, council)
    for outsider in (DT, OTHER_SW, EA):
        with pytest.raises(NotAllowed):
            do(engine, council, "confirm_meeting", outsider, CONFIRM)


def test_a_confirmation_must_cover_school_carer_virtual_school_and_the_chair(council, engine):
    start(engine, council)
    bad = {**CONFIRM, "meeting_time": "10am", "confirmed_with_virtual_school": False}
    del bad["chair"]
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "confirm_meeting", SW, bad)
    assert caught.value.errors == {
        "chair": "Select who will chair the meeting",
        "confirmed_with_virtual_school": "Date and venue confirmed with the Virtual School must be confirmed (Yes)",
        "meeting_time": "Meeting time must be a time like 09:30",
    }


def test_confirming_the_meeting_tells_the_school_carer_young_person_and_virtual_school(council, engine):
    start(engine, council)
    before = last_notice_id(council)
    do(engine, council, "confirm_meeting", SW, CONFIRM)
    told = notices(council, "notice", since=before)
    assert sorted(r for r, _ in told) == sorted(
        [DT, "carer@home.test", "yp@home.test", "pool:vs_education_adviser", "pool:vs_administrator", PA])
    assert {subject for _, subject in told} == {
        "Drew Placeholder's post-16 PEP meeting: 2026-03-24 at 10:00, Riverside College, room 4"}


def test_confirmation_late_reminds_the_social_worker_then_escalates_to_the_virtual_school(council, engine):
    start(engine, council)
    confirm = only_task(council, "confirm_meeting")
    assert sweep(engine, council, "2026-03-11T08:59:00+00:00").timers_fired == 0
    assert sweep(engine, council, "2026-03-11T09:00:01+00:00").timers_fired == 1
    assert notices(council, "reminder") == [
        (SW, "Confirm Drew Placeholder's post-16 PEP meeting by 2026-03-14")]
    assert sweep(engine, council, "2026-03-15T00:00:00+00:00").timers_fired == 1
    assert sorted(notices(council, "escalation")) == [
        ("pool:vs_education_adviser", "Drew Placeholder's post-16 PEP meeting on 2026-03-24 is not confirmed 10 days ahead"),
        (SW, "Drew Placeholder's post-16 PEP meeting on 2026-03-24 is not confirmed 10 days ahead"),
    ]
    assert only_task(council).id == confirm.id  # the task stays with the social worker
    do(engine, council, "confirm_meeting", SW, CONFIRM)
    completed = [e for e in history(council) if e.kind == "task_completed"][-1]
    assert completed.data["late"] is True
    only_task(council, "prepare_epep")


# ---- Pre PEP: the designated teacher's ePEP and the SDQ -----------------------------------------

def test_the_designated_teacher_completes_the_epep_before_the_meeting_with_previous_targets_prefilled(council, engine):
    to_prepare(engine, council)
    prepare = only_task(council, "prepare_epep")
    assert prepare.role_key == "designated_teacher"
    assert prepare.due_at.isoformat() == "2026-03-23T23:59:59+00:00"  # the working day before the meeting
    shown = view(engine, council, "prepare_epep", DT)
    assert shown["data"]["previous_targets"] == PREVIOUS_TARGETS
    assert "progress data, attendance figures and the review of the previous targets (1 carried over" in shown[
        "instructions"]
    with pytest.raises(NotAllowed):
        do(engine, council, "prepare_epep", OTHER_DT, PREPARE)
    bad = {**PREPARE, "attendance_percent": 120, "previous_targets": [{"what": "Maths coursework"}]}
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "prepare_epep", DT, bad)
    assert caught.value.errors == {"attendance_percent": "Attendance (%) must be 100 or less",
                                   "previous_targets.0.outcome": "Review of previous target 1: select outcome"}


def test_the_social_worker_collects_the_most_recent_sdq_with_the_designated_teacher(council, engine):
    to_prepare(engine, council)
    do(engine, council, "prepare_epep", DT, PREPARE)
    sdq = only_task(council, "collect_sdq")
    assert sdq.role_key == "social_worker"
    assert "With the designated teacher, collect" in view(engine, council, "collect_sdq", SW)["instructions"]
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "collect_sdq", SW, {"sdq_on_file": True, "sdq_young_person_score": 41})
    assert set(caught.value.errors) == {"sdq_young_person_score", "sdq_young_person_date", "sdq_key_worker_score",
                                        "sdq_key_worker_date"}


def test_a_recent_sdq_is_recorded_and_not_flagged(council, engine):
    instance_id = to_meeting(engine, council)
    state = data(engine, council, instance_id)
    assert (state["sdq_last_date"], state["sdq_out_of_date"]) == ("2025-11-10", False)
    assert notices(council, "flag") == []


def test_an_sdq_older_than_a_year_is_flagged_to_the_social_worker_and_teacher(council, engine):
    stale = {**SDQ_CURRENT, "sdq_key_worker_date": "2025-03-24"}  # exactly a year before the meeting
    instance_id = to_meeting(engine, council, sdq=stale)
    assert data(engine, council, instance_id)["sdq_out_of_date"] is True
    assert sorted(notices(council, "flag")) == [
        (DT, "Drew Placeholder's SDQ is more than 12 months old"),
        (SW, "Drew Placeholder's SDQ is more than 12 months old"),
    ]
    assert "the SDQ is more than 12 months old (oldest 24 March 2025)" in view(
        engine, council, "chair_meeting_ea", EA)["instructions"]


def test_no_sdq_on_file_is_flagged_too(council, engine):
    to_meeting(engine, council, sdq={"sdq_on_file": False})
    assert [r for r, s in notices(council, "flag") if s.endswith("(none on file)")] == [SW, DT]


# ---- The PEP meeting ----------------------------------------------------------------------------

def test_the_vs_education_adviser_chairs_from_the_pool_and_who_chaired_is_recorded(council, engine):
    instance_id = to_meeting(engine, council)
    chair = only_task(council, "chair_meeting_ea")
    assert (chair.role_key, chair.pooled, chair.assignee_id) == ("vs_education_adviser", True, None)
    assert chair.due_at.isoformat() == "2026-03-24T23:59:59+00:00"
    with council.begin() as s:
        engine.claim(s, chair.id, EA)
    with pytest.raises(NotAllowed):
        do(engine, council, "chair_meeting_ea", EA2, CHAIR)
    do(engine, council, "chair_meeting_ea", EA, CHAIR)
    state = data(engine, council, instance_id)
    assert (state["chaired_by_role"], state["chaired_by_name"]) == ("VS Education Adviser", "Erin Adviser")


def test_the_personal_adviser_can_chair_the_meeting_instead(council, engine):
    instance_id = to_meeting(engine, council, confirm={**CONFIRM, "chair": "Personal Adviser"})
    chair = only_task(council, "chair_meeting_pa")
    assert (chair.role_key, chair.pooled) == ("personal_adviser", False)
    with pytest.raises(NotAllowed):
        do(engine, council, "chair_meeting_pa", EA, CHAIR)
    assert "As Drew Placeholder's Personal Adviser, chair" in view(engine, council, "chair_meeting_pa", PA)[
        "instructions"]
    do(engine, council, "chair_meeting_pa", PA, {**CHAIR, "chaired_by_name": "Pat Adviser", "carer_present": "No"})
    assert data(engine, council, instance_id)["chaired_by_role"] == "Personal Adviser"
    assert {t.spec_id for t in open_tasks(council)} == {"provide_social_care_input", "record_meeting"}


def test_at_the_meeting_the_social_worker_gives_social_care_input_and_the_teacher_records_it(council, engine):
    instance_id = to_meeting(engine, council)
    do(engine, council, "chair_meeting_ea", EA, CHAIR)
    assert task(council, "provide_social_care_input").role_key == "social_worker"
    assert task(council, "record_meeting").role_key == "designated_teacher"
    with pytest.raises(NotAllowed):
        do(engine, council, "record_meeting", SW, RECORD)
    without_next = {k: v for k, v in RECORD.items() if not k.startswith("next_meeting")}
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "record_meeting", DT, {**without_next, "young_person_views": ""})
    assert caught.value.errors == {
        "next_meeting_date": "Enter next PEP meeting: date",
        "next_meeting_time": "Enter next PEP meeting: time",
        "next_meeting_venue": "Enter next PEP meeting: venue",
        "young_person_views": "Enter the young person's views",
    }
    do(engine, council, "record_meeting", DT, RECORD)
    only_task(council, "provide_social_care_input")  # the submission waits for the social care input
    do(engine, council, "provide_social_care_input", SW, SOCIAL_CARE)
    only_task(council, "update_and_submit")
    state = data(engine, council, instance_id)
    assert (state["young_person_views"], state["next_meeting_date"]) == ("I want to be an electrician.", "2026-06-23")


# ---- Post PEP: submission within 5 working days ---------------------------------------------------

def test_the_teacher_must_submit_within_five_working_days_reminded_then_escalated_to_the_ea(council, engine):
    to_submission(engine, council)
    submit = only_task(council, "update_and_submit")
    assert submit.due_at.isoformat() == "2026-03-31T22:59:59+00:00"  # Tuesday 31 March, end of day (BST)
    assert sweep(engine, council, "2026-03-27T08:59:00+00:00").timers_fired == 0
    assert sweep(engine, council, "2026-03-27T09:00:01+00:00").timers_fired == 1
    assert notices(council, "reminder") == [(DT, "Drew Placeholder's ePEP must be submitted by 2026-03-31")]
    assert sweep(engine, council, "2026-03-31T23:00:00+00:00").timers_fired == 1
    assert sorted(notices(council, "escalation")) == [
        (DT, "Drew Placeholder's ePEP is overdue (due 2026-03-31)"),
        ("pool:vs_education_adviser", "Drew Placeholder's ePEP is overdue (due 2026-03-31)"),
    ]
    assert only_task(council).id == submit.id  # only the teacher can submit: the task stays with them
    do(engine, council, "update_and_submit", DT, SUBMIT)
    only_task(council, "quality_assure")


def test_the_teacher_can_send_the_link_to_the_ea_for_checking_before_submitting(council, engine):
    instance_id = to_submission(engine, council)
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "update_and_submit", DT, {**SUBMIT, "action": "Send the link for checking"})
    assert caught.value.errors == {"checker": "Select send for checking to"}
    do(engine, council, "update_and_submit", DT,
       {**SUBMIT, "action": "Send the link for checking", "checker": "VS Education Adviser"})
    check = only_task(council, "check_epep_ea")
    assert (check.role_key, check.pooled) == ("vs_education_adviser", True)
    do(engine, council, "check_epep_ea", EA, {"check_comments": "Add a date to target 2.", "ready_to_submit": False})
    again = only_task(council, "update_and_submit")
    assert again.due_at.isoformat() == "2026-03-31T22:59:59+00:00"  # checking does not move the deadline
    assert view(engine, council, "update_and_submit", DT)["data"]["check_comments"] == "Add a date to target 2."
    assert data(engine, council, instance_id)["submission_count"] == 0  # nothing submitted yet


def test_the_teacher_can_send_the_link_to_the_personal_adviser_for_checking(council, engine):
    to_submission(engine, council)
    do(engine, council, "update_and_submit", DT,
       {**SUBMIT, "action": "Send the link for checking", "checker": "Personal Adviser"})
    check = only_task(council, "check_epep_pa")
    with council() as s:
        assert s.get(User, check.assignee_id).email == PA
    do(engine, council, "check_epep_pa", PA, {"check_comments": "Looks good.", "ready_to_submit": True})
    do(engine, council, "update_and_submit", DT, SUBMIT)
    only_task(council, "quality_assure")


def test_submitting_needs_the_teacher_to_accept_it_cannot_be_amended(council, engine):
    to_submission(engine, council)
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "update_and_submit", DT, {**SUBMIT, "understood_cannot_amend": False})
    assert caught.value.errors == {
        "understood_cannot_amend": "I understand that once submitted the ePEP cannot be amended must be Yes to submit"}


def test_once_submitted_the_epep_cannot_be_amended(council, engine):
    instance_id = to_submission(engine, council)
    submit = only_task(council, "update_and_submit")
    complete(engine, council, submit, DT, SUBMIT)
    with pytest.raises(TaskNotReady):
        complete(engine, council, submit, DT, {**SUBMIT, "update_notes": "A late change"})
    assert [t.spec_id for t in open_tasks(council)] == ["quality_assure"]  # no task can edit it now
    state = data(engine, council, instance_id)
    assert (state["epep_status"], state["submission_count"]) == ("submitted", 1)
    assert state["submissions"][0]["targets"] == TARGETS
    assert state["submissions"][0]["update_notes"] == "Added the careers plan."


# ---- Post PEP: quality assurance and resubmission --------------------------------------------------

def test_a_red_rating_must_be_sent_back_for_resubmission(council, engine):
    to_qa(engine, council)
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "quality_assure", EA, {**QA_READY, "qa_rating": "Red"})
    assert caught.value.errors == {"qa_outcome": "A Red ePEP must be resubmitted"}
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "quality_assure", EA, {**QA_READY, "qa_outcome": "Resubmission requested"})
    assert caught.value.errors == {"resubmission_working_days": "Enter working days allowed for the resubmission"}
    with pytest.raises(NotAllowed):
        do(engine, council, "quality_assure", DT, QA_READY)


def test_a_green_rating_is_refused_when_a_quality_check_is_answered_no(council, engine):
    to_qa(engine, council)
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "quality_assure", EA, {**QA_READY, "eet_plan_recorded": False})
    assert caught.value.errors == {"qa_rating": "Green means every check is met, but the education, employment or "
                                                "training plan is not recorded: choose Amber or Red, or change that answer"}
    do(engine, council, "quality_assure", EA, {**QA_READY, "eet_plan_recorded": False, "qa_rating": "Amber"})
    assert "quality_assure" not in [t.spec_id for t in open_tasks(council)]

def test_qa_resubmission_reopens_the_epep_with_a_new_deadline_and_keeps_the_first_submission(council, engine):
    instance_id = to_qa(engine, council)
    engine.clock.set("2026-04-02T10:00:00+01:00")  # Thursday before Easter
    before = last_notice_id(council)
    do(engine, council, "quality_assure", EA, {**QA_CHECKS, "qa_rating": "Red", "qa_feedback": "Targets are not SMART.",
                                               "qa_outcome": "Resubmission requested", "resubmission_working_days": 5})
    reopened = only_task(council, "update_and_submit")
    # Good Friday and Easter Monday are skipped: five working days from 2 April is Monday 13 April
    assert reopened.due_at.isoformat() == "2026-04-13T22:59:59+00:00"
    assert (DT, "Resubmission requested: Drew Placeholder's ePEP, by 2026-04-13") in notices(council, since=before)
    assert view(engine, council, "update_and_submit", DT)["instructions"].startswith(
        "The VS Education Adviser has asked for the ePEP to be resubmitted: Targets are not SMART.")
    # the deadline moved: the timers wait for it rather than firing at once
    assert sweep(engine, council, "2026-04-02T12:00:00+01:00").timers_fired == 0
    assert sweep(engine, council, "2026-04-09T09:00:01+01:00").timers_fired == 1  # the reminder
    assert only_task(council).id == reopened.id
    first_state = data(engine, council, instance_id)
    assert first_state["epep_status"] == "reopened for resubmission"
    better = [{**t, "evidence_of_impact": "Measured termly"} for t in TARGETS]
    do(engine, council, "update_and_submit", DT, {**SUBMIT, "targets": better})
    state = data(engine, council, instance_id)
    assert [s["submission"] for s in state["submissions"]] == [1, 2]
    assert state["submissions"][0]["targets"] == TARGETS  # the first submission is kept as it was
    assert state["submissions"][1]["targets"] == better
    submitted = [e for e in history(council) if e.kind == "task_completed" and e.data["task"] == "update_and_submit"]
    assert [e.data["data"]["targets"] for e in submitted] == [TARGETS, better]
    do(engine, council, "quality_assure", EA, QA_READY)
    only_task(council, "save_and_circulate")


# ---- Post PEP: saving, circulation, distribution and the case note ---------------------------------

def test_ready_for_saving_notifies_the_vs_administrator_who_saves_and_sends_copies(council, engine):
    to_qa(engine, council)
    before = last_notice_id(council)
    do(engine, council, "quality_assure", EA, QA_READY)
    assert ("pool:vs_administrator", "Drew Placeholder's ePEP is quality assured and ready for saving") in notices(
        council, "notice", since=before)
    save = only_task(council, "save_and_circulate")
    assert (save.role_key, save.pooled) == ("vs_administrator", True)
    assert "Conference and Review Team, the social worker and the leaving care team administrator" in view(
        engine, council, "save_and_circulate", ADMIN)["instructions"]
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "save_and_circulate", ADMIN, {**SAVE, "copy_sent_to_leaving_care_team_administrator": False})
    assert caught.value.errors == {"copy_sent_to_leaving_care_team_administrator":
                                   "Copy sent to the leaving care team administrator must be confirmed (Yes)"}
    with pytest.raises(NotAllowed):
        do(engine, council, "save_and_circulate", EA, SAVE)
    before = last_notice_id(council)
    do(engine, council, "save_and_circulate", ADMIN, SAVE)
    assert (SW, "Drew Placeholder's ePEP is saved in Mosaic and Virtual School Box") in notices(
        council, "notice", since=before)
    only_task(council, "distribute_pep")


def test_the_social_worker_distributes_the_pep_sharing_with_carers_and_parents_if_appropriate(council, engine):
    to_filing(engine, council)
    do(engine, council, "save_and_circulate", ADMIN, SAVE)
    distribute = only_task(council, "distribute_pep")
    assert distribute.role_key == "social_worker"
    assert "It is your responsibility, as the social worker, to share the PEP with foster carers and parents if " \
           "appropriate." in view(engine, council, "distribute_pep", SW)["instructions"]
    without_reason = {k: v for k, v in DISTRIBUTE.items() if k != "reason_not_shared"}
    with pytest.raises(FormInvalid) as caught:
        do(engine, council, "distribute_pep", SW, without_reason)
    assert caught.value.errors == {"reason_not_shared": "Enter why it was not appropriate to share"}
    do(engine, council, "distribute_pep", SW, DISTRIBUTE)
    note = only_task(council, "add_case_note")
    assert "stating that the PEP has been added to ECM under education" in view(
        engine, council, "add_case_note", SW)["instructions"]
    with pytest.raises(FormInvalid):
        do(engine, council, "add_case_note", SW, {**CASE_NOTE, "case_note_added": False})
    assert only_task(council).id == note.id


def test_the_case_note_ends_the_pep_and_throws_the_next_cycle_with_date_and_targets(council_with_router, engine):
    sessions = council_with_router
    instance_id = to_filing(engine, sessions)
    do(engine, sessions, "save_and_circulate", ADMIN, SAVE)
    do(engine, sessions, "distribute_pep", SW, DISTRIBUTE)
    do(engine, sessions, "add_case_note", SW, CASE_NOTE)
    with sessions() as s:
        assert s.get(Instance, instance_id).status == "completed"
        successor = s.scalars(select(Instance).where(Instance.previous_instance_id == instance_id)).one()
        assert successor.definition.process_id == "test_cycle_catcher"
    assert open_tasks(sessions) == []
    steps = history(sessions)
    finished = next(e for e in reversed(steps) if e.instance_id == instance_id and "path" in e.data)
    assert finished.data["path"][-1] == "next_pep_due"
    started = next(e for e in steps if e.kind == "instance_started" and e.instance_id == successor.id)
    assert started.data["message"] == "pep_cycle_due"
    assert started.data["data"] == {"variant": "post16_review_due", "next_meeting_date": "2026-06-23",
                                    "previous_targets": TARGETS}


def test_a_finished_pep_with_no_router_deployed_completes_after_throwing_pep_cycle_due(council, engine):
    instance_id = to_filing(engine, council)
    do(engine, council, "save_and_circulate", ADMIN, SAVE)
    do(engine, council, "distribute_pep", SW, DISTRIBUTE)
    do(engine, council, "add_case_note", SW, CASE_NOTE)
    with council() as s:
        assert s.get(Instance, instance_id).status == "completed"
    steps = history(council)
    assert steps[-1].kind == "instance_completed"
    last_step = next(e for e in reversed(steps) if "path" in e.data)
    assert last_step.data["name"] == "Add the case note: PEP added to ECM under education"
    assert last_step.data["path"][-1] == "next_pep_due"


# ---- Cancelled or rescheduled meetings ---------------------------------------------------------------

ALL_PARTIES = sorted([SW, DT, "carer@home.test", "yp@home.test", "pool:vs_education_adviser", PA,
                      "pool:vs_administrator"])


def test_confirming_shows_that_a_meeting_should_not_be_cancelled_and_how_to_tell_everyone(council, engine):
    start(engine, council)
    shown = view(engine, council, "confirm_meeting", SW)["instructions"]
    assert "Wherever possible the PEP meeting should not be cancelled." in shown
    assert "all parties, including the VS Administrator, are then told immediately" in shown


def test_a_cancelled_meeting_tells_every_party_at_once_and_the_social_worker_rearranges_it(council, engine):
    instance_id = to_prepare(engine, council)
    before = last_notice_id(council)
    with council.begin() as s:
        caught = engine.send_message(s, "meeting_cancelled", CHILD, {"reason": "Young person in hospital"},
                                     actor=SW)
    assert [i.id for i in caught] == [instance_id]
    told = notices(council, "cancellation", since=before)
    assert sorted(r for r, _ in told) == ALL_PARTIES
    assert {s for _, s in told} == {"CANCELLED: Drew Placeholder's post-16 PEP meeting on 2026-03-24"}
    arrange = only_task(council, "arrange_meeting")  # the teacher's ePEP task is withdrawn
    assert arrange.role_key == "social_worker"
    assert view(engine, council, "arrange_meeting", SW)["instructions"].startswith(
        "The PEP meeting for Drew Placeholder was cancelled (Young person in hospital).")
    assert data(engine, council, instance_id)["cancellations"][0]["reason"] == "Young person in hospital"
    assert "task_withdrawn" in [e.kind for e in history(council)[-12:]]
    do(engine, council, "arrange_meeting", SW, {"meeting_date": "2026-04-28", "meeting_time": "11:00",
                                                "venue": "Riverside College"})
    assert only_task(council, "confirm_meeting").due_at.isoformat() == "2026-04-18T22:59:59+00:00"


def test_a_meeting_cancelled_on_the_day_withdraws_the_chairs_task(council, engine):
    to_meeting(engine, council, confirm={**CONFIRM, "chair": "Personal Adviser"})
    with council.begin() as s:
        engine.send_message(s, "meeting_cancelled", CHILD, {"reason": "College closed (snow)"})
    only_task(council, "arrange_meeting")
    assert len(notices(council, "cancellation")) == len(ALL_PARTIES)


def test_a_rescheduled_meeting_moves_the_confirmation_deadline_and_tells_everyone(council, engine):
    instance_id = start(engine, council)
    before = last_notice_id(council)
    with council.begin() as s:
        engine.send_message(s, "meeting_rescheduled", CHILD, {"meeting_date": "2026-04-21", "meeting_time": "13:30",
                                                              "venue": "Virtual School office",
                                                              "reason": "Exam clash"})
    moved = [(r, s) for r, s in notices(council, "notice", since=before) if s.startswith("MOVED")]
    assert sorted(r for r, _ in moved) == ALL_PARTIES
    assert moved[0][1] == "MOVED: Drew Placeholder's post-16 PEP meeting is now 2026-04-21 at 13:30"
    confirm = only_task(council, "confirm_meeting")
    assert confirm.due_at.isoformat() == "2026-04-11T22:59:59+00:00"
    shown = view(engine, council, "confirm_meeting", SW)["data"]
    assert (shown["meeting_date"], shown["meeting_time"], shown["venue"]) == (
        "2026-04-21", "13:30", "Virtual School office")
    # the old deadline (14 March) no longer fires: only the new one does
    assert sweep(engine, council, "2026-03-16T09:00:00+00:00").timers_fired == 0
    assert data(engine, council, instance_id)["reschedules"][0]["reason"] == "Exam clash"


def test_a_meeting_rescheduled_while_the_teacher_prepares_returns_to_confirmation(council, engine):
    to_prepare(engine, council)
    with council.begin() as s:
        engine.send_message(s, "meeting_rescheduled", CHILD, {"meeting_date": "2026-03-31"})
    confirm = only_task(council, "confirm_meeting")
    assert confirm.due_at.isoformat() == "2026-03-21T23:59:59+00:00"
    assert view(engine, council, "confirm_meeting", SW)["data"]["venue"] == "Riverside College, room 4"
    do(engine, council, "confirm_meeting", SW, {**CONFIRM, "meeting_date": "2026-03-31"})
    prepare = only_task(council, "prepare_epep")
    assert prepare.due_at.isoformat() == "2026-03-30T22:59:59+00:00"
    assert view(engine, council, "prepare_epep", DT)["data"]["previous_targets"] == PREVIOUS_TARGETS


def test_a_meeting_moved_to_fewer_than_ten_days_away_is_escalated_at_once(council, engine):
    to_prepare(engine, council)
    engine.clock.set("2026-03-18T09:00:00+00:00")
    with council.begin() as s:
        engine.send_message(s, "meeting_rescheduled", CHILD, {"meeting_date": "2026-03-26", "reason": "Illness"})
    assert only_task(council, "confirm_meeting").due_at.isoformat() == "2026-03-16T23:59:59+00:00"
    # both timers are already due, so they fire in the same step as the message: reminder and escalation
    assert [e.data["timer"] for e in history(council) if e.kind == "timer_fired"] == [
        "confirmation_reminder", "confirmation_overdue"]
    assert sorted(r for r, _ in notices(council, "escalation")) == ["pool:vs_education_adviser", SW]
    assert sweep(engine, council, "2026-03-18T10:00:00+00:00").timers_fired == 0  # once, not over and over
    only_task(council, "confirm_meeting")


def _reach(engine, sessions, stage: str) -> None:
    """Take a new PEP to the pre-meeting task `stage`."""
    start(engine, sessions)
    steps = [("confirm_meeting", SW, {**CONFIRM, "chair": "Personal Adviser" if stage.endswith("_pa") else
                                      "VS Education Adviser"}),
             ("prepare_epep", DT, PREPARE), ("collect_sdq", SW, SDQ_CURRENT)]
    for spec_id, actor, form in steps:
        if spec_id == stage:
            return
        do(engine, sessions, spec_id, actor, form)
    only_task(sessions, stage)


@pytest.mark.parametrize("stage", ["confirm_meeting", "prepare_epep", "collect_sdq", "chair_meeting_ea",
                                   "chair_meeting_pa"])
def test_until_the_meeting_is_held_a_cancellation_is_caught_at_every_step(council, engine, stage):
    _reach(engine, council, stage)
    with council.begin() as s:
        assert len(engine.send_message(s, "meeting_cancelled", CHILD, {"reason": "Strike"})) == 1
    assert sorted(r for r, _ in notices(council, "cancellation")) == ALL_PARTIES
    only_task(council, "arrange_meeting")


@pytest.mark.parametrize("stage", ["confirm_meeting", "prepare_epep", "collect_sdq", "chair_meeting_ea",
                                   "chair_meeting_pa"])
def test_until_the_meeting_is_held_a_reschedule_is_caught_at_every_step(council, engine, stage):
    _reach(engine, council, stage)
    with council.begin() as s:
        assert len(engine.send_message(s, "meeting_rescheduled", CHILD, {"meeting_date": "2026-04-28"})) == 1
    assert len([r for r, subject in notices(council, "notice") if subject.startswith("MOVED")]) == len(ALL_PARTIES)
    assert only_task(council, "confirm_meeting").due_at.isoformat() == "2026-04-18T22:59:59+00:00"


def test_once_the_meeting_is_held_cancellation_messages_reach_no_one(council, engine):
    to_submission(engine, council)
    with council.begin() as s:
        assert engine.send_message(s, "meeting_cancelled", CHILD, {"reason": "too late"}) == []
    only_task(council, "update_and_submit")


def test_messages_for_another_young_person_do_not_touch_this_pep(council, engine):
    start(engine, council)
    start(engine, council, child="P18")
    with council.begin() as s:
        caught = engine.send_message(s, "meeting_cancelled", "P18", {"reason": "moved placement"})
    assert [i.child_id for i in caught] == ["P18"]
    only_task(council, "confirm_meeting")
    only_task(council, "arrange_meeting", child="P18")


# ---- a young person with no education place -------------------------------------------------

def test_without_an_education_place_the_vs_education_advisers_do_the_teachers_steps_to_the_end(council, engine):
    """The Designated Teacher's lane falls back to the VS Education Advisers' pool (config/roles.yaml)."""
    child, their_sw = "NOSCHOOL", "sw@council.test"

    def do_for(spec_id, actor, answers):
        return complete(engine, council, task(council, spec_id, child), actor, answers)

    start(engine, council, child)
    do_for("confirm_meeting", their_sw, CONFIRM)
    prepare = task(council, "prepare_epep", child)
    assert (prepare.lane, prepare.role_key, prepare.pooled) == ("Designated Teacher", "vs_education_adviser", True)
    do_for("prepare_epep", EA, PREPARE)
    do_for("collect_sdq", their_sw, SDQ_CURRENT)
    do_for("chair_meeting_ea", EA, CHAIR)
    do_for("provide_social_care_input", their_sw, SOCIAL_CARE)
    do_for("record_meeting", EA, RECORD)
    do_for("update_and_submit", EA, SUBMIT)
    do_for("quality_assure", "ea2@council.test", QA_READY)
    do_for("save_and_circulate", ADMIN, SAVE)
    do_for("distribute_pep", their_sw, DISTRIBUTE)
    done = do_for("add_case_note", their_sw, CASE_NOTE)
    assert done.status == "completed" and open_tasks(council, child) == []
    assert notices(council, "task_needs_person") == []
