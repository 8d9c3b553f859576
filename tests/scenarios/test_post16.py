"""Central Bedfordshire's Post 16 PEP protocol (processes/post16.bpmn), driven step by step.

The young person is P16 of the demo council (social worker sw2, designated teacher at Riverside
College, Personal Adviser, carer and the young person in the case team). The clock starts on Monday
2 March 2026; the agreed meeting is on Tuesday 24 March 2026, so the social worker must confirm it by
Saturday 14 March and the designated teacher must submit by Tuesday 31 March (5 working days).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.errors import FormInvalid, NotAllowed, TaskNotReady
from engine.models import Instance, User
from tests.conftest import shipped_bundle

from ..helpers import Council

CHILD = "P16"
SW, DT, PA = "sw2@council.test", "dt@college.test", "pa@council.test"
EA, EA2, ADMIN = "ea@council.test", "ea2@council.test", "admin@council.test"
OTHER_SW, OTHER_DT = "sw@council.test", "dt@elm.test"
MEETING_DATE = "2026-03-24"

PREVIOUS_TARGETS = [
    {
        "what": "Complete the Level 2 maths resit coursework",
        "strategies": "Weekly tutor session",
        "who": "Maths tutor",
        "by_when": "2026-02-27",
        "pp_plus_amount": 150,
    },
]
CONFIRM = {
    "meeting_date": MEETING_DATE,
    "meeting_time": "10:00",
    "venue": "Riverside College, room 4",
    "chair": "VS Education Adviser",
    "confirmed_with_school": True,
    "confirmed_with_carer": "Yes",
    "confirmed_with_virtual_school": True,
}
PREPARE = {
    "education_provider": "Riverside College",
    "course_of_study": "Level 2 Construction",
    "qualification_level": "Level 2",
    "progress_summary": "On track in all units; maths predicted grade 4.",
    "attendance_percent": 91.5,
    "attendance_notes": "Autumn and spring terms to date",
    "previous_targets": [{"what": "Complete the Level 2 maths resit coursework", "outcome": "Achieved"}],
}
SDQ_CURRENT = {
    "sdq_on_file": True,
    "sdq_young_person_score": 14,
    "sdq_young_person_date": "2025-11-10",
    "sdq_key_worker_score": 16,
    "sdq_key_worker_date": "2025-12-01",
    "sdq_key_worker_name": "Kim Keyworker",
}
CHAIR = {
    "meeting_date": MEETING_DATE,
    "chaired_by_name": "Erin Adviser",
    "young_person_present": True,
    "carer_present": "Yes",
}
SOCIAL_CARE = {
    "social_care_input": "Settled in placement; preparing for semi-independent living.",
    "living_arrangements": "Foster placement, Leighton Buzzard",
    "pathway_plan_up_to_date": True,
}
TARGETS = [
    {
        "what": "Pass the Level 2 maths resit",
        "strategies": "Two tutor council a week",
        "who": "Maths tutor",
        "evidence_of_impact": "Mock grade 5",
        "by_when": "2026-06-12",
        "pp_plus_amount": 300,
    },
    {
        "what": "Apply for a Level 3 apprenticeship",
        "strategies": "Careers adviser council",
        "who": "Personal Adviser",
        "by_when": "2026-05-29",
    },
]
RECORD = {
    "meeting_notes": "Reviewed progress and next steps.",
    "young_person_views": "I want to be an electrician.",
    "carer_views": "Proud of the progress.",
    "targets": TARGETS,
    "next_meeting_date": "2026-06-23",
    "next_meeting_time": "14:00",
    "next_meeting_venue": "Riverside College, room 4",
}
SUBMIT = {
    "update_notes": "Added the careers plan.",
    "targets": TARGETS,
    "action": "Submit the ePEP",
    "understood_cannot_amend": True,
}
QA_CHECKS = {
    "child_voice_evident": True,
    "previous_targets_evaluated": True,
    "targets_smart": True,
    "eet_plan_recorded": True,
}
QA_READY = {
    "qa_rating": "Green",
    "qa_feedback": "Clear, SMART targets and the young person's voice.",
    "qa_outcome": "Ready for saving",
    **QA_CHECKS,
}
SAVE = {
    "saved_in_mosaic": True,
    "saved_in_virtual_school_box": True,
    "saved_on": "2026-04-01",
    "copy_sent_to_conference_and_review_team": True,
    "copy_sent_to_social_worker": True,
    "copy_sent_to_leaving_care_team_administrator": True,
}
DISTRIBUTE = {
    "distributed_on": "2026-04-02",
    "shared_with_young_person": True,
    "shared_with_foster_carer": "Shared",
    "shared_with_parents": "Not appropriate",
    "reason_not_shared": "Court order: no contact.",
}
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


@pytest.fixture
def council(demo_council, engine):
    """The demo council with only the post-16 diagram and its forms deployed."""
    return Council(engine, demo_council, child=CHILD).deployed(shipped_bundle("post16.bpmn", forms=("post16_",)))


@pytest.fixture
def council_with_router(demo_council, engine):
    """As `council`, plus a stand-in for the cycle router that catches pep_cycle_due."""
    bundle = shipped_bundle("post16.bpmn", forms=("post16_",))
    bundle.add("processes/test_cycle_catcher.bpmn", CYCLE_CATCHER)
    return Council(engine, demo_council, child=CHILD).deployed(bundle)


def start(council, child=CHILD, next_meeting_date=MEETING_DATE, previous_targets=PREVIOUS_TARGETS) -> int:
    """Send post16_review_due, as the cycle router does, and return the new instance's id."""
    payload = {
        "variant": "post16_review_due",
        "next_meeting_date": next_meeting_date,
        "previous_targets": previous_targets,
    }
    started = council.send("post16_review_due", payload, child)
    assert [i.definition.process_id for i in started] == ["post16"]
    return started[0].id


