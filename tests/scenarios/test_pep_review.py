"""Warwickshire's termly PEP review (processes/pep_review.bpmn), driven through the engine with a moved clock.

Spring term 2026 runs 5 January to 27 March with half-term 16-20 February, so its first half ends on
Friday 13 February; the summer term starts on 13 April and its first half ends on 22 May.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.errors import EngineError, FormInvalid, NotAllowed
from engine.history import events
from engine.models import Instance, Notification, OpenTask, User
from tests.conftest import shipped_bundle

from ..helpers import Council, files_named

SW, DT, OTHER_DT, EA, CARER = "sw@council.test", "dt@oak.test", "dt@elm.test", "ea@council.test", "carer@home.test"
ADMIN = "admin@council.test"
SPRING_FIRST_HALF_END = "2026-02-13T23:59:59+00:00"

PREVIOUS_TARGET = {
    "what": "Know the 6 and 7 times tables",
    "category": "Academic",
    "strategies": "Daily practice",
    "evidence_of_impact": "Times-table check",
    "who": "Class teacher",
    "by_when": "2026-02-06",
    "pp_plus_amount": 0,
}
TARGET = {
    "what": "Read a chapter book each week",
    "category": "Academic",
    "strategies": "Daily reading with a key adult",
    "evidence_of_impact": "Reading age up six months",
    "who": "Class teacher",
    "by_when": "2026-04-24",
    "pp_plus_amount": 300,
}
INVITATIONS = [
    {"name": "Dana Teacher", "role": "Designated Teacher"},
    {"name": "Sam Social-Worker", "role": "Social Worker"},
    {"name": "Cara Carer", "role": "Carer"},
    {"name": "Alex Example", "role": "Child or young person"},
]
PLAN = {
    "meeting_date": "2026-02-10",
    "meeting_time": "10:00",
    "venue": "Oak Primary, room 2",
    "has_school_place": True,
    "invitations": INVITATIONS,
    "child_participation": "Attending part of the meeting",
    "concerns_raised": False,
    "uasc": False,
    "interpreter_required": False,
    "moving_school": False,
}
VIEWS = {
    "child_contribution": "Gave views before the meeting",
    "child_views": "I like reading with Miss Teacher.",
    "carer_contribution": "Will attend the meeting",
    "carer_views": "Reading at home every night.",
    "social_care_input": "Placement is stable.",
}
EPEP = {
    "meeting_date": "2026-02-10",
    "chaired_by": "Dana Teacher",
    "attendees": [
        {"name": "Dana Teacher", "role": "Designated Teacher", "attended": True},
        {"name": "Sam Social-Worker", "role": "Social Worker", "attended": True},
        {"name": "Cara Carer", "role": "Carer", "attended": True},
    ],
    "attendance_percent": 96.5,
    "attainment": [
        {"subject": "Reading", "current": "Year 4 expected", "expected": "Year 5 expected", "on_track": False}
    ],
    "previous_targets": [{"what": PREVIOUS_TARGET["what"], "outcome": "Achieved"}],
    "semh_needs": "Anxious at transitions between lessons.",
    "academic_needs": "Reading fluency.",
    "teaching_and_learning": "Small-group phonics, a reading buddy.",
    "child_views": VIEWS["child_views"],
    "carer_views": VIEWS["carer_views"],
    "pp_plus_spend": [{"item": "Reading tutor", "amount": 300, "linked_target": TARGET["what"]}],
    "pp_plus_in_line_with_policy": True,
    "targets": [TARGET],
    "targets_shared_with": ["Child or young person", "Carers", "Social worker"],
    "next_meeting_date": "2026-04-21",
    "next_meeting_time": "10:00",
    "next_meeting_venue": "Oak Primary",
    "moving_school": False,
}
QA_CHECKS = {
    "child_voice_evident": True,
    "previous_targets_evaluated": True,
    "needs_identified": True,
    "targets_smart": True,
    "pp_plus_follows_policy": True,
    "next_meeting_recorded": True,
}
MOSAIC = {
    "saved_to_escr_mosaic": True,
    "copy_source": "Emailed by the Virtual School after sign-off",
    "mosaic_reference": "MOS-12345",
    "unresolved_issues": False,
}

# A stand-in for pep_cycle.bpmn: it starts on pep_cycle_due, so the payload the review throws can be read.
NEXT_CYCLE_PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="probe_definitions" targetNamespace="http://example.org/pep-test">
  <bpmn:message id="pep_cycle_due" name="pep_cycle_due" />
  <bpmn:process id="next_cycle_probe" name="Next cycle probe" isExecutable="true">
    <bpmn:laneSet id="probe_lanes">
      <bpmn:lane id="probe_sw" name="Social Worker">
        <bpmn:flowNodeRef>probe_start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>probe_task</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>probe_end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="probe_start" name="PEP cycle due">
      <bpmn:outgoing>p1</bpmn:outgoing>
      <bpmn:messageEventDefinition id="probe_start_message" messageRef="pep_cycle_due">
        <bpmn:extensionElements>
          <spiffworkflow:messageVariable>next_cycle</spiffworkflow:messageVariable>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="p1" sourceRef="probe_start" targetRef="probe_task" />
    <bpmn:userTask id="probe_task" name="Next PEP cycle">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="review_liaise_unresolved.schema.json" />
        </spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>p1</bpmn:incoming>
      <bpmn:outgoing>p2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="p2" sourceRef="probe_task" targetRef="probe_end" />
    <bpmn:endEvent id="probe_end"><bpmn:incoming>p2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def council(demo_council, engine):
    """The demo council with pep_review.bpmn and its forms deployed; the clock on Tuesday 6 January 2026.
    Tasks are the review's (the probe of the next cycle has one of its own)."""
    bundle = shipped_bundle("pep_review.bpmn", forms=("review_",))
    bundle.add("processes/next_cycle_probe.bpmn", NEXT_CYCLE_PROBE)
    deployed = Council(engine, demo_council, process="pep_review").deployed(bundle)
    engine.clock.set("2026-01-06T09:00:00+00:00")
    return deployed


