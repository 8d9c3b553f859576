"""The "EY - Post 16 PEP process flowchart" council (Liquid Logic): processes/all_ages_review.bpmn.

One termly PEP review for a child of any age: the SW calls the meeting, the young person's views sheet
and the DT's pre-populated data come first, SW and DT must attend, the EA signs off and quality-assures,
the VS Head approves PP+, the SW files the PEP on Liquid Logic and updates the CLA review record.
The clock starts on Monday 2 March 2026 (spring term; Easter bank holidays 3 and 6 April).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.errors import FormInvalid, NotAllowed
from engine.models import Instance
from tests.conftest import shipped_bundle

from ..helpers import Council

SW, DT, EA, VSH = "sw@council.test", "dt@oak.test", "ea@council.test", "vsh@council.test"
YP, CARER, IRO = "yp@home.test", "carer@home.test", "iro@council.test"

CALL = {
    "meeting_date": "2026-03-18",
    "meeting_time": "14:00",
    "venue": "Oak Primary, meeting room 2",
    "invitees": [
        {"role": "Designated Teacher", "name": "Dana Teacher"},
        {"role": "Carer", "name": "Cara Carer"},
        {"role": "Educational Psychologist", "name": "Eve Psychologist", "contact": "ep@council.test"},
    ],
    "young_person_encouraged_to_attend": True,
    "student_views_sheet_sent": True,
    "has_school_place": True,
    "has_ehcp": False,
    "cla_review_date": "2026-04-22",
}
VIEWS = {
    "how_i_feel_about_school": "OK",
    "what_is_going_well": "I like art and my new friends",
    "what_i_find_hard": "Spelling tests",
    "help_i_need": "Help with reading at home",
    "my_hopes": "To be an illustrator",
    "coming_to_meeting": "Yes",
}
PREPOPULATED = {
    "attendance_percent": 94.5,
    "exclusions_this_year": 0,
    "sen_status": "SEN support",
    "attainment": [{"subject": "Reading", "current": "Working towards", "progress": "Below expected"}],
}
TARGETS = [
    {
        "what": "Read aloud with a buddy three times a week",
        "category": "Academic",
        "strategies": "Buddy reading in the library",
        "who": "Class teacher",
        "by_when": "2026-05-22",
        "evidence_of_impact": "Reading age up six months",
        "pp_plus_amount": 300,
    },
    {
        "what": "Join the art club every week",
        "category": "Social, emotional and mental health",
        "strategies": "Carer drops off after school",
        "who": "Carer",
        "by_when": "2026-05-22",
    },
]
RECORD = {
    "meeting_date": "2026-03-18",
    "sw_attended": True,
    "dt_attended": True,
    "young_person_attended": True,
    "young_persons_views": "Alex led with their views sheet: art and reading help.",
    "targets": TARGETS,
    "next_meeting_date": "2026-06-17",
    "next_meeting_time": "14:00",
}
GREEN = {
    "child_voice_evident": True,
    "previous_targets_evaluated": True,
    "targets_smart": True,
    "pp_plus_linked_to_targets": True,
    "rating": "Green",
}
SEND = {"pep_document": "upload-7f3a", "sent_to_social_worker": True}
FILED = {"filed_on_liquid_logic": True, "liquid_logic_reference": "LL-2026-0042", "filed_on": "2026-03-27"}
REVIEW = {
    "review_record_updated": True,
    "education_summary_for_review": "Attendance 94.5%, reading support.",
    "significant_changes": False,
}

# A stand-in for the council's PEP-cycle router: it catches pep_cycle_due and starts the next review.
ROUTER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="router" targetNamespace="http://example.org/t">
  <bpmn:message id="pep_cycle_due" name="pep_cycle_due" />
  <bpmn:message id="all_ages_review_due" name="all_ages_review_due" />
  <bpmn:process id="test_router" isExecutable="true">
    <bpmn:startEvent id="cycle_due"><bpmn:outgoing>r1</bpmn:outgoing>
      <bpmn:messageEventDefinition id="cycle_due_def" messageRef="pep_cycle_due">
        <bpmn:extensionElements><spiffworkflow:messageVariable>cycle</spiffworkflow:messageVariable></bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="r1" sourceRef="cycle_due" targetRef="start_next" />
    <bpmn:endEvent id="start_next"><bpmn:incoming>r1</bpmn:incoming>
      <bpmn:messageEventDefinition id="start_next_def" messageRef="all_ages_review_due">
        <bpmn:extensionElements><spiffworkflow:messagePayload>cycle</spiffworkflow:messagePayload></bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def _deploy(demo_council, engine, with_router=False) -> Council:
    bundle = shipped_bundle("all_ages_review.bpmn", forms=("allages_",))
    if with_router:
        bundle.add("processes/test_router.bpmn", ROUTER)
    return Council(engine, demo_council).deployed(bundle)


@pytest.fixture
def council(demo_council, engine):
    """The demo council with only this diagram and its forms deployed."""
    return _deploy(demo_council, engine)


# ---- the way to each step -----------------------------------------------------------------------


def start(council, child="Y5", cycle=None) -> int:
    started = council.send(
        "all_ages_review_due",
        {"variant": "all_ages_review_due", "next_meeting_date": None, "previous_targets": [], **(cycle or {})},
        child,
        actor="router",
    )
    return started[0].id


def prepared(council, child="Y5", call=None, sheet=True) -> int:
    """Start a review, complete everything before the meeting, and hold it (the clock moves to its
    afternoon: a meeting is recorded once it has been held)."""
    instance_id = start(council, child)
    council.do("call_meeting", SW, {**CALL, **(call or {})}, child)
    if sheet:
        council.do("student_views_sheet", YP, VIEWS, child)
    council.do("prepopulate_pep", DT, PREPOPULATED, child)
    held(council.engine, (call or {}).get("meeting_date", CALL["meeting_date"]))
    return instance_id


def held(engine, day=CALL["meeting_date"]) -> None:
    """The meeting of `day` has been held: it is that afternoon."""
    engine.clock.set(f"{day}T16:00:00+00:00")


def to_qa(council, record=None) -> int:
    instance_id = prepared(council)
    council.do("record_meeting", DT, {**RECORD, **(record or {})})
    return instance_id


# ---- the cycle and the window -------------------------------------------------------------------


def test_a_due_review_with_no_planned_date_asks_the_social_worker_to_call_the_meeting_now(council, engine):
    start(council)
    call = council.task("call_meeting")
    assert (call.role_key, call.lane) == ("social_worker", "Social Worker")
    shown = council.view("call_meeting", SW)
    assert shown["data"]["has_school_place"] is True  # pre-fills the form from the child's school
    assert "Wherever Alex Example is placed, and even without a school place" in shown["instructions"]
    assert "3 times a year" in shown["instructions"]
    assert "Virtual School, an Educational Psychologist, CYPS" in shown["instructions"]


def test_the_review_waits_until_20_working_days_before_the_planned_meeting(council, engine):
    instance_id = start(council, cycle={"next_meeting_date": "2026-06-17"})
    assert council.open_tasks() == []
    # 20 working days before Wednesday 17 June 2026: Tuesday 19 May, 00:00 London (BST)
    assert council.instance(instance_id).next_timer_at.isoformat().startswith("2026-05-18T23:00:00")
    assert council.sweep("2026-05-18T22:00:00+00:00").timers_fired == 0
    assert council.sweep("2026-05-18T23:00:01+00:00").timers_fired == 1
    assert "planned at the last PEP for 17 June 2026" in council.view("call_meeting", SW)["instructions"]


def test_a_child_leaving_care_before_the_meeting_is_called_closes_the_review_without_a_next_pep(council, engine):
    instance_id = start(council, cycle={"next_meeting_date": "2026-06-17"})
    council.sweep("2026-05-19T09:00:00+00:00")
    assert [t.spec_id for t in council.open_tasks()] == ["call_meeting"]
    with council.sessions.begin() as s:
        engine.send_message(s, "child_leaves_care", "Y5", {"left_care": "2026-04-01", "reason": "returned home"})
    assert council.instance(instance_id).status == "completed" and council.open_tasks() == []
    run = council.path(instance_id)
    assert run[-2:] == ["left_care_before_meeting", "closed_left_care"] and "next_pep_due" not in run


# ---- the PEP meeting: calling it, the student views sheet, the DT's data ------------------------


def test_calling_the_meeting_invites_carer_and_young_person_and_opens_the_preparation(council, engine):
    start(council)
    council.do("call_meeting", SW, CALL)
    assert sorted(t.spec_id for t in council.open_tasks()) == ["prepopulate_pep", "student_views_sheet"]
    sheet, data = council.task("student_views_sheet"), council.task("prepopulate_pep")
    assert (sheet.role_key, data.role_key) == ("young_person", "designated_teacher")
    # both due by the end of two working days before the meeting on Wednesday 18 March
    assert sheet.due_at.isoformat() == data.due_at.isoformat() == "2026-03-16T23:59:59+00:00"
    invited = council.notices("notice")
    assert {who for who, _role, _subject in invited} == {CARER, YP}
    assert invited[0][2] == "PEP meeting for Alex Example on 2026-03-18 at 14:00"
    assert "most important part of the meeting" in council.view("student_views_sheet", YP)["instructions"]
    assert "you lead the development and implementation" in council.view("prepopulate_pep", DT)["instructions"]


def test_the_young_persons_views_are_the_central_focus_of_the_meeting(council, engine):
    prepared(council)
    record = council.task("record_meeting")
    assert record.due_at.isoformat() == "2026-03-25T23:59:59+00:00"  # 5 working days after the meeting
    text = council.view("record_meeting", DT)["instructions"]
    assert "The young person's views and opinions are the central focus" in text
    assert "going well: I like art and my new friends" in text and "Help with reading at home" in text
    assert "must both attend" in text and "3 times a year" in text


def test_the_views_sheet_not_done_reminds_the_sw_and_carer_then_the_sw_records_why(council, engine):
    start(council)
    council.do("call_meeting", SW, CALL)
    council.do("prepopulate_pep", DT, PREPOPULATED)
    sheet = council.task("student_views_sheet")
    # Wednesday 11 March, 09:00: five working days before the meeting
    assert council.sweep("2026-03-11T09:00:01+00:00").timers_fired == 1
    assert {who for who, _r, _s in council.notices("reminder")} == {SW, CARER}
    assert council.task("student_views_sheet").id == sheet.id
    council.sweep("2026-03-17T00:00:01+00:00")
    assert "student_views_sheet" not in [t.spec_id for t in council.open_tasks()]
    assert {who for who, _r, _s in council.notices("overdue")} == {SW, CARER}
    assert council.task("record_views_missing").role_key == "social_worker"
    assert "record_meeting" not in [t.spec_id for t in council.open_tasks()]
    assert set(council.refused("record_views_missing", SW, {})) == {"views_missing_reason", "views_missing_details"}
    council.do(
        "record_views_missing",
        SW,
        {
            "views_missing_reason": "Young person declined",
            "views_missing_details": "Did not want to write it down",
            "views_gathered_another_way": "Carer will share",
        },
    )
    text = council.view("record_meeting", DT)["instructions"]
    assert "No student views sheet was completed (Did not want to write it down)" in text


def test_without_a_views_sheet_for_a_very_young_child_the_sw_says_why_and_no_sheet_is_sent(council, engine):
    start(council, child="EY3")
    call = {
        **CALL,
        "student_views_sheet_sent": False,
        "invitees": [{"role": "Designated Teacher", "name": "Pip Practitioner"}],
    }
    errors = council.refused("call_meeting", SW, call, child="EY3")
    assert errors == {
        "views_sheet_not_sent_reason": "Answer the question: Why is the student views sheet not being "
        "sent, and how will the child's views be gathered?"
    }
    council.do("call_meeting", SW, {**call, "views_sheet_not_sent_reason": "Aged 3: key worker observes"}, child="EY3")
    assert [t.spec_id for t in council.open_tasks("EY3")] == ["prepopulate_pep"]
    council.do("prepopulate_pep", "dp@nursery.test", PREPOPULATED, child="EY3")
    assert (
        "(Aged 3: key worker observes)"
        in council.view("record_meeting", "dp@nursery.test", child="EY3")["instructions"]
    )


def test_late_pre_population_reminds_the_dt_and_tells_the_sw_and_the_dt_keeps_the_task(council, engine):
    start(council)
    council.do("call_meeting", SW, CALL)
    council.do("student_views_sheet", YP, VIEWS)
    data = council.task("prepopulate_pep")
    assert council.sweep("2026-03-16T23:00:00+00:00").timers_fired == 0
    assert council.sweep("2026-03-17T00:00:01+00:00").timers_fired == 1
    late = council.notices("overdue")
    assert {who for who, _r, _s in late} == {DT, SW}
    assert late[0][2] == "The PEP for Alex Example is not pre-populated for the meeting on 2026-03-18"
    assert council.task("prepopulate_pep").id == data.id
    council.do("prepopulate_pep", DT, PREPOPULATED)
    assert [t.spec_id for t in council.open_tasks()] == ["record_meeting"]


# ---- the meeting must have the SW and the DT; the next PEP date is set ---------------------------


def test_a_meeting_without_the_social_worker_or_the_designated_teacher_is_refused(council, engine):
    prepared(council)
    no_sw = council.refused("record_meeting", DT, {**RECORD, "sw_attended": False})
    assert no_sw == {
        "sw_attended": "The Social Worker must attend the PEP meeting: "
        "a meeting without them is not accepted, hold it again with them present"
    }
    assert set(council.refused("record_meeting", DT, {**RECORD, "dt_attended": False})) == {"dt_attended"}
    assert set(council.refused("record_meeting", DT, {k: v for k, v in RECORD.items() if k != "sw_attended"})) == {
        "sw_attended"
    }
    # held again a week later with both present
    held(engine, "2026-03-25")
    council.do("record_meeting", DT, {**RECORD, "meeting_date": "2026-03-25"})
    assert council.task("qa_pep").pooled


def test_the_next_pep_date_must_be_set_and_keep_three_meetings_a_year(council, engine):
    prepared(council)
    missing = {k: v for k, v in RECORD.items() if k != "next_meeting_date"}
    assert council.refused("record_meeting", DT, missing) == {"next_meeting_date": "Enter date of the next PEP meeting"}
    for day in ("2026-09-21", "2026-03-18"):  # after next term, the same day
        assert council.refused("record_meeting", DT, {**RECORD, "next_meeting_date": day}) == {
            "next_meeting_date": "The next PEP meeting must be after this meeting and no later than the end of next "
            "term, 22 July 2026: PEP meetings are held 3 times a year"
        }
    assert council.refused("record_meeting", DT, {**RECORD, "next_meeting_date": "2026-03-01"}) == {
        "next_meeting_date": "Date of the next PEP meeting must be today or in the future"
    }
    with council.sessions.begin() as s, pytest.raises(FormInvalid) as caught:  # recorded the day before it is held
        engine.complete_task(s, council.task("record_meeting").id, DT, {**RECORD, "meeting_date": "2026-03-19"})
    assert caught.value.errors == {"meeting_date": "Date the meeting was held must be today or in the past"}
    council.do("record_meeting", DT, {**RECORD, "next_meeting_date": "2026-07-08"})
    assert [t.spec_id for t in council.open_tasks()] == ["qa_pep"]
    assert "PLEASE CHANGE" not in council.view("qa_pep", EA)["instructions"]


# ---- after the meeting: QA, PP+, Liquid Logic, review record, next cycle --------------------------


def test_the_whole_review_runs_to_liquid_logic_and_starts_the_next_pep(demo_council, engine):
    council = _deploy(demo_council, engine, with_router=True)
    first = to_qa(council)
    qa = council.task("qa_pep")
    assert (qa.role_key, qa.pooled, qa.assignee_id) == ("vs_education_adviser", True, None)
    assert "(£300.00 in all)" in council.view("qa_pep", EA)["instructions"]
    council.do("qa_pep", EA, GREEN)
    assert council.task("approve_pp_plus").role_key == "vs_head"
    council.do("approve_pp_plus", VSH, {"pp_plus_decision": "Approve"})
    assert council.task("send_pep_to_sw").role_key == "vs_education_adviser"
    council.do("send_pep_to_sw", EA, SEND)
    filing = council.view("file_on_liquid_logic", SW)["instructions"]
    assert "Put it on Alex Example's Liquid Logic record" in filing
    assert "Do not take significant decisions about Alex Example's education without reviewing the ePEP" in filing
    council.do("file_on_liquid_logic", SW, FILED)
    review = council.task("update_review_record")
    # the working day before the statutory CLA review on Wednesday 22 April (BST)
    assert review.due_at.isoformat() == "2026-04-21T22:59:59+00:00"
    council.do("update_review_record", SW, REVIEW)
    assert council.instance(first).status == "completed"
    with council.sessions() as s:
        started = s.scalars(select(Instance).where(Instance.child_id == "Y5").order_by(Instance.id)).all()
    assert [i.definition.process_id for i in started] == ["all_ages_review", "test_router", "all_ages_review"]
    thrown = [e for e in council.history() if e.kind == "instance_started" and e.instance_id == started[1].id][0]
    assert thrown.data["data"] == {
        "variant": "all_ages_review_due",
        "next_meeting_date": "2026-06-17",
        "previous_targets": TARGETS,
    }
    assert council.path(first)[-1] == "next_pep_due"
    # the next review waits for its window and shows the targets to review
    nxt = started[2]
    assert nxt.status == "running" and nxt.next_timer_at.isoformat().startswith("2026-05-18T23:00:00")
    council.sweep("2026-05-19T09:00:00+00:00")
    council.do("call_meeting", SW, {**CALL, "meeting_date": "2026-06-17", "cla_review_date": None})
    council.do("student_views_sheet", YP, VIEWS)
    council.do("prepopulate_pep", DT, PREPOPULATED)
    text = council.view("record_meeting", DT)["instructions"]
    assert "Read aloud with a buddy three times a week (by 22 May 2026)" in text


def test_the_end_of_a_review_throws_pep_cycle_due(council, engine):
    instance_id = to_qa(council, {"targets": [{**TARGETS[0], "pp_plus_amount": 0}]})
    council.do("qa_pep", EA, GREEN)
    council.do("send_pep_to_sw", EA, SEND)
    council.do("file_on_liquid_logic", SW, FILED)
    council.do("update_review_record", SW, REVIEW)
    assert council.instance(instance_id).status == "completed"
    last = council.history()[-2]
    assert last.kind == "task_completed" and last.data["path"][-1] == "next_pep_due"
    assert council.history()[-1].kind == "instance_completed"


def test_the_pep_is_signed_off_when_the_adviser_accepts_it_not_once_it_is_filed(council, engine):
    to_qa(council, {"targets": [{**TARGETS[0], "pp_plus_amount": 0}]})
    council.do("qa_pep", EA, {**GREEN, "rating": "Red", "qa_feedback": "The targets are not SMART"})
    assert "pep_signed_off" not in [e.kind for e in council.history()]  # Red: sent back, not signed off
    council.do("record_meeting", DT, {**RECORD, "targets": [{**TARGETS[0], "pp_plus_amount": 0}]})
    council.do("qa_pep", EA, GREEN)
    [signed] = [e for e in council.history() if e.kind == "pep_signed_off"]
    assert signed.data["element"] == "pep_signed_off" and council.task("send_pep_to_sw")  # before the filing
    council.do("send_pep_to_sw", EA, SEND)
    council.do("file_on_liquid_logic", SW, FILED)
    council.do("update_review_record", SW, REVIEW)
    assert [e.kind for e in council.history()].count("pep_signed_off") == 1  # once: the filing signs nothing off


def test_a_red_rating_sends_the_pep_back_to_the_dt_with_feedback_and_a_new_deadline(council, engine):
    to_qa(council)
    assert council.refused("qa_pep", EA, {**GREEN, "rating": "Red"}) == {"qa_feedback": "Enter feedback"}
    engine.clock.set("2026-03-26T10:00:00+00:00")  # after the first deadline (25 March)
    council.do("qa_pep", EA, {**GREEN, "rating": "Red", "qa_feedback": "Targets need a measure."})
    back = council.task("record_meeting")
    assert back.role_key == "designated_teacher"
    assert back.due_at.isoformat() == "2026-04-02T22:59:59+00:00"  # Thursday + 5 working days, end of day (BST)
    assert council.view("record_meeting", DT)["instructions"].startswith(
        "PLEASE CHANGE: the VS Education Adviser rated the PEP Red: Targets need a measure."
    )
    assert council.sweep("2026-03-26T12:00:00+00:00").timers_fired == 0  # the deadline moved
    assert council.sweep("2026-04-03T00:00:01+00:00").timers_fired == 1
    late = council.notices("overdue")
    assert [(who, role) for who, role, _s in late] == [(DT, None), (None, "vs_education_adviser")]
    council.do("record_meeting", DT, RECORD)
    council.do("qa_pep", EA, {**GREEN, "rating": "Amber", "qa_feedback": "Better."})
    assert [t.spec_id for t in council.open_tasks()] == ["approve_pp_plus"]


def test_a_green_rating_is_refused_while_a_quality_check_is_answered_no(council, engine):
    to_qa(council)
    assert council.refused("qa_pep", EA, {**GREEN, "child_voice_evident": False}) == {
        "rating": "Green means every check is met, but the young person's voice is not evident: choose Amber or "
        "Red, or change that answer"
    }
    council.do(
        "qa_pep",
        EA,
        {**GREEN, "child_voice_evident": False, "rating": "Amber", "qa_feedback": "Put the student views first."},
    )
    assert [t.spec_id for t in council.open_tasks()] == ["approve_pp_plus"]


def test_the_vs_head_approves_part_of_the_pp_plus_and_the_dt_and_sw_are_told(council, engine):
    to_qa(council)
    council.do("qa_pep", EA, GREEN)
    errors = council.refused("approve_pp_plus", VSH, {"pp_plus_decision": "Approve part"})
    assert set(errors) == {"pp_plus_approved_amount", "pp_plus_decision_reason"}
    council.do(
        "approve_pp_plus",
        VSH,
        {
            "pp_plus_decision": "Approve part",
            "pp_plus_approved_amount": 200,
            "pp_plus_decision_reason": "Tuition is capped at £200 a term.",
        },
    )
    told = [n for n in council.notices("notice") if n[2].startswith("Pupil Premium Plus")]
    assert {who for who, _r, _s in told} == {DT, SW}
    assert told[0][2] == "Pupil Premium Plus for Alex Example: Approve part (£200 of £300)"
    assert "(Approve part, £200.00)" in council.view("send_pep_to_sw", EA)["instructions"]


def test_the_vs_head_refuses_the_pp_plus_with_reasons(council, engine):
    to_qa(council)
    council.do("qa_pep", EA, GREEN)
    assert set(council.refused("approve_pp_plus", VSH, {"pp_plus_decision": "Refuse"})) == {"pp_plus_decision_reason"}
    council.do(
        "approve_pp_plus",
        VSH,
        {"pp_plus_decision": "Refuse", "pp_plus_decision_reason": "Not linked to an assessed need."},
    )
    assert any(
        s == "Pupil Premium Plus for Alex Example: Refuse (£0 of £300)" for _w, _r, s in council.notices("notice")
    )
    assert [t.spec_id for t in council.open_tasks()] == ["send_pep_to_sw"]


def test_no_pp_plus_requested_skips_the_vs_head(council, engine):
    to_qa(council, {"targets": [TARGETS[1]]})
    council.do("qa_pep", EA, GREEN)
    assert [t.spec_id for t in council.open_tasks()] == ["send_pep_to_sw"]
    assert not [e for e in council.history() if e.kind == "task_ready" and e.data["task"] == "approve_pp_plus"]


# ---- no school place, EHCP, IRO ---------------------------------------------------------------


def test_a_child_with_no_school_place_still_has_a_pep_with_the_ea_in_place_of_a_dt(council, engine):
    start(council, child="NOSCHOOL")
    assert council.view("call_meeting", SW, child="NOSCHOOL")["data"]["has_school_place"] is False
    call = {
        **CALL,
        "has_school_place": False,
        "student_views_sheet_sent": False,
        "views_sheet_not_sent_reason": "No young person account yet: SW will bring their views",
        "invitees": [{"role": "Carer", "name": "Cara Carer"}],
    }
    assert council.refused("call_meeting", SW, call, child="NOSCHOOL") == {
        "invitees": "Invite the VS Education Adviser: without a school place they "
        "complete the education sections with you"
    }
    call["invitees"].append({"role": "VS Education Adviser", "name": "Erin Adviser"})
    council.do("call_meeting", SW, call, child="NOSCHOOL")
    sections = council.task("complete_education_sections", child="NOSCHOOL")
    assert (sections.role_key, sections.pooled) == ("vs_education_adviser", True)
    council.do(
        "complete_education_sections",
        EA,
        {
            "current_provision": "Tuition",
            "provision_hours_per_week": 10,
            "school_place_plan": "Admissions panel 30 March",
        },
        child="NOSCHOOL",
    )
    record = council.task("record_meeting_no_school", child="NOSCHOOL")
    assert record.role_key == "social_worker"
    assert (
        "Plan for a school place: Admissions panel 30 March"
        in council.view("record_meeting_no_school", SW, child="NOSCHOOL")["instructions"]
    )
    held(engine)
    meeting = {
        **RECORD,
        "ea_attended": False,
        "education_provision_now": "10 hours tuition",
        "school_place_plan": "Admissions panel 30 March",
    }
    del meeting["dt_attended"]
    assert set(council.refused("record_meeting_no_school", SW, meeting, child="NOSCHOOL")) == {"ea_attended"}
    council.do("record_meeting_no_school", SW, {**meeting, "ea_attended": True}, child="NOSCHOOL")
    council.do("qa_pep", EA, {**GREEN, "rating": "Red", "qa_feedback": "Add a date for the panel."}, child="NOSCHOOL")
    assert council.task("record_meeting_no_school", child="NOSCHOOL").role_key == "social_worker"
    # ... and runs to its end with nobody missing: no step waits for a Designated Teacher
    council.do("record_meeting_no_school", SW, {**meeting, "ea_attended": True}, child="NOSCHOOL")
    council.do("qa_pep", EA, GREEN, child="NOSCHOOL")
    council.do("approve_pp_plus", VSH, {"pp_plus_decision": "Approve"}, child="NOSCHOOL")
    council.do("send_pep_to_sw", EA, SEND, child="NOSCHOOL")
    council.do("file_on_liquid_logic", SW, FILED, child="NOSCHOOL")
    done = council.do("update_review_record", SW, REVIEW, child="NOSCHOOL")
    assert done.status == "completed" and council.open_tasks("NOSCHOOL") == []
    assert council.notices("task_needs_person", child="NOSCHOOL") == []


def test_a_school_child_must_have_the_designated_teacher_invited(council, engine):
    start(council)
    errors = council.refused("call_meeting", SW, {**CALL, "invitees": [{"role": "Carer", "name": "Cara"}]})
    assert errors["invitees"].endswith("Invite the school's Designated Teacher: they must attend the PEP meeting")


def test_an_ehcp_annual_review_at_the_same_time_links_the_reviews_and_invites_the_sen_team(council, engine):
    start(council)
    ehcp = {**CALL, "has_ehcp": True}
    assert set(council.refused("call_meeting", SW, ehcp)) == {"ehcp_document", "ehcp_annual_review_date"}
    council.do("call_meeting", SW, {**ehcp, "ehcp_document": "upload-ehcp-1", "ehcp_annual_review_date": "2026-03-25"})
    link = council.task("link_ehcp_review")
    assert link.role_key == "social_worker" and link.due_at.isoformat() == "2026-03-16T23:59:59+00:00"
    assert "(25 March 2026) falls close to the PEP meeting" in council.view("link_ehcp_review", SW)["instructions"]
    assert set(council.refused("link_ehcp_review", SW, {"sen_team_invited": False, "joint_meeting": True})) == {
        "sen_team_invited"
    }
    council.do("student_views_sheet", YP, VIEWS)
    council.do("prepopulate_pep", DT, PREPOPULATED)
    assert [t.spec_id for t in council.open_tasks()] == ["link_ehcp_review"]  # the meeting waits for the link
    council.do("link_ehcp_review", SW, {"sen_team_invited": True, "joint_meeting": True, "sen_officer": "Sam SEN"})
    assert (
        "Link this review with the EHCP annual review (25 March 2026)"
        in council.view("record_meeting", DT)["instructions"]
    )


def test_an_ehcp_review_months_away_needs_no_sen_team_invitation(council, engine):
    prepared(
        council, call={"has_ehcp": True, "ehcp_document": "upload-ehcp-1", "ehcp_annual_review_date": "2026-11-10"}
    )
    assert [t.spec_id for t in council.open_tasks()] == ["record_meeting"]
    assert "EHCP annual review (10 November 2026)" in council.view("record_meeting", DT)["instructions"]


def test_a_significant_change_alerts_the_iro_when_the_review_record_is_updated(council, engine):
    to_qa(council, {"targets": [TARGETS[1]]})
    council.do("qa_pep", EA, GREEN)
    council.do("send_pep_to_sw", EA, SEND)
    council.do("file_on_liquid_logic", SW, FILED)
    text = council.view("update_review_record", SW)["instructions"]
    assert "Before the statutory review meeting" in text and "alert the IRO" in text
    assert set(council.refused("update_review_record", SW, {**REVIEW, "significant_changes": True})) == {
        "significant_changes_summary"
    }
    council.do(
        "update_review_record",
        SW,
        {
            **REVIEW,
            "significant_changes": True,
            "iro_changes_actioned": "Tutor arranged as the IRO asked",
            "significant_changes_summary": "Placement moves on 1 May",
        },
    )
    alerted = [n for n in council.notices("notice") if n[2].startswith("Significant change")]
    assert alerted == [(IRO, None, "Significant change for Alex Example")]


def test_without_a_known_cla_review_date_the_review_record_has_no_deadline(council, engine):
    instance_id = prepared(council, call={"cla_review_date": None})
    council.do("record_meeting", DT, {**RECORD, "targets": [TARGETS[1]]})
    council.do("qa_pep", EA, GREEN)
    council.do("send_pep_to_sw", EA, SEND)
    council.do("file_on_liquid_logic", SW, FILED)
    assert council.task("update_review_record").due_at is None
    council.do("update_review_record", SW, REVIEW)
    assert council.instance(instance_id).status == "completed"
    assert not [n for n in council.notices("notice") if n[2].startswith("Significant change")]


# ---- who may act, what is refused ---------------------------------------------------------------


def test_each_step_is_refused_to_the_wrong_role(council, engine):
    start(council)
    with pytest.raises(NotAllowed):
        council.do("call_meeting", DT, CALL)
    council.do("call_meeting", SW, CALL)
    with pytest.raises(NotAllowed):
        council.do("student_views_sheet", CARER, VIEWS)
    with pytest.raises(NotAllowed):
        council.do("prepopulate_pep", "dt@elm.test", PREPOPULATED)  # another school's DT
    council.do("student_views_sheet", YP, VIEWS)
    council.do("prepopulate_pep", DT, PREPOPULATED)
    held(engine)
    with pytest.raises(NotAllowed):
        council.do("record_meeting", SW, RECORD)
    council.do("record_meeting", DT, RECORD)
    with pytest.raises(NotAllowed):
        council.do("qa_pep", DT, GREEN)
    council.do("qa_pep", EA, GREEN)
    with pytest.raises(NotAllowed):
        council.do("approve_pp_plus", EA, {"pp_plus_decision": "Approve"})
    council.do("approve_pp_plus", VSH, {"pp_plus_decision": "Approve"})
    with pytest.raises(NotAllowed):
        council.do("send_pep_to_sw", SW, SEND)
    council.do("send_pep_to_sw", EA, SEND)
    with pytest.raises(NotAllowed):
        council.do("file_on_liquid_logic", "sw2@council.test", FILED)  # not this child's SW


def test_invalid_data_is_refused_field_by_field(council, engine):
    start(council)
    errors = council.refused(
        "call_meeting", SW, {**CALL, "meeting_date": "18/03/2026", "meeting_time": "2pm", "venue": ""}
    )
    assert errors == {
        "meeting_date": "Date of the PEP meeting must be a real date",
        "meeting_time": "Give the time as HH:MM, for example 14:30",
        "venue": "Enter venue",
    }
    council.do("call_meeting", SW, CALL)
    assert set(council.refused("student_views_sheet", YP, {"coming_to_meeting": "Maybe"})) == {
        "coming_to_meeting",
        "what_is_going_well",
        "what_i_find_hard",
        "help_i_need",
    }
    bad = {**PREPOPULATED, "attendance_percent": 120, "exclusions_this_year": -1, "attainment": []}
    assert council.refused("prepopulate_pep", DT, bad) == {
        "attendance_percent": "Attendance this year (%) must be 100 or less",
        "exclusions_this_year": "Days of suspension or exclusion this year must be 0 or more",
        "attainment": "Add at least 1 academic data (attainment and progress)",
    }
    council.do("student_views_sheet", YP, VIEWS)
    council.do("prepopulate_pep", DT, PREPOPULATED)
    held(engine)
    bad_target = {**TARGETS[0], "by_when": "soon", "pp_plus_amount": -5, "category": "Sport"}
    errors = council.refused("record_meeting", DT, {**RECORD, "targets": [bad_target]})
    assert set(errors) == {"targets.0.by_when", "targets.0.pp_plus_amount", "targets.0.category"}
    assert set(council.refused("record_meeting", DT, {**RECORD, "targets": []})) == {"targets"}
    council.do("record_meeting", DT, RECORD)
    assert set(council.refused("qa_pep", EA, {**GREEN, "rating": "Purple"})) == {"rating"}
    council.do("qa_pep", EA, GREEN)
    council.do("approve_pp_plus", VSH, {"pp_plus_decision": "Approve"})
    assert set(council.refused("send_pep_to_sw", EA, {"sent_to_social_worker": False})) == {
        "pep_document",
        "sent_to_social_worker",
    }
    council.do("send_pep_to_sw", EA, SEND)
    assert set(
        council.refused(
            "file_on_liquid_logic", SW, {**FILED, "filed_on_liquid_logic": False, "liquid_logic_reference": ""}
        )
    ) == {"filed_on_liquid_logic", "liquid_logic_reference"}