def to_prepare(council, confirm=CONFIRM) -> int:
    instance_id = start(council)
    council.do("confirm_meeting", SW, confirm)
    return instance_id


def to_meeting(council, confirm=CONFIRM, sdq=SDQ_CURRENT) -> int:
    instance_id = to_prepare(council, confirm)
    council.do("prepare_epep", DT, PREPARE)
    council.do("collect_sdq", SW, sdq)
    return instance_id


def to_submission(council) -> int:
    instance_id = to_meeting(council)
    council.do("chair_meeting_ea", EA, CHAIR)
    council.do("provide_social_care_input", SW, SOCIAL_CARE)
    council.do("record_meeting", DT, RECORD)
    return instance_id


def to_qa(council) -> int:
    instance_id = to_submission(council)
    council.do("update_and_submit", DT, SUBMIT)
    return instance_id


def to_filing(council) -> int:
    instance_id = to_qa(council)
    council.do("quality_assure", EA, QA_READY)
    return instance_id


# ---- Pre PEP: the social worker confirms the meeting at least 10 days ahead -------------------


def test_the_agreed_meeting_goes_to_the_social_worker_to_confirm_ten_days_ahead(council, engine):
    start(council)
    confirm = council.only_task("confirm_meeting")
    assert (confirm.role_key, confirm.lane) == ("social_worker", "Social Worker")
    with council.sessions() as s:
        assert s.get(User, confirm.assignee_id).email == SW
    # 10 calendar days before Tuesday 24 March: the end of Saturday 14 March
    assert confirm.due_at.isoformat() == "2026-03-14T23:59:59+00:00"
    shown = council.view("confirm_meeting", SW)
    assert shown["data"]["meeting_date"] == MEETING_DATE
    assert "at least 10 days before the meeting (by 14 March 2026)" in shown["instructions"]


def test_without_an_agreed_date_the_social_worker_arranges_one_first(council, engine):
    start(council, next_meeting_date=None, previous_targets=[])
    council.only_task("arrange_meeting")
    council.do(
        "arrange_meeting", SW, {"meeting_date": "2026-04-21", "meeting_time": "09:30", "venue": "Riverside College"}
    )
    confirm = council.only_task("confirm_meeting")
    assert confirm.due_at.isoformat() == "2026-04-11T22:59:59+00:00"  # end of 11 April, BST
    assert council.view("confirm_meeting", SW)["data"]["venue"] == "Riverside College"


def test_only_the_young_persons_social_worker_confirms_the_meeting(council, engine):
    start(council)
    for outsider in (DT, OTHER_SW, EA):
        with pytest.raises(NotAllowed):
            council.do("confirm_meeting", outsider, CONFIRM)


def test_a_confirmation_must_cover_school_carer_virtual_school_and_the_chair(council, engine):
    start(council)
    bad = {**CONFIRM, "meeting_time": "10am", "confirmed_with_virtual_school": False}
    del bad["chair"]
    with pytest.raises(FormInvalid) as caught:
        council.do("confirm_meeting", SW, bad)
    assert caught.value.errors == {
        "chair": "Select who will chair the meeting",
        "confirmed_with_virtual_school": "Date and venue confirmed with the Virtual School must be confirmed (Yes)",
        "meeting_time": "Meeting time must be a time like 09:30",
    }


def test_confirming_the_meeting_tells_the_school_carer_young_person_and_virtual_school(council, engine):
    start(council)
    before = council.last_notice_id()
    council.do("confirm_meeting", SW, CONFIRM)
    told = council.notes("notice", since=before, every_child=True)
    assert sorted(r for r, _ in told) == sorted(
        [DT, "carer@home.test", "yp@home.test", "pool:vs_education_adviser", "pool:vs_administrator", PA]
    )
    assert {subject for _, subject in told} == {
        "Drew Placeholder's post-16 PEP meeting: 2026-03-24 at 10:00, Riverside College, room 4"
    }