# ---- the way to each step -------------------------------------------------------------------


def start_review(council, child="Y5", next_meeting_date="2026-02-10", previous_targets=(PREVIOUS_TARGET,)):
    cycle = {
        "variant": "termly_review_due",
        "next_meeting_date": next_meeting_date,
        "previous_targets": list(previous_targets),
    }
    return council.send("termly_review_due", cycle, child, actor=SW)[0].id


def probe_instances(council, child="Y5") -> list[Instance]:
    return council.instances("next_cycle_probe", child)


def to_epep(council, plan=None):
    """Start a review for Y5 and take it to the designated teacher's ePEP."""
    instance_id = start_review(council)
    council.do_next("plan_review_meeting", SW, plan or PLAN)
    council.do_next("gather_views", SW, VIEWS)
    return instance_id


def to_qa(council, epep=None):
    instance_id = to_epep(council)
    council.do_next("complete_epep", DT, epep or EPEP)
    council.do_next("check_views_recorded", SW, {"views_recorded_accurately": True})
    return instance_id


def sign_off(council, rating="Green"):
    council.do_next("quality_assure_pep", EA, {"qa_rating": rating, "qa_feedback": "Clear targets.", **QA_CHECKS})


# ---- the review window -----------------------------------------------------------------------


def test_a_review_due_after_the_first_half_of_term_waits_for_next_term(engine, council):
    engine.clock.set("2026-03-02T09:00:00+00:00")
    instance_id = start_review(council, next_meeting_date=None)
    assert council.open_tasks() == []
    assert council.instance(instance_id).next_timer_at.isoformat() == "2026-04-12T23:00:00+00:00"
    assert council.sweep("2026-04-10T09:00:00+00:00").timers_fired == 0
    assert council.sweep("2026-04-13T07:00:00+00:00").timers_fired == 1
    task = council.only_task()
    # summer 2026: half-term 25-29 May, so the first half ends on Friday 22 May (BST)
    assert (task.spec_id, task.due_at.isoformat()) == ("plan_review_meeting", "2026-05-22T22:59:59+00:00")


def test_a_review_records_the_term_it_answers(engine, council):
    engine.clock.set("2026-03-02T09:00:00+00:00")  # past the first half of spring: it answers summer
    start_review(council, next_meeting_date=None)
    with council.sessions() as s:
        (started,) = [e for e in events(s, "Y5") if e.kind == "instance_started"]
    assert started.data["answers"] == {"kind": "termly", "term": "2025-26 summer"}


def test_a_review_whose_meeting_is_set_for_next_term_waits_for_that_term(engine, council):
    engine.clock.set("2026-03-30T09:00:00+00:00")  # Easter holidays
    start_review(council, next_meeting_date="2026-04-21")
    assert council.open_tasks() == []
    council.sweep("2026-04-13T07:00:00+00:00")
    task = council.only_task()
    assert task.due_at.isoformat() == "2026-05-22T22:59:59+00:00"
    assert council.view(task, SW)["data"]["meeting_date"] == "2026-04-21"


def test_a_review_in_the_first_half_of_term_starts_at_once_with_the_half_term_deadline(engine, council):
    start_review(council)
    task = council.only_task()
    assert (task.spec_id, task.lane, task.due_at.isoformat()) == (
        "plan_review_meeting",
        "Social Worker",
        SPRING_FIRST_HALF_END,
    )
    shown = council.view(task, SW)
    assert "first half of the term: hold the meeting by 13 February 2026" in shown["instructions"]
    assert "Welfare Call" in shown["instructions"]
    assert "virtualschool@warwickshire.gov.uk" in shown["instructions"]
    assert "Know the 6 and 7 times tables" in shown["instructions"]
    assert shown["data"]["meeting_date"] == "2026-02-10"


# ---- the whole review ------------------------------------------------------------------------