def test_confirmation_late_reminds_the_social_worker_then_escalates_to_the_virtual_school(council, engine):
    start(council)
    confirm = council.only_task("confirm_meeting")
    assert council.sweep("2026-03-11T08:59:00+00:00").timers_fired == 0
    assert council.sweep("2026-03-11T09:00:01+00:00").timers_fired == 1
    assert council.notes("reminder", every_child=True) == [
        (SW, "Confirm Drew Placeholder's post-16 PEP meeting by 2026-03-14")
    ]
    assert council.sweep("2026-03-15T00:00:00+00:00").timers_fired == 1
    assert sorted(council.notes("escalation", every_child=True)) == [
        (
            "pool:vs_education_adviser",
            "Drew Placeholder's post-16 PEP meeting on 2026-03-24 is not confirmed 10 days ahead",
        ),
        (SW, "Drew Placeholder's post-16 PEP meeting on 2026-03-24 is not confirmed 10 days ahead"),
    ]
    assert council.only_task().id == confirm.id  # the task stays with the social worker
    council.do("confirm_meeting", SW, CONFIRM)
    completed = [e for e in council.history() if e.kind == "task_completed"][-1]
    assert completed.data["late"] is True
    council.only_task("prepare_epep")


# ---- Pre PEP: the designated teacher's ePEP and the SDQ -----------------------------------------


def test_the_designated_teacher_completes_the_epep_before_the_meeting_with_previous_targets_prefilled(council, engine):
    to_prepare(council)
    prepare = council.only_task("prepare_epep")
    assert prepare.role_key == "designated_teacher"
    assert prepare.due_at.isoformat() == "2026-03-23T23:59:59+00:00"  # the working day before the meeting
    shown = council.view("prepare_epep", DT)
    assert shown["data"]["previous_targets"] == PREVIOUS_TARGETS
    assert (
        "progress data, attendance figures and the review of the previous targets (1 carried over"
        in shown["instructions"]
    )
    with pytest.raises(NotAllowed):
        council.do("prepare_epep", OTHER_DT, PREPARE)
    bad = {**PREPARE, "attendance_percent": 120, "previous_targets": [{"what": "Maths coursework"}]}
    with pytest.raises(FormInvalid) as caught:
        council.do("prepare_epep", DT, bad)
    assert caught.value.errors == {
        "attendance_percent": "Attendance (%) must be 100 or less",
        "previous_targets.0.outcome": "Review of previous target 1: select outcome",
    }


def test_the_social_worker_collects_the_most_recent_sdq_with_the_designated_teacher(council, engine):
    to_prepare(council)
    council.do("prepare_epep", DT, PREPARE)
    sdq = council.only_task("collect_sdq")
    assert sdq.role_key == "social_worker"
    assert "With the designated teacher, collect" in council.view("collect_sdq", SW)["instructions"]
    with pytest.raises(FormInvalid) as caught:
        council.do("collect_sdq", SW, {"sdq_on_file": True, "sdq_young_person_score": 41})
    assert set(caught.value.errors) == {
        "sdq_young_person_score",
        "sdq_young_person_date",
        "sdq_key_worker_score",
        "sdq_key_worker_date",
    }


def test_a_recent_sdq_is_recorded_and_not_flagged(council, engine):
    instance_id = to_meeting(council)
    state = council.data(instance_id)
    assert (state["sdq_last_date"], state["sdq_out_of_date"]) == ("2025-11-10", False)
    assert council.notes("flag", every_child=True) == []


def test_an_sdq_older_than_a_year_is_flagged_to_the_social_worker_and_teacher(council, engine):
    stale = {**SDQ_CURRENT, "sdq_key_worker_date": "2025-03-24"}  # exactly a year before the meeting
    instance_id = to_meeting(council, sdq=stale)
    assert council.data(instance_id)["sdq_out_of_date"] is True
    assert sorted(council.notes("flag", every_child=True)) == [
        (DT, "Drew Placeholder's SDQ is more than 12 months old"),
        (SW, "Drew Placeholder's SDQ is more than 12 months old"),
    ]
    assert (
        "the SDQ is more than 12 months old (oldest 24 March 2025)"
        in council.view("chair_meeting_ea", EA)["instructions"]
    )


def test_no_sdq_on_file_is_flagged_too(council, engine):
    to_meeting(council, sdq={"sdq_on_file": False})
    assert [r for r, s in council.notes("flag", every_child=True) if s.endswith("(none on file)")] == [SW, DT]


# ---- The PEP meeting ----------------------------------------------------------------------------


def test_the_vs_education_adviser_chairs_from_the_pool_and_who_chaired_is_recorded(council, engine):
    instance_id = to_meeting(council)
    chair = council.only_task("chair_meeting_ea")
    assert (chair.role_key, chair.pooled, chair.assignee_id) == ("vs_education_adviser", True, None)
    assert chair.due_at.isoformat() == "2026-03-24T23:59:59+00:00"
    with council.sessions.begin() as s:
        engine.claim(s, chair.id, EA)
    with pytest.raises(NotAllowed):
        council.do("chair_meeting_ea", EA2, CHAIR)
    council.do("chair_meeting_ea", EA, CHAIR)
    state = council.data(instance_id)
    assert (state["chaired_by_role"], state["chaired_by_name"]) == ("VS Education Adviser", "Erin Adviser")


def test_the_personal_adviser_can_chair_the_meeting_instead(council, engine):
    instance_id = to_meeting(council, confirm={**CONFIRM, "chair": "Personal Adviser"})
    chair = council.only_task("chair_meeting_pa")
    assert (chair.role_key, chair.pooled) == ("personal_adviser", False)
    with pytest.raises(NotAllowed):
        council.do("chair_meeting_pa", EA, CHAIR)
    assert "As Drew Placeholder's Personal Adviser, chair" in council.view("chair_meeting_pa", PA)["instructions"]
    council.do("chair_meeting_pa", PA, {**CHAIR, "chaired_by_name": "Pat Adviser", "carer_present": "No"})
    assert council.data(instance_id)["chaired_by_role"] == "Personal Adviser"
    assert {t.spec_id for t in council.open_tasks()} == {"provide_social_care_input", "record_meeting"}


def test_at_the_meeting_the_social_worker_gives_social_care_input_and_the_teacher_records_it(council, engine):
    instance_id = to_meeting(council)
    council.do("chair_meeting_ea", EA, CHAIR)
    assert council.task("provide_social_care_input").role_key == "social_worker"
    assert council.task("record_meeting").role_key == "designated_teacher"
    with pytest.raises(NotAllowed):
        council.do("record_meeting", SW, RECORD)
    without_next = {k: v for k, v in RECORD.items() if not k.startswith("next_meeting")}
    with pytest.raises(FormInvalid) as caught:
        council.do("record_meeting", DT, {**without_next, "young_person_views": ""})
    assert caught.value.errors == {
        "next_meeting_date": "Enter next PEP meeting: date",
        "next_meeting_time": "Enter next PEP meeting: time",
        "next_meeting_venue": "Enter next PEP meeting: venue",
        "young_person_views": "Enter the young person's views",
    }
    council.do("record_meeting", DT, RECORD)
    council.only_task("provide_social_care_input")  # the submission waits for the social care input
    council.do("provide_social_care_input", SW, SOCIAL_CARE)
    council.only_task("update_and_submit")
    state = council.data(instance_id)
    assert (state["young_person_views"], state["next_meeting_date"]) == ("I want to be an electrician.", "2026-06-23")


# ---- Post PEP: submission within 5 working days ---------------------------------------------------


def test_the_teacher_must_submit_within_five_working_days_reminded_then_escalated_to_the_ea(council, engine):
    to_submission(council)
    submit = council.only_task("update_and_submit")
    assert submit.due_at.isoformat() == "2026-03-31T22:59:59+00:00"  # Tuesday 31 March, end of day (BST)
    assert council.sweep("2026-03-27T08:59:00+00:00").timers_fired == 0
    assert council.sweep("2026-03-27T09:00:01+00:00").timers_fired == 1
    assert council.notes("reminder", every_child=True) == [
        (DT, "Drew Placeholder's ePEP must be submitted by 2026-03-31")
    ]
    assert council.sweep("2026-03-31T23:00:00+00:00").timers_fired == 1
    assert sorted(council.notes("escalation", every_child=True)) == [
        (DT, "Drew Placeholder's ePEP is overdue (due 2026-03-31)"),
        ("pool:vs_education_adviser", "Drew Placeholder's ePEP is overdue (due 2026-03-31)"),
    ]
    assert council.only_task().id == submit.id  # only the teacher can submit: the task stays with them
    council.do("update_and_submit", DT, SUBMIT)
    council.only_task("quality_assure")


def test_the_teacher_can_send_the_link_to_the_ea_for_checking_before_submitting(council, engine):
    instance_id = to_submission(council)
    with pytest.raises(FormInvalid) as caught:
        council.do("update_and_submit", DT, {**SUBMIT, "action": "Send the link for checking"})
    assert caught.value.errors == {"checker": "Select send for checking to"}
    council.do(
        "update_and_submit", DT, {**SUBMIT, "action": "Send the link for checking", "checker": "VS Education Adviser"}
    )
    check = council.only_task("check_epep_ea")
    assert (check.role_key, check.pooled) == ("vs_education_adviser", True)
    council.do("check_epep_ea", EA, {"check_comments": "Add a date to target 2.", "ready_to_submit": False})
    again = council.only_task("update_and_submit")
    assert again.due_at.isoformat() == "2026-03-31T22:59:59+00:00"  # checking does not move the deadline
    assert council.view("update_and_submit", DT)["data"]["check_comments"] == "Add a date to target 2."
    assert council.data(instance_id)["submission_count"] == 0  # nothing submitted yet