def test_the_whole_review_runs_from_planning_to_the_next_cycle(engine, council):
    instance_id = to_epep(council)
    epep = council.only_task()
    assert (epep.spec_id, epep.lane, epep.due_at.isoformat()) == (
        "complete_epep",
        "Designated Teacher",
        SPRING_FIRST_HALF_END,
    )
    with council.sessions() as s:
        assert epep.assignee_id == s.scalar(select(User.id).where(User.email == DT))
    data = council.view(epep, DT)["data"]
    assert (data["child_views"], data["carer_views"]) == (VIEWS["child_views"], VIEWS["carer_views"])
    council.do_next("complete_epep", DT, EPEP)
    council.do_next("check_views_recorded", SW, {"views_recorded_accurately": True})
    qa = council.only_task()
    # the ePEP is recorded on the afternoon of the meeting (10 February); QA is due 10 working days after
    assert (qa.spec_id, qa.pooled, qa.due_at.isoformat()) == ("quality_assure_pep", True, "2026-02-24T23:59:59+00:00")
    sign_off(council, "Amber")
    assert council.told("quality-assured: Amber") == {DT, SW}
    council.do_next("save_pep_to_mosaic", SW, MOSAIC)
    finished = council.instance(instance_id)
    assert finished.status == "completed"
    assert council.last_path(instance_id)[-1] == "next_review_due"
    with council.sessions() as s:
        completed = [e.data["name"] for e in events(s, "Y5", instance_id) if e.kind == "task_completed"]
    assert completed == [
        "Arrange the termly PEP review meeting",
        "Make sure the child and carers contribute",
        "Chair the PEP meeting and complete the ePEP",
        "Check your views were recorded accurately",
        "Quality-assure the PEP",
        "Save a copy of the signed-off PEP to ESCR / Mosaic",
    ]


def test_the_end_of_the_review_hands_next_terms_date_and_the_targets_to_the_next_cycle(engine, council):
    instance_id = to_qa(council)
    sign_off(council)
    council.do_next("save_pep_to_mosaic", SW, MOSAIC)
    [probe] = probe_instances(council)
    assert probe.previous_instance_id == instance_id
    with council.sessions() as s:
        task = s.scalars(select(OpenTask).where(OpenTask.instance_id == probe.id)).one()
        next_cycle = engine.task_view(s, task.id, SW)["data"]["next_cycle"]
    assert next_cycle == {
        "variant": "termly_review_due",
        "next_meeting_date": "2026-04-21",
        "previous_targets": [TARGET],
    }


def test_the_targets_and_guidance_for_the_designated_teacher_are_shown_with_the_epep(engine, council):
    to_epep(council)
    shown = council.view(council.only_task(), DT)
    text = shown["instructions"]
    for guidance in (
        "Chair the PEP review meeting",
        "in line with the Virtual School policy",
        "SMART targets",
        "share them with all relevant parties",
        "SEMH",
        "Attach relevant documents",
        "next term's PEP meeting date",
    ):
        assert guidance in text
    schema = shown["form_schema"]
    assert schema["properties"]["ehcp_attachment"]["x-widget"] == "attachment"
    assert {
        "next_meeting_date",
        "targets",
        "attendance_percent",
        "attainment",
        "semh_needs",
        "academic_needs",
        "pp_plus_spend",
        "pp_plus_in_line_with_policy",
        "targets_shared_with",
        "previous_targets",
        "attendees",
    } <= set(schema["required"])


# ---- who may do what -------------------------------------------------------------------------


def test_each_step_is_refused_to_people_without_its_role(engine, council):
    start_review(council)
    with pytest.raises(NotAllowed, match="does not hold the role Social Worker"):
        council.do_next("plan_review_meeting", DT, PLAN)
    council.do_next("plan_review_meeting", SW, PLAN)
    with pytest.raises(NotAllowed):
        council.do_next("gather_views", CARER, VIEWS)
    council.do_next("gather_views", SW, VIEWS)
    for outsider in (SW, OTHER_DT, EA):
        with pytest.raises(NotAllowed):
            council.do_next("complete_epep", outsider, EPEP)
    council.do_next("complete_epep", DT, EPEP)
    council.do_next("check_views_recorded", SW, {"views_recorded_accurately": True})
    qa = council.only_task()
    for outsider in (DT, SW, "vsh@council.test"):
        with pytest.raises(NotAllowed):
            council.complete(qa, outsider, {"qa_rating": "Green", "qa_feedback": "x", **QA_CHECKS})
    with council.sessions.begin() as s, pytest.raises(NotAllowed):
        engine.claim(s, qa.id, DT)
    council.complete(qa, "ea2@council.test", {"qa_rating": "Green", "qa_feedback": "Good.", **QA_CHECKS})


# ---- form checks -----------------------------------------------------------------------------