def test_the_teacher_can_send_the_link_to_the_personal_adviser_for_checking(council, engine):
    to_submission(council)
    council.do(
        "update_and_submit", DT, {**SUBMIT, "action": "Send the link for checking", "checker": "Personal Adviser"}
    )
    check = council.only_task("check_epep_pa")
    with council.sessions() as s:
        assert s.get(User, check.assignee_id).email == PA
    council.do("check_epep_pa", PA, {"check_comments": "Looks good.", "ready_to_submit": True})
    council.do("update_and_submit", DT, SUBMIT)
    council.only_task("quality_assure")


def test_submitting_needs_the_teacher_to_accept_it_cannot_be_amended(council, engine):
    to_submission(council)
    with pytest.raises(FormInvalid) as caught:
        council.do("update_and_submit", DT, {**SUBMIT, "understood_cannot_amend": False})
    assert caught.value.errors == {
        "understood_cannot_amend": "I understand that once submitted the ePEP cannot be amended must be Yes to submit"
    }


def test_once_submitted_the_epep_cannot_be_amended(council, engine):
    instance_id = to_submission(council)
    submit = council.only_task("update_and_submit")
    council.complete(submit, DT, SUBMIT)
    with pytest.raises(TaskNotReady):
        council.complete(submit, DT, {**SUBMIT, "update_notes": "A late change"})
    assert [t.spec_id for t in council.open_tasks()] == ["quality_assure"]  # no task can edit it now
    state = council.data(instance_id)
    assert (state["epep_status"], state["submission_count"]) == ("submitted", 1)
    assert state["submissions"][0]["targets"] == TARGETS
    assert state["submissions"][0]["update_notes"] == "Added the careers plan."


# ---- Post PEP: quality assurance and resubmission --------------------------------------------------


def test_a_red_rating_must_be_sent_back_for_resubmission(council, engine):
    to_qa(council)
    with pytest.raises(FormInvalid) as caught:
        council.do("quality_assure", EA, {**QA_READY, "qa_rating": "Red"})
    assert caught.value.errors == {"qa_outcome": "A Red ePEP must be resubmitted"}
    with pytest.raises(FormInvalid) as caught:
        council.do("quality_assure", EA, {**QA_READY, "qa_outcome": "Resubmission requested"})
    assert caught.value.errors == {"resubmission_working_days": "Enter working days allowed for the resubmission"}
    with pytest.raises(NotAllowed):
        council.do("quality_assure", DT, QA_READY)


def test_a_green_rating_is_refused_when_a_quality_check_is_answered_no(council, engine):
    to_qa(council)
    with pytest.raises(FormInvalid) as caught:
        council.do("quality_assure", EA, {**QA_READY, "eet_plan_recorded": False})
    assert caught.value.errors == {
        "qa_rating": "Green means every check is met, but the education, employment or "
        "training plan is not recorded: choose Amber or Red, or change that answer"
    }
    council.do("quality_assure", EA, {**QA_READY, "eet_plan_recorded": False, "qa_rating": "Amber"})
    assert "quality_assure" not in [t.spec_id for t in council.open_tasks()]


def test_qa_resubmission_reopens_the_epep_with_a_new_deadline_and_keeps_the_first_submission(council, engine):
    instance_id = to_qa(council)
    engine.clock.set("2026-04-02T10:00:00+01:00")  # Thursday before Easter
    before = council.last_notice_id()
    council.do(
        "quality_assure",
        EA,
        {
            **QA_CHECKS,
            "qa_rating": "Red",
            "qa_feedback": "Targets are not SMART.",
            "qa_outcome": "Resubmission requested",
            "resubmission_working_days": 5,
        },
    )
    reopened = council.only_task("update_and_submit")
    # Good Friday and Easter Monday are skipped: five working days from 2 April is Monday 13 April
    assert reopened.due_at.isoformat() == "2026-04-13T22:59:59+00:00"
    assert (DT, "Resubmission requested: Drew Placeholder's ePEP, by 2026-04-13") in council.notes(
        since=before, every_child=True
    )
    assert council.view("update_and_submit", DT)["instructions"].startswith(
        "The VS Education Adviser has asked for the ePEP to be resubmitted: Targets are not SMART."
    )
    # the deadline moved: the timers wait for it rather than firing at once
    assert council.sweep("2026-04-02T12:00:00+01:00").timers_fired == 0
    assert council.sweep("2026-04-09T09:00:01+01:00").timers_fired == 1  # the reminder
    assert council.only_task().id == reopened.id
    first_state = council.data(instance_id)
    assert first_state["epep_status"] == "reopened for resubmission"
    better = [{**t, "evidence_of_impact": "Measured termly"} for t in TARGETS]
    council.do("update_and_submit", DT, {**SUBMIT, "targets": better})
    state = council.data(instance_id)
    assert [s["submission"] for s in state["submissions"]] == [1, 2]
    assert state["submissions"][0]["targets"] == TARGETS  # the first submission is kept as it was
    assert state["submissions"][1]["targets"] == better
    submitted = [e for e in council.history() if e.kind == "task_completed" and e.data["task"] == "update_and_submit"]
    assert [e.data["data"]["targets"] for e in submitted] == [TARGETS, better]
    council.do("quality_assure", EA, QA_READY)
    council.only_task("save_and_circulate")


# ---- Post PEP: saving, circulation, distribution and the case note ---------------------------------


def test_ready_for_saving_notifies_the_vs_administrator_who_saves_and_sends_copies(council, engine):
    to_qa(council)
    before = council.last_notice_id()
    council.do("quality_assure", EA, QA_READY)
    assert (
        "pool:vs_administrator",
        "Drew Placeholder's ePEP is quality assured and ready for saving",
    ) in council.notes("notice", since=before, every_child=True)
    save = council.only_task("save_and_circulate")
    assert (save.role_key, save.pooled) == ("vs_administrator", True)
    assert (
        "Conference and Review Team, the social worker and the leaving care team administrator"
        in council.view("save_and_circulate", ADMIN)["instructions"]
    )
    with pytest.raises(FormInvalid) as caught:
        council.do("save_and_circulate", ADMIN, {**SAVE, "copy_sent_to_leaving_care_team_administrator": False})
    assert caught.value.errors == {
        "copy_sent_to_leaving_care_team_administrator": "Copy sent to the leaving care team administrator must be confirmed (Yes)"
    }
    with pytest.raises(NotAllowed):
        council.do("save_and_circulate", EA, SAVE)
    before = council.last_notice_id()
    council.do("save_and_circulate", ADMIN, SAVE)
    assert (SW, "Drew Placeholder's ePEP is saved in Mosaic and Virtual School Box") in council.notes(
        "notice", since=before, every_child=True
    )
    council.only_task("distribute_pep")


def test_the_social_worker_distributes_the_pep_sharing_with_carers_and_parents_if_appropriate(council, engine):
    to_filing(council)
    council.do("save_and_circulate", ADMIN, SAVE)
    distribute = council.only_task("distribute_pep")
    assert distribute.role_key == "social_worker"
    assert (
        "It is your responsibility, as the social worker, to share the PEP with foster carers and parents if "
        "appropriate." in council.view("distribute_pep", SW)["instructions"]
    )
    without_reason = {k: v for k, v in DISTRIBUTE.items() if k != "reason_not_shared"}
    with pytest.raises(FormInvalid) as caught:
        council.do("distribute_pep", SW, without_reason)
    assert caught.value.errors == {"reason_not_shared": "Enter why it was not appropriate to share"}
    council.do("distribute_pep", SW, DISTRIBUTE)
    note = council.only_task("add_case_note")
    assert (
        "stating that the PEP has been added to ECM under education"
        in council.view("add_case_note", SW)["instructions"]
    )
    with pytest.raises(FormInvalid):
        council.do("add_case_note", SW, {**CASE_NOTE, "case_note_added": False})
    assert council.only_task().id == note.id


def test_the_case_note_ends_the_pep_and_throws_the_next_cycle_with_date_and_targets(council_with_router, engine):
    council = council_with_router
    instance_id = to_filing(council)
    council.do("save_and_circulate", ADMIN, SAVE)
    council.do("distribute_pep", SW, DISTRIBUTE)
    council.do("add_case_note", SW, CASE_NOTE)
    with council.sessions() as s:
        assert s.get(Instance, instance_id).status == "completed"
        successor = s.scalars(select(Instance).where(Instance.previous_instance_id == instance_id)).one()
        assert successor.definition.process_id == "test_cycle_catcher"
    assert council.open_tasks() == []
    steps = council.history()
    finished = next(e for e in reversed(steps) if e.instance_id == instance_id and "path" in e.data)
    assert finished.data["path"][-1] == "next_pep_due"
    started = next(e for e in steps if e.kind == "instance_started" and e.instance_id == successor.id)
    assert started.data["message"] == "pep_cycle_due"
    assert started.data["data"] == {
        "variant": "post16_review_due",
        "next_meeting_date": "2026-06-23",
        "previous_targets": TARGETS,
    }