def test_invalid_epep_data_is_refused_field_by_field(engine, council):
    to_epep(council)
    task = council.only_task()
    bad = {
        **EPEP,
        "attendance_percent": 120,
        "meeting_date": "10/02/2026",
        "targets": [{"what": "Go", "by_when": "soon", "pp_plus_amount": -5}],
        "pp_plus_in_line_with_policy": False,
        "targets_shared_with": [],
    }
    with pytest.raises(FormInvalid) as caught:
        council.complete(task, DT, bad)
    errors = caught.value.errors
    assert errors["attendance_percent"] == "Attendance this year (%) must be 100 or less"
    assert errors["meeting_date"] == "Date the meeting was held must be a real date"
    assert {
        "targets.0.what",
        "targets.0.by_when",
        "targets.0.pp_plus_amount",
        "targets.0.category",
        "targets.0.strategies",
        "targets.0.evidence_of_impact",
        "targets.0.who",
        "pp_plus_in_line_with_policy",
        "targets_shared_with",
    } <= set(errors)
    assert council.only_task().id == task.id


def test_an_ehcp_must_be_attached_when_the_child_has_one(engine, council):
    to_epep(council)
    with pytest.raises(FormInvalid) as caught:
        council.do_next("complete_epep", DT, {**EPEP, "sen_status": "EHCP"})
    assert caught.value.errors == {"ehcp_attachment": "Select a file for EHCP"}
    with pytest.raises(FormInvalid) as caught:  # a file that was never attached
        council.do_next("complete_epep", DT, {**EPEP, "sen_status": "EHCP", "ehcp_attachment": "file-42"})
    assert caught.value.errors == {"ehcp_attachment": "The selected file could not be found. Select the file again"}
    with council.sessions.begin() as s:
        files_named(s, "Y5", {"ehcp_attachment": "upload-ehcp-42"}, engine.now())
    council.do_next("complete_epep", DT, {**EPEP, "sen_status": "EHCP", "ehcp_attachment": "upload-ehcp-42"})


def test_next_terms_meeting_date_is_required_before_the_epep_is_completed(engine, council):
    to_epep(council)
    task = council.only_task()
    without = {k: v for k, v in EPEP.items() if k != "next_meeting_date"}
    with pytest.raises(FormInvalid) as caught:
        council.complete(task, DT, without)
    assert caught.value.errors == {"next_meeting_date": "Enter next term's PEP meeting date"}
    with pytest.raises(EngineError, match="must be today or in the future"):
        council.complete(task, DT, {**EPEP, "next_meeting_date": "2026-02-09"})
    with pytest.raises(EngineError, match="first half of next term, by 2026-05-22"):
        council.complete(task, DT, {**EPEP, "next_meeting_date": "2026-06-10"})
    assert council.only_task().id == task.id
    council.complete(task, DT, EPEP)


def test_the_meeting_must_include_the_teacher_social_worker_and_carers(engine, council):
    start_review(council)
    only_teacher = {**PLAN, "invitations": [INVITATIONS[0]]}
    with pytest.raises(FormInvalid) as caught:
        council.do_next("plan_review_meeting", SW, only_teacher)
    assert caught.value.errors == {"invitations": "Invite the social worker"}
    with pytest.raises(FormInvalid) as caught:
        council.do_next("plan_review_meeting", SW, {**PLAN, "invitations": INVITATIONS[1:]})
    assert caught.value.errors == {"invitations": "Invite the designated teacher"}


def test_a_meeting_after_half_term_needs_a_reason_and_the_adviser_is_told(engine, council):
    start_review(council)
    late = {**PLAN, "meeting_date": "2026-02-24"}
    with pytest.raises(EngineError, match="first half of the term \\(by 2026-02-13\\)"):
        council.do_next("plan_review_meeting", SW, late)
    council.do_next("plan_review_meeting", SW, {**late, "reason_outside_first_half": "DT on long-term leave"})
    assert council.told("outside the first half of term", "escalation") == {"pool:vs_education_adviser", SW}
    assert council.only_task().spec_id == "gather_views"


# ---- before the meeting ----------------------------------------------------------------------


def test_concerns_raised_before_the_review_go_to_the_education_adviser(engine, council):
    start_review(council)
    with pytest.raises(FormInvalid) as caught:
        council.do_next("plan_review_meeting", SW, {**PLAN, "concerns_raised": True})
    assert set(caught.value.errors) == {"concerns_details"}
    council.do_next(
        "plan_review_meeting",
        SW,
        {**PLAN, "concerns_raised": True, "concerns_details": "Exclusion risk after an incident."},
    )
    advice = council.only_task()
    assert (advice.spec_id, advice.pooled, advice.role_key) == ("advise_before_review", True, "vs_education_adviser")
    assert "Exclusion risk after an incident." in council.view(advice, EA)["instructions"]
    council.do_next("advise_before_review", EA, {"ea_advice": "Use the behaviour plan.", "ea_attending_meeting": True})
    assert council.only_task().spec_id == "gather_views"


def test_the_social_worker_records_how_the_child_and_carers_contributed(engine, council):
    start_review(council)
    council.do_next("plan_review_meeting", SW, PLAN)
    task = council.only_task()
    assert task.due_at.isoformat() == "2026-02-10T23:59:59+00:00"
    assert "Make sure Alex Example contributes" in council.view(task, SW)["instructions"]
    with pytest.raises(FormInvalid) as caught:
        council.complete(task, SW, {"child_contribution": "Gave views before the meeting"})
    assert {"child_views", "carer_contribution", "carer_views", "social_care_input"} == set(caught.value.errors)


# ---- deadlines -------------------------------------------------------------------------------


def test_a_late_epep_is_reminded_then_escalated_to_the_education_adviser(engine, council):
    to_epep(council)
    epep = council.only_task()
    assert council.sweep("2026-02-10T12:00:00+00:00").timers_fired == 0
    assert council.sweep("2026-02-12T09:00:00+00:00").timers_fired == 1  # 2 working days before
    assert council.only_task().id == epep.id
    assert council.told("is due by 2026-02-13", "reminder") == {DT}
    assert council.sweep("2026-02-14T09:00:00+00:00").timers_fired == 1
    chase = council.only_task()
    assert (chase.spec_id, chase.pooled, chase.role_key) == ("chase_late_pep", True, "vs_education_adviser")
    assert council.told("is overdue", "escalation") == {"pool:vs_education_adviser", DT, SW}
    with pytest.raises(EngineError, match="New deadline must be today or in the future"):
        council.complete(chase, EA, {"action_taken": "Phoned the DT", "extend_to": "2026-02-13"})
    council.complete(chase, EA, {"action_taken": "Phoned the DT", "extend_to": "2026-02-25"})
    again = council.only_task()
    assert (again.spec_id, again.due_at.isoformat()) == ("complete_epep", "2026-02-25T23:59:59+00:00")
    assert council.sweep("2026-02-16T09:00:00+00:00").timers_fired == 0
    council.complete(again, DT, EPEP)
    with council.sessions() as s:
        submitted = [e for e in events(s, "Y5") if e.kind == "task_completed" and e.data["task"] == "complete_epep"]
    assert submitted[-1].data["late"] is False


def test_quality_assurance_is_reminded_and_an_overdue_qa_goes_to_the_vs_head(engine, council):
    to_qa(council)
    qa = council.only_task()
    assert qa.due_at.isoformat() == "2026-02-24T23:59:59+00:00"  # 10 working days after submission (10 February)
    council.sweep("2026-02-23T09:00:00+00:00")
    assert council.told("QA of the PEP for Alex Example is due", "reminder") == {"pool:vs_education_adviser"}
    council.sweep("2026-02-25T09:00:00+00:00")
    assert council.told("is overdue", "escalation") == {"pool:vs_head", "pool:vs_education_adviser"}
    assert council.only_task().id == qa.id


def test_a_green_rating_is_refused_while_a_quality_check_is_answered_no(engine, council):
    to_qa(council)
    with pytest.raises(FormInvalid) as caught:
        council.do_next(
            "quality_assure_pep",
            EA,
            {
                "qa_rating": "Green",
                "qa_feedback": "Good.",
                **QA_CHECKS,
                "targets_smart": False,
                "next_meeting_recorded": False,
            },
        )
    assert caught.value.errors == {
        "qa_rating": "Green means every check is met, but the targets are not SMART and "
        "next term's meeting date is not recorded: choose Amber or Red, or "
        "change that answer"
    }
    council.do_next(
        "quality_assure_pep",
        EA,
        {
            "qa_rating": "Amber",
            "qa_feedback": "Add measures.",
            **QA_CHECKS,
            "targets_smart": False,
            "next_meeting_recorded": False,
        },
    )
    assert "quality_assure_pep" not in [t.spec_id for t in council.open_tasks()]


def test_a_red_rating_sends_the_pep_back_to_the_teacher_until_it_is_green(engine, council):
    instance_id = to_qa(council)
    council.do_next(
        "quality_assure_pep",
        EA,
        {"qa_rating": "Red", "qa_feedback": "Targets are not SMART.", **QA_CHECKS, "targets_smart": False},
    )
    back = council.only_task()
    # five working days after the QA on Tuesday 10 February
    assert (back.spec_id, back.due_at.isoformat()) == ("complete_epep", "2026-02-17T23:59:59+00:00")
    shown = council.view(back, DT)["instructions"]
    assert "rated this PEP Red" in shown and "Targets are not SMART." in shown
    council.complete(back, DT, EPEP)
    qa = council.only_task()  # the social worker already checked the views: straight to QA
    assert qa.spec_id == "quality_assure_pep"
    assert "resubmission 1" in council.view(qa, EA)["instructions"]
    sign_off(council, "Green")
    assert council.told("quality-assured: Green") == {DT, SW}
    council.do_next("save_pep_to_mosaic", SW, MOSAIC)
    assert council.instance(instance_id).status == "completed"


def test_a_resubmission_that_is_not_made_in_time_is_escalated(engine, council):
    to_qa(council)
    council.do_next("quality_assure_pep", EA, {"qa_rating": "Red", "qa_feedback": "Redo.", **QA_CHECKS})
    council.sweep("2026-02-13T10:00:00+00:00")
    assert council.told("is due by 2026-02-17", "reminder") == {DT}
    council.sweep("2026-02-18T09:00:00+00:00")
    assert council.only_task().spec_id == "chase_late_pep"


# ---- after the meeting -----------------------------------------------------------------------