def test_a_finished_pep_with_no_router_deployed_completes_after_throwing_pep_cycle_due(council, engine):
    instance_id = to_filing(council)
    council.do("save_and_circulate", ADMIN, SAVE)
    council.do("distribute_pep", SW, DISTRIBUTE)
    council.do("add_case_note", SW, CASE_NOTE)
    with council.sessions() as s:
        assert s.get(Instance, instance_id).status == "completed"
    steps = council.history()
    assert steps[-1].kind == "instance_completed"
    last_step = next(e for e in reversed(steps) if "path" in e.data)
    assert last_step.data["name"] == "Add the case note: PEP added to ECM under education"
    assert last_step.data["path"][-1] == "next_pep_due"


# ---- Cancelled or rescheduled meetings ---------------------------------------------------------------

ALL_PARTIES = sorted(
    [SW, DT, "carer@home.test", "yp@home.test", "pool:vs_education_adviser", PA, "pool:vs_administrator"]
)


def test_confirming_shows_that_a_meeting_should_not_be_cancelled_and_how_to_tell_everyone(council, engine):
    start(council)
    shown = council.view("confirm_meeting", SW)["instructions"]
    assert "Wherever possible the PEP meeting should not be cancelled." in shown
    assert "all parties, including the VS Administrator, are then told immediately" in shown


def test_a_cancelled_meeting_tells_every_party_at_once_and_the_social_worker_rearranges_it(council, engine):
    instance_id = to_prepare(council)
    before = council.last_notice_id()
    with council.sessions.begin() as s:
        caught = engine.send_message(s, "meeting_cancelled", CHILD, {"reason": "Young person in hospital"}, actor=SW)
    assert [i.id for i in caught] == [instance_id]
    told = council.notes("cancellation", since=before, every_child=True)
    assert sorted(r for r, _ in told) == ALL_PARTIES
    assert {s for _, s in told} == {"CANCELLED: Drew Placeholder's post-16 PEP meeting on 2026-03-24"}
    arrange = council.only_task("arrange_meeting")  # the teacher's ePEP task is withdrawn
    assert arrange.role_key == "social_worker"
    assert council.view("arrange_meeting", SW)["instructions"].startswith(
        "The PEP meeting for Drew Placeholder was cancelled (Young person in hospital)."
    )
    assert council.data(instance_id)["cancellations"][0]["reason"] == "Young person in hospital"
    assert "task_withdrawn" in [e.kind for e in council.history()[-12:]]
    council.do(
        "arrange_meeting", SW, {"meeting_date": "2026-04-28", "meeting_time": "11:00", "venue": "Riverside College"}
    )
    assert council.only_task("confirm_meeting").due_at.isoformat() == "2026-04-18T22:59:59+00:00"


def test_a_meeting_cancelled_on_the_day_withdraws_the_chairs_task(council, engine):
    to_meeting(council, confirm={**CONFIRM, "chair": "Personal Adviser"})
    with council.sessions.begin() as s:
        engine.send_message(s, "meeting_cancelled", CHILD, {"reason": "College closed (snow)"})
    council.only_task("arrange_meeting")
    assert len(council.notes("cancellation", every_child=True)) == len(ALL_PARTIES)


def test_a_rescheduled_meeting_moves_the_confirmation_deadline_and_tells_everyone(council, engine):
    instance_id = start(council)
    before = council.last_notice_id()
    with council.sessions.begin() as s:
        engine.send_message(
            s,
            "meeting_rescheduled",
            CHILD,
            {
                "meeting_date": "2026-04-21",
                "meeting_time": "13:30",
                "venue": "Virtual School office",
                "reason": "Exam clash",
            },
        )
    moved = [(r, s) for r, s in council.notes("notice", since=before, every_child=True) if s.startswith("MOVED")]
    assert sorted(r for r, _ in moved) == ALL_PARTIES
    assert moved[0][1] == "MOVED: Drew Placeholder's post-16 PEP meeting is now 2026-04-21 at 13:30"
    confirm = council.only_task("confirm_meeting")
    assert confirm.due_at.isoformat() == "2026-04-11T22:59:59+00:00"
    shown = council.view("confirm_meeting", SW)["data"]
    assert (shown["meeting_date"], shown["meeting_time"], shown["venue"]) == (
        "2026-04-21",
        "13:30",
        "Virtual School office",
    )
    # the old deadline (14 March) no longer fires: only the new one does
    assert council.sweep("2026-03-16T09:00:00+00:00").timers_fired == 0
    assert council.data(instance_id)["reschedules"][0]["reason"] == "Exam clash"