def test_views_recorded_wrongly_go_back_to_the_teacher_to_correct(engine, council):
    to_epep(council)
    council.do_next("complete_epep", DT, EPEP)
    check = council.only_task()
    assert (
        "views (and the child's and carers' views) were recorded accurately" in council.view(check, SW)["instructions"]
    )
    with pytest.raises(FormInvalid) as caught:
        council.complete(check, SW, {"views_recorded_accurately": False})
    assert set(caught.value.errors) == {"corrections_for_dt"}
    council.complete(
        check, SW, {"views_recorded_accurately": False, "corrections_for_dt": "I said the placement is stable."}
    )
    back = council.only_task()
    assert (back.spec_id, back.due_at.isoformat()) == ("complete_epep", "2026-02-17T23:59:59+00:00")
    assert "I said the placement is stable." in council.view(back, DT)["instructions"]
    council.complete(back, DT, EPEP)
    council.do_next("check_views_recorded", SW, {"views_recorded_accurately": True})
    assert council.only_task().spec_id == "quality_assure_pep"


def test_the_social_worker_saves_the_pep_to_mosaic_and_raises_unresolved_issues(engine, council):
    instance_id = to_qa(council)
    sign_off(council)
    filing = council.only_task()
    assert "ESCR / Mosaic" in council.view(filing, SW)["instructions"]
    with pytest.raises(FormInvalid) as caught:
        council.complete(filing, SW, {**MOSAIC, "saved_to_escr_mosaic": False, "unresolved_issues": True})
    assert set(caught.value.errors) == {"saved_to_escr_mosaic", "unresolved_issue_details"}
    council.complete(
        filing,
        SW,
        {**MOSAIC, "unresolved_issues": True, "unresolved_issue_details": "No agreement on a reading tutor."},
    )
    liaise = council.only_task()
    assert (liaise.spec_id, liaise.pooled) == ("liaise_unresolved_issues", True)
    council.complete(liaise, EA, {"ea_response": "VS will fund the tutor.", "issues_resolved": True})
    assert council.instance(instance_id).status == "completed"
    assert len(probe_instances(council)) == 1


# ---- children without a school place ---------------------------------------------------------

NO_SCHOOL_PLAN = {
    **PLAN,
    "has_school_place": False,
    "venue": "Children's Services, Leamington",
    "invitations": INVITATIONS[1:3] + [{"name": "Erin Adviser", "role": "VS Education Adviser"}],
    "uasc": True,
    "interpreter_required": True,
    "interpreter_language": "Pashto",
}
NO_SCHOOL_PEP = {
    **{k: v for k, v in EPEP.items() if k not in ("chaired_by", "attendance_percent", "attainment")},
    "current_education_provision": "ESOL classes, 10 hours a week",
    "school_place_actions": "In-year application to two schools",
    "vs_adviser": "Erin Adviser",
    "interpreter_used": True,
}


def test_a_child_without_a_school_place_has_the_pep_completed_by_the_social_worker_with_the_virtual_school(
    engine, council
):
    instance_id = start_review(council, child="NOSCHOOL")
    plan = council.only_task(child="NOSCHOOL")
    assert council.view(plan, SW)["data"]["has_school_place"] is False
    with pytest.raises(FormInvalid) as caught:  # UASC: an interpreter, or the reason none is needed
        council.complete(plan, SW, {**NO_SCHOOL_PLAN, "interpreter_required": False, "interpreter_language": ""})
    assert set(caught.value.errors) == {"interpreter_not_needed_reason"}
    council.complete(plan, SW, NO_SCHOOL_PLAN)
    interpreter = council.only_task(child="NOSCHOOL")
    assert (interpreter.spec_id, interpreter.lane) == ("arrange_interpreter", "Social Worker")
    assert "unaccompanied asylum-seeking child" in council.view(interpreter, SW)["instructions"]
    council.do_next(
        "arrange_interpreter",
        SW,
        {"interpreter_language": "Pashto", "interpreter_name": "Language Line", "interpreter_booked": True},
        child="NOSCHOOL",
    )
    support = council.only_task(child="NOSCHOOL")
    assert (support.spec_id, support.pooled, support.role_key) == (
        "support_sw_without_school_place",
        True,
        "vs_education_adviser",
    )
    council.do_next(
        "support_sw_without_school_place",
        EA,
        {
            "current_education_provision": "ESOL classes",
            "school_place_actions": "Applications made",
            "vs_support_offered": "EA will attend and draft targets with the SW",
            "ea_attending_meeting": True,
        },
        child="NOSCHOOL",
    )
    council.do_next("gather_views", SW, VIEWS, child="NOSCHOOL")
    pep = council.only_task(child="NOSCHOOL")
    assert (pep.spec_id, pep.lane, pep.due_at.isoformat()) == (
        "complete_pep_without_school",
        "Social Worker",
        SPRING_FIRST_HALF_END,
    )
    with pytest.raises(NotAllowed):
        council.complete(pep, DT, NO_SCHOOL_PEP)
    council.complete(pep, SW, NO_SCHOOL_PEP)
    assert council.only_task(child="NOSCHOOL").spec_id == "quality_assure_pep"  # no views check of their own PEP
    council.do_next(
        "quality_assure_pep", EA, {"qa_rating": "Green", "qa_feedback": "Good.", **QA_CHECKS}, child="NOSCHOOL"
    )
    assert council.told("quality-assured: Green", child="NOSCHOOL") == {SW}
    council.do_next("save_pep_to_mosaic", SW, MOSAIC, child="NOSCHOOL")
    assert council.instance(instance_id).status == "completed"
    with council.sessions() as s:
        assert not [n for n in s.scalars(select(Notification)) if n.role_key == "designated_teacher"]


def test_a_late_pep_without_a_school_place_is_escalated_to_the_education_adviser(engine, council):
    start_review(council, child="NOSCHOOL")
    council.do_next(
        "plan_review_meeting", SW, {**NO_SCHOOL_PLAN, "uasc": False, "interpreter_required": False}, child="NOSCHOOL"
    )
    council.do_next(
        "support_sw_without_school_place",
        EA,
        {
            "current_education_provision": "None",
            "school_place_actions": "Application made",
            "vs_support_offered": "Attend",
            "ea_attending_meeting": True,
        },
        child="NOSCHOOL",
    )
    council.do_next("gather_views", SW, VIEWS, child="NOSCHOOL")
    council.sweep("2026-02-12T09:00:00+00:00")
    assert council.told("is due by", "reminder", child="NOSCHOOL") == {SW}
    council.sweep("2026-02-14T09:00:00+00:00")
    assert council.only_task(child="NOSCHOOL").spec_id == "chase_late_pep"
    assert council.told("is overdue", "escalation", child="NOSCHOOL") == {"pool:vs_education_adviser", SW}
    council.do_next("chase_late_pep", EA, {"action_taken": "Called SW", "extend_to": "2026-02-20"}, child="NOSCHOOL")
    assert council.only_task(child="NOSCHOOL").spec_id == "complete_pep_without_school"


# ---- moving school ---------------------------------------------------------------------------

TRANSITION = {
    "key_adult": "Mr Green, learning mentor",
    "school_systems_and_routines": "Visit and a photo booklet",
    "belonging_support": "Buddy in the new class",
    "new_school_invited_to_final_pep": True,
    "comprehensive_epep_to_pass_on": True,
}


def test_a_child_moving_school_gets_a_transition_plan_and_the_new_school_is_handed_the_epep(engine, council):
    instance_id = start_review(council)
    moving = {
        **PLAN,
        "moving_school": True,
        "new_school": "New Meadow School",
        "move_date": "2026-02-23",
        "new_school_contact": "Nia Teacher, dt@newschool.test",
    }
    with pytest.raises(FormInvalid) as caught:
        council.do_next("plan_review_meeting", SW, {**PLAN, "moving_school": True})
    assert set(caught.value.errors) == {"new_school", "new_school_contact", "new_school_invited_to_final_pep"}
    council.do_next("plan_review_meeting", SW, {**moving, "new_school_invited_to_final_pep": True})
    assert council.told("is moving to New Meadow School") == {"pool:vs_administrator", SW}
    council.do_next("gather_views", SW, VIEWS)
    epep = council.only_task()
    assert "comprehensive ePEP to pass on" in council.view(epep, DT)["instructions"]
    with pytest.raises(FormInvalid) as caught:
        council.complete(epep, DT, {**EPEP, "moving_school": True})
    assert set(caught.value.errors) == {"new_school", "transition_plan"}
    council.complete(
        epep, DT, {**EPEP, "moving_school": True, "new_school": "New Meadow School", "transition_plan": TRANSITION}
    )
    council.do_next("check_views_recorded", SW, {"views_recorded_accurately": True})
    sign_off(council)
    hand_over = council.only_task()
    assert (hand_over.spec_id, hand_over.pooled, hand_over.role_key) == (
        "hand_over_to_new_school",
        True,
        "vs_administrator",
    )
    assert "dt@newschool.test" in council.view(hand_over, ADMIN)["instructions"]
    with pytest.raises(NotAllowed):
        council.complete(hand_over, "dt@newschool.test", {})
    council.complete(
        hand_over,
        ADMIN,
        {
            "new_school_dt_name": "Nia Teacher",
            "new_school_dt_email": "dt@newschool.test",
            "epep_access_set_up": True,
            "case_team_updated": True,
            "epep_passed_to_new_school": True,
        },
    )
    council.do_next("save_pep_to_mosaic", SW, MOSAIC)
    assert council.instance(instance_id).status == "completed"


def test_a_school_change_announced_during_the_epep_is_recorded_and_the_administrator_told(engine, council):
    to_epep(council)
    before = council.only_task()
    council.send("child_changes_school", data={"new_school": "New Meadow School", "move_date": "2026-03-02"}, actor=SW)
    after = council.only_task()
    assert after.spec_id == "complete_epep" and after.id != before.id
    assert after.due_at == before.due_at
    data = council.view(after, DT)["data"]
    assert (data["moving_school"], data["new_school"], data["move_date"]) == (True, "New Meadow School", "2026-03-02")
    assert council.told("is moving to New Meadow School") == {"pool:vs_administrator", SW}