def test_a_meeting_rescheduled_while_the_teacher_prepares_returns_to_confirmation(council, engine):
    to_prepare(council)
    with council.sessions.begin() as s:
        engine.send_message(s, "meeting_rescheduled", CHILD, {"meeting_date": "2026-03-31"})
    confirm = council.only_task("confirm_meeting")
    assert confirm.due_at.isoformat() == "2026-03-21T23:59:59+00:00"
    assert council.view("confirm_meeting", SW)["data"]["venue"] == "Riverside College, room 4"
    council.do("confirm_meeting", SW, {**CONFIRM, "meeting_date": "2026-03-31"})
    prepare = council.only_task("prepare_epep")
    assert prepare.due_at.isoformat() == "2026-03-30T22:59:59+00:00"
    assert council.view("prepare_epep", DT)["data"]["previous_targets"] == PREVIOUS_TARGETS


def test_a_meeting_moved_to_fewer_than_ten_days_away_is_escalated_at_once(council, engine):
    to_prepare(council)
    engine.clock.set("2026-03-18T09:00:00+00:00")
    with council.sessions.begin() as s:
        engine.send_message(s, "meeting_rescheduled", CHILD, {"meeting_date": "2026-03-26", "reason": "Illness"})
    assert council.only_task("confirm_meeting").due_at.isoformat() == "2026-03-16T23:59:59+00:00"
    # both timers are already due, so they fire in the same step as the message: reminder and escalation
    assert [e.data["timer"] for e in council.history() if e.kind == "timer_fired"] == [
        "confirmation_reminder",
        "confirmation_overdue",
    ]
    assert sorted(r for r, _ in council.notes("escalation", every_child=True)) == ["pool:vs_education_adviser", SW]
    assert council.sweep("2026-03-18T10:00:00+00:00").timers_fired == 0  # once, not over and over
    council.only_task("confirm_meeting")


def _reach(engine, council, stage: str) -> None:
    """Take a new PEP to the pre-meeting task `stage`."""
    start(council)
    steps = [
        (
            "confirm_meeting",
            SW,
            {**CONFIRM, "chair": "Personal Adviser" if stage.endswith("_pa") else "VS Education Adviser"},
        ),
        ("prepare_epep", DT, PREPARE),
        ("collect_sdq", SW, SDQ_CURRENT),
    ]
    for spec_id, actor, form in steps:
        if spec_id == stage:
            return
        council.do(spec_id, actor, form)
    council.only_task(stage)


@pytest.mark.parametrize(
    "stage", ["confirm_meeting", "prepare_epep", "collect_sdq", "chair_meeting_ea", "chair_meeting_pa"]
)
def test_until_the_meeting_is_held_a_cancellation_is_caught_at_every_step(council, engine, stage):
    _reach(engine, council, stage)
    with council.sessions.begin() as s:
        assert len(engine.send_message(s, "meeting_cancelled", CHILD, {"reason": "Strike"})) == 1
    assert sorted(r for r, _ in council.notes("cancellation", every_child=True)) == ALL_PARTIES
    council.only_task("arrange_meeting")


@pytest.mark.parametrize(
    "stage", ["confirm_meeting", "prepare_epep", "collect_sdq", "chair_meeting_ea", "chair_meeting_pa"]
)
def test_until_the_meeting_is_held_a_reschedule_is_caught_at_every_step(council, engine, stage):
    _reach(engine, council, stage)
    with council.sessions.begin() as s:
        assert len(engine.send_message(s, "meeting_rescheduled", CHILD, {"meeting_date": "2026-04-28"})) == 1
    assert len([r for r, subject in council.notes("notice", every_child=True) if subject.startswith("MOVED")]) == len(
        ALL_PARTIES
    )
    assert council.only_task("confirm_meeting").due_at.isoformat() == "2026-04-18T22:59:59+00:00"


def test_once_the_meeting_is_held_cancellation_messages_reach_no_one(council, engine):
    to_submission(council)
    with council.sessions.begin() as s:
        assert engine.send_message(s, "meeting_cancelled", CHILD, {"reason": "too late"}) == []
    council.only_task("update_and_submit")


def test_messages_for_another_young_person_do_not_touch_this_pep(council, engine):
    start(council)
    start(council, child="P18")
    with council.sessions.begin() as s:
        caught = engine.send_message(s, "meeting_cancelled", "P18", {"reason": "moved placement"})
    assert [i.child_id for i in caught] == ["P18"]
    council.only_task("confirm_meeting")
    council.only_task("arrange_meeting", child="P18")


# ---- a young person with no education place -------------------------------------------------


def test_without_an_education_place_the_vs_education_advisers_do_the_teachers_steps_to_the_end(council, engine):
    """The Designated Teacher's lane falls back to the VS Education Advisers' pool (config/roles.yaml)."""
    child, their_sw = "NOSCHOOL", "sw@council.test"

    def do_for(spec_id, actor, answers):
        return council.complete(council.task(spec_id, child), actor, answers)

    start(council, child)
    do_for("confirm_meeting", their_sw, CONFIRM)
    prepare = council.task("prepare_epep", child)
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
    assert done.status == "completed" and council.open_tasks(child) == []
    assert council.notes("task_needs_person", every_child=True) == []