# ---- leaving care ----------------------------------------------------------------------------

LEAVING_PLAN = {
    "left_care_date": "2026-02-09",
    "education_plan": "Stay at Oak Primary; Year 6 transition in July",
    "support_after_care": "Family support worker for six months",
    "pp_plus_arrangements": "PP+ ends; school applies for the pupil premium",
    "plan_shared_with_child_and_carers": True,
}


def test_a_child_leaving_care_has_a_leaving_care_pep_and_no_further_termly_review(engine, council):
    instance_id = to_epep(council)
    council.send("child_leaves_care", data={"left_care": "2026-02-09", "reason": "Returned home"}, actor=SW)
    assert council.told("has left care") == {SW, "pool:vs_administrator"}
    epep = council.only_task()
    assert epep.spec_id == "complete_epep"
    assert "This is the leaving-care PEP" in council.view(epep, DT)["instructions"]
    council.complete(epep, DT, {**EPEP, "future_plans": "Stay at Oak Primary"})
    council.do_next("check_views_recorded", SW, {"views_recorded_accurately": True})
    sign_off(council)
    council.do_next("save_pep_to_mosaic", SW, MOSAIC)
    future = council.only_task()
    assert future.spec_id == "plan_for_the_future"
    assert council.view(future, SW)["data"]["left_care_date"] == "2026-02-09"
    council.complete(future, SW, LEAVING_PLAN)
    assert council.instance(instance_id).status == "completed"
    path = council.last_path(instance_id)
    assert path[-1] == "leaving_care_pep_completed" and "next_review_due" not in path
    assert probe_instances(council) == []


def test_a_child_leaving_care_before_the_review_term_has_the_leaving_care_pep_at_once(engine, council):
    engine.clock.set("2026-03-02T09:00:00+00:00")
    start_review(council, next_meeting_date="2026-04-21")
    assert council.open_tasks() == []
    council.send("child_leaves_care", data={"left_care": "2026-03-06", "reason": "Special guardianship"}, actor=SW)
    plan = council.only_task()
    assert plan.spec_id == "plan_review_meeting"
    assert "has left care" in council.view(plan, SW)["instructions"]


# ---- meetings moved or cancelled ---------------------------------------------------------------


def test_a_rescheduled_meeting_moves_the_epep_deadline(engine, council):
    instance_id = to_epep(council)
    council.send(
        "meeting_rescheduled",
        data={"meeting_date": "2026-02-12", "meeting_time": "14:00", "venue": "Oak Primary, hall", "reason": "Illness"},
        actor=SW,
    )
    task = council.only_task()
    assert (task.spec_id, task.due_at.isoformat()) == ("complete_epep", SPRING_FIRST_HALF_END)
    assert council.view(task, DT)["data"]["meeting_date"] == "2026-02-12"
    council.send("meeting_rescheduled", data={"meeting_date": "2026-02-24", "reason": "Snow"}, actor=SW)
    moved = council.only_task()
    assert moved.due_at.isoformat() == "2026-02-24T23:59:59+00:00"
    notes = council.notifications("notice")
    assert "after the first half of term" in [n for n in notes if "moved to 2026-02-24" in n.subject][0].body
    assert council.told("moved to 2026-02-24") == {SW, "pool:vs_education_adviser"}
    assert council.sweep("2026-02-14T09:00:00+00:00").timers_fired == 0  # the old deadline is gone
    assert council.only_task().spec_id == "complete_epep"
    assert council.instance(instance_id).status == "running"


def test_a_meeting_rescheduled_before_the_views_are_gathered_moves_their_deadline(engine, council):
    start_review(council)
    council.do_next("plan_review_meeting", SW, PLAN)
    council.send("meeting_rescheduled", data={"meeting_date": "2026-02-11"}, actor=SW)
    task = council.only_task()
    assert (task.spec_id, task.due_at.isoformat()) == ("gather_views", "2026-02-11T23:59:59+00:00")


def test_a_cancelled_meeting_is_re_arranged_and_the_views_confirmed_again(engine, council):
    to_epep(council)
    council.send("meeting_cancelled", data={"reason": "School closed for snow"}, actor=SW)
    rearrange = council.only_task()
    assert (rearrange.spec_id, rearrange.lane) == ("rearrange_meeting", "Social Worker")
    assert "School closed for snow" in council.view(rearrange, SW)["instructions"]
    council.complete(
        rearrange,
        SW,
        {"meeting_date": "2026-02-12", "meeting_time": "09:30", "venue": "Oak Primary", "invitations_resent": True},
    )
    views = council.only_task()
    assert views.spec_id == "gather_views"
    assert council.view(views, SW)["data"]["child_views"] == VIEWS["child_views"]
    council.complete(views, SW, VIEWS)
    epep = council.only_task()
    assert (epep.spec_id, epep.due_at.isoformat()) == ("complete_epep", SPRING_FIRST_HALF_END)
