"""Good practice guidance on completing a PEP (Welfare Call council): processes/ppg_review.bpmn.

A termly PEP: the social worker arranges it in term time (not in the holidays, not in the last two
school weeks), invites the receiving school at transition in terms 2 and 3, the designated teacher
prepares three SMART targets (two academic, one social-emotional) within 12 weeks, the meeting agrees
at most £500 of PPG, the DT and SW complete their sections within 7 days, three sign-offs follow and
the PPG is released on the Virtual School's sign-off.
"""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from engine.errors import FormInvalid, NotAllowed
from engine.history import events
from engine.models import Instance
from tests.conftest import shipped_bundle

from ..helpers import Council

SW, DT, EA, VSH = "sw@council.test", "dt@oak.test", "ea@council.test", "vsh@council.test"
Y6_DT = "dt@elm.test"

PREVIOUS_TARGETS = [
    {"category": "academic", "what": "Read a chapter book each week", "by_when": "2026-02-27"},
    {"category": "academic", "what": "Know the 6, 7 and 8 times tables", "by_when": "2026-02-27"},
    {"category": "social_emotional", "what": "Join a lunchtime club", "by_when": "2026-02-27"},
]

ARRANGE = {
    "meeting_date": "2026-03-10",
    "meeting_time": "14:00",
    "venue": "Oak Primary, library office",
    "confidential_room": True,
    "date_agreed_with_school": True,
    "dt_can_attend": True,
    "carer_invited": True,
    "outside_professionals": "Educational psychologist (attending)",
    "young_person_attending": True,
}


def targets(by_when=("2026-05-22", "2026-05-22", "2026-05-22"), amounts=(200, 200, 100)):
    """Three SMART targets: two academic, one social-emotional."""
    return [
        {
            "category": "academic",
            "what": "Read two chapter books a month",
            "strategies": "Daily reading with a TA",
            "pp_plus_use": "TA reading time",
            "evidence_of_impact": "Reading age up six months",
            "who": "Class teacher",
            "by_when": by_when[0],
            "pp_plus_amount": amounts[0],
            "teachers_consulted": "Class teacher, SENCo",
        },
        {
            "category": "academic",
            "what": "Know all times tables to 12",
            "strategies": "Maths tutoring twice weekly",
            "pp_plus_use": "Tutor council",
            "evidence_of_impact": "Times tables check 25/25",
            "who": "Maths lead",
            "by_when": by_when[1],
            "pp_plus_amount": amounts[1],
            "teachers_consulted": "Maths lead",
        },
        {
            "category": "social_emotional",
            "what": "Take part in a lunchtime club each week",
            "strategies": "Mentor introduces the club",
            "pp_plus_use": "Club fees",
            "evidence_of_impact": "Attends weekly; says they enjoy it",
            "who": "Learning mentor",
            "by_when": by_when[2],
            "pp_plus_amount": amounts[2],
            "child_views": "Alex wants to make friends and likes Lego",
        },
    ]


PREPARE = {
    "attainment_and_progress": "Working towards in reading, expected in maths.",
    "homework": "Reading log and weekly maths homework",
    "career_aspirations": "Wants to be a vet",
    "transition_issues": "none",
    "targets": targets(),
    "young_person_attending": True,
    "entered_by": "designated teacher",
    "targets_set_or_checked_by_dt": True,
}

REVIEW = [
    {"target": t["what"], "category": t["category"], "outcome": outcome, "impact_of_ppg": "Tutoring helped"}
    for t, outcome in zip(PREVIOUS_TARGETS, ("met", "partly met", "not met"), strict=True)
]

RECORD = {
    "attendees": [
        {"name": "Dana Teacher", "role": "Designated Teacher"},
        {"name": "Sam Social-Worker", "role": "Social Worker"},
    ],
    "previous_target_review": REVIEW,
    "young_person_agreement": "agreed the targets",
    "targets": targets(),
    "ppg_total": 500,
    "ppg_agreed_at_meeting": True,
    "exceptional_funding_requested": False,
}

DT_SECTION = {
    "strategies_communicated_to": "Class teacher, TA, maths lead",
    "monitoring_plan": "Half-termly check by the DT",
    "agreed_actions_school": "Book tutor from Monday",
}
SW_SECTION = {
    "care_plan_update": "Placement stable",
    "carer_views": "Carer supports reading at home",
    "agreed_actions_social_care": "Carer to sign the reading log",
}
DT_SIGN = {"dt_agrees_targets": True, "dt_signed_by": "Dana Teacher", "targets_at_risk": False}
SW_SIGN = {
    "sw_agrees_targets": True,
    "pep_complete": True,
    "next_meeting_date": "2026-05-12",
    "next_meeting_time": "10:00",
    "next_meeting_venue": "Oak Primary, library office",
    "next_meeting_agreed_with": "DT and carer",
}
VS_AGREE = {"vs_agrees_targets": True, "vs_agrees_ppg": True}


# ---- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def ppg(demo_council, engine):
    return Council(engine, demo_council).deployed(shipped_bundle("ppg_review.bpmn", forms=("ppg_",)))


def start(council, child="Y5", next_meeting_date=None, previous=PREVIOUS_TARGETS) -> Instance:
    payload = {"variant": "ppg_review_due", "next_meeting_date": next_meeting_date, "previous_targets": previous}
    [instance] = council.send("ppg_review_due", payload, child, actor="system")
    return instance


def to_meeting(council, child="Y5", dt=DT, arrange=ARRANGE, prepare=PREPARE, **start_args):
    """Start the review, arrange the meeting and prepare the targets; the clock moves to the meeting day."""
    instance = start(council, child, **start_args)
    council.do("arrange_meeting", SW, arrange, child)
    council.do("prepare_targets", dt, prepare, child)
    council.engine.clock.set(f"{arrange['meeting_date']}T15:00:00+00:00")
    return instance


def to_sign_off(council, record=RECORD):
    instance = to_meeting(council)
    council.do("hold_meeting", DT, record)
    council.do("dt_section", DT, DT_SECTION)
    council.do("sw_section", SW, SW_SECTION)
    return instance


# ---- the happy path -----------------------------------------------------------------------------


def test_a_termly_pep_runs_from_arranging_to_ppg_release_and_the_next_pep(ppg, engine):
    instance = start(ppg)
    arrange = ppg.task("arrange_meeting")
    assert (arrange.lane, arrange.role_key) == ("Social Worker", "social_worker")
    ppg.do("arrange_meeting", SW, ARRANGE)
    prepare = ppg.task("prepare_targets")
    assert prepare.role_key == "designated_teacher"
    assert prepare.due_at.isoformat() == "2026-03-09T23:59:59+00:00"  # the working day before the meeting
    ppg.do("prepare_targets", DT, PREPARE)
    engine.clock.set("2026-03-10T15:00:00+00:00")
    assert ppg.view("hold_meeting", DT)["data"]["previous_target_review"][0] == {
        "target": "Read a chapter book each week",
        "category": "academic",
    }
    ppg.do("hold_meeting", DT, RECORD)
    assert ppg.task_ids() == ["dt_section", "sw_section"]
    assert ppg.task("dt_section").due_at.isoformat() == "2026-03-17T23:59:59+00:00"  # 7 calendar days
    ppg.do("dt_section", DT, DT_SECTION)
    ppg.do("sw_section", SW, SW_SECTION)
    ppg.do("dt_sign_off", DT, DT_SIGN)
    ppg.do("sw_sign_off", SW, SW_SIGN)
    vs = ppg.task("vs_sign_off")
    assert (vs.role_key, vs.pooled) == ("vs_education_adviser", True)
    done = ppg.do("vs_sign_off", EA, VS_AGREE)
    assert done.status == "completed" and ppg.open_tasks() == []
    data = ppg.result(instance.id)
    assert (data["ppg_released"], data["total_released"]) == (500, 500)
    released = [n for n in ppg.notes("notice") if "released" in n[1]]
    assert sorted(who for who, _ in released) == [DT, "pool:vs_administrator", SW]
    assert released[0][1] == "PEP for Alex Example signed off: £500 released to Oak Primary"
    with ppg.sessions() as s:
        last = events(s, "Y5", instance.id)
    step_paths = [e.data.get("path", []) for e in last]
    assert any("release_ppg" in p and "next_pep_due" in p for p in step_paths)
    assert last[-1].kind == "instance_completed"


def test_the_cycle_end_throws_pep_cycle_due_with_the_next_date_and_the_targets(demo_council, engine):
    bundle = shipped_bundle("ppg_review.bpmn", forms=("ppg_",))
    bundle.add("processes/next_cycle_catcher.bpmn", CATCHER)
    council = Council(engine, demo_council).deployed(bundle)
    first = to_sign_off(council)
    council.do("dt_sign_off", DT, DT_SIGN)
    council.do("sw_sign_off", SW, SW_SIGN)
    council.do("vs_sign_off", EA, VS_AGREE)
    with council.sessions() as s:
        caught = s.scalars(select(Instance).where(Instance.previous_instance_id == first.id)).one()
        assert s.get(Instance, first.id).status == "completed"
    assert council.view("caught", SW)["data"]["cycle"] == {
        "variant": "ppg_review_due",
        "next_meeting_date": "2026-05-12",
        "previous_targets": targets(),
    }
    assert caught.status == "running"


CATCHER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="catcher_definitions" targetNamespace="http://example.org/test">
  <bpmn:message id="pep_cycle_due" name="pep_cycle_due" />
  <bpmn:process id="next_cycle_catcher" isExecutable="true">
    <bpmn:laneSet id="catcher_lanes">
      <bpmn:lane id="catcher_sw" name="Social Worker">
        <bpmn:flowNodeRef>catch_start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>caught</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>catch_end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="catch_start">
      <bpmn:outgoing>c1</bpmn:outgoing>
      <bpmn:messageEventDefinition id="catch_message" messageRef="pep_cycle_due">
        <bpmn:extensionElements><spiffworkflow:messageVariable>cycle</spiffworkflow:messageVariable></bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="c1" sourceRef="catch_start" targetRef="caught" />
    <bpmn:manualTask id="caught" name="Next cycle caught"><bpmn:incoming>c1</bpmn:incoming><bpmn:outgoing>c2</bpmn:outgoing></bpmn:manualTask>
    <bpmn:sequenceFlow id="c2" sourceRef="caught" targetRef="catch_end" />
    <bpmn:endEvent id="catch_end"><bpmn:incoming>c2</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


# ---- before the meeting: the date ---------------------------------------------------------------


def test_a_meeting_date_in_the_school_holidays_is_refused_and_the_sw_is_asked_again(ppg, engine):
    start(ppg)
    easter = ppg.refused("arrange_meeting", SW, {**ARRANGE, "meeting_date": "2026-04-07"})
    assert easter == {
        "meeting_date": "The meeting date must be a school day: 7 April 2026 is in the school holidays, "
        "at half-term, at a weekend, on a bank holiday or on a school closure day. "
        "Agree a date in term with the school"
    }
    half_term = ppg.refused("arrange_meeting", SW, {**ARRANGE, "meeting_date": "2026-05-27"})
    assert half_term["meeting_date"].startswith("The meeting date must be a school day: 27 May 2026")
    for day, problem in (
        ("2026-02-18", "Meeting date must be today or in the future"),
        ("2031-05-07", "The meeting date must be within the next year"),
    ):
        assert ppg.refused("arrange_meeting", SW, {**ARRANGE, "meeting_date": day}) == {"meeting_date": problem}
    ppg.do("arrange_meeting", SW, ARRANGE)
    assert ppg.task_ids() == ["prepare_targets"]


def test_a_meeting_in_the_last_two_school_weeks_of_term_is_refused(ppg, engine):
    start(ppg)
    # spring term ends Friday 27 March 2026: its last two school weeks are 16-27 March
    assert ppg.refused("arrange_meeting", SW, {**ARRANGE, "meeting_date": "2026-03-16"}) == {
        "meeting_date": "The meeting date must be on or before 13 March 2026: in the last two school weeks of the "
        "Spring term there is no time to amend targets and release the PPG before the holiday"
    }
    ppg.do("arrange_meeting", SW, {**ARRANGE, "meeting_date": "2026-03-13"})
    assert ppg.task_ids() == ["prepare_targets"]


def test_the_sw_must_confirm_a_confidential_room_the_school_and_the_dt_attending(ppg, engine):
    start(ppg)
    bad = {**ARRANGE, "confidential_room": False, "carer_invited": False, "meeting_time": "2pm"}
    del bad["dt_can_attend"]
    with pytest.raises(FormInvalid) as caught:
        ppg.do("arrange_meeting", SW, bad)
    assert caught.value.errors == {
        "confidential_room": "The meeting must be held in a confidential room",
        "dt_can_attend": "Tick the box to confirm: The designated teacher can attend",
        "carer_not_invited_reason": "Enter why the carer / parent is not invited",
        "meeting_time": "Use the 24-hour clock, e.g. 09:30",
    }


# ---- transition: the receiving school in terms 2 and 3 ------------------------------------------


def test_a_year_6_child_in_term_2_must_have_the_receiving_school_invited(ppg, engine):
    start(ppg, "Y6")
    ppg.do("arrange_meeting", SW, {**ARRANGE, "venue": "Elm Academy"}, "Y6")
    invite = ppg.task("invite_receiving_school", "Y6")
    assert invite.role_key == "social_worker"
    assert ppg.view("invite_receiving_school", SW, "Y6")["instructions"].startswith(
        "Blair Sample is at a transition stage: Year 6 (primary to secondary school). This is a term 2 PEP"
    )
    with pytest.raises(FormInvalid) as caught:
        ppg.do(
            "invite_receiving_school",
            SW,
            {"receiving_school_name": "Riverside High", "receiving_school_invited": False},
            "Y6",
        )
    assert set(caught.value.errors) == {"receiving_school_contact", "receiving_school_invited"}
    ppg.do(
        "invite_receiving_school",
        SW,
        {
            "receiving_school_name": "Riverside High",
            "receiving_school_contact": "Head of Year 7",
            "receiving_school_invited": True,
        },
        "Y6",
    )
    assert ppg.task_ids("Y6") == ["prepare_targets"]


def test_a_year_6_child_in_term_3_must_have_the_receiving_school_invited(ppg, engine):
    engine.clock.set("2026-04-20T09:00:00+00:00")
    start(ppg, "Y6")
    ppg.do("arrange_meeting", SW, {**ARRANGE, "meeting_date": "2026-05-12"}, "Y6")
    assert ppg.task_ids("Y6") == ["invite_receiving_school"]


def test_a_year_6_child_in_term_1_needs_no_receiving_school(ppg, engine):
    engine.clock.set("2025-09-15T09:00:00+00:00")
    start(ppg, "Y6")
    ppg.do("arrange_meeting", SW, {**ARRANGE, "meeting_date": "2025-10-08"}, "Y6")
    assert ppg.task_ids("Y6") == ["prepare_targets"]


def test_year_11_and_nursery_children_are_transitions_but_year_5_is_not(ppg, engine):
    start(ppg, "Y11")
    ppg.do("arrange_meeting", "sw2@council.test", ARRANGE, "Y11")
    assert ppg.task_ids("Y11") == ["invite_receiving_school"]
    engine.clock.set("2027-01-11T09:00:00+00:00")  # EY3 is 3 on 31 August 2026: nursery year 2026-27
    start(ppg, "EY3")
    ppg.do("arrange_meeting", SW, {**ARRANGE, "meeting_date": "2027-02-02"}, "EY3")
    assert "pre-school (nursery to reception)" in ppg.view("invite_receiving_school", SW, "EY3")["instructions"]
    engine.clock.set("2026-03-02T09:00:00+00:00")
    start(ppg, "Y5")
    ppg.do("arrange_meeting", SW, ARRANGE)
    assert ppg.task_ids() == ["prepare_targets"]


# ---- before the meeting: the designated teacher's targets ---------------------------------------


def test_targets_one_and_two_must_be_academic_and_three_social_emotional(ppg, engine):
    start(ppg)
    ppg.do("arrange_meeting", SW, ARRANGE)
    swapped = targets()
    swapped[0], swapped[2] = swapped[2], swapped[0]
    del swapped[1]["teachers_consulted"]
    with pytest.raises(FormInvalid) as caught:
        ppg.do("prepare_targets", DT, {**PREPARE, "targets": swapped})
    assert caught.value.errors["targets.0.category"] == "Target 1: kind of target must be an academic target"
    assert caught.value.errors["targets.2.category"] == "Target 3: kind of target must be the social-emotional target"
    assert caught.value.errors["targets.1.teachers_consulted"] == (
        "Target 2: enter teachers consulted when drafting this academic target"
    )
    assert caught.value.errors["targets.2.child_views"] == "Target 3: enter the young person's views on this target"
    with pytest.raises(FormInvalid) as caught:
        ppg.do("prepare_targets", DT, {**PREPARE, "targets": targets()[:2]})
    assert caught.value.errors == {"targets": "Add at least 3 targets"}


def test_the_attainment_homework_careers_sections_and_each_targets_strategies_are_required(ppg, engine):
    start(ppg)
    ppg.do("arrange_meeting", SW, ARRANGE)
    thin = targets()
    for key in ("strategies", "pp_plus_use", "evidence_of_impact"):
        del thin[1][key]
    with pytest.raises(FormInvalid) as caught:
        ppg.do(
            "prepare_targets",
            DT,
            {**PREPARE, "targets": thin, "homework": "", "attainment_and_progress": "", "career_aspirations": ""},
        )
    assert set(caught.value.errors) == {
        "homework",
        "attainment_and_progress",
        "career_aspirations",
        "targets.1.strategies",
        "targets.1.pp_plus_use",
        "targets.1.evidence_of_impact",
    }


def test_only_a_teacher_sets_targets_and_pastoral_staff_must_check_them_with_the_dt(ppg, engine):
    start(ppg)
    ppg.do("arrange_meeting", SW, ARRANGE)
    with pytest.raises(NotAllowed):
        ppg.do("prepare_targets", SW, PREPARE)
    pastoral = {**PREPARE, "entered_by": "pastoral support staff", "targets_set_or_checked_by_dt": False}
    with pytest.raises(FormInvalid) as caught:
        ppg.do("prepare_targets", DT, pastoral)
    assert caught.value.errors == {
        "checked_with_dt_on": "Enter date the targets were checked with the designated teacher",
        "targets_set_or_checked_by_dt": (
            "Only a teacher can set targets: the designated teacher must set or check them"
        ),
    }
    ppg.do(
        "prepare_targets", DT, {**pastoral, "targets_set_or_checked_by_dt": True, "checked_with_dt_on": "2026-03-05"}
    )
    assert ppg.task_ids() == ["hold_meeting"]


def test_the_dt_meets_a_young_person_who_cannot_attend_before_the_pep(ppg, engine):
    start(ppg)
    ppg.do("arrange_meeting", SW, {**ARRANGE, "young_person_attending": False})
    prefilled = ppg.view("prepare_targets", DT)
    assert prefilled["data"]["young_person_attending"] is False
    assert "meet them beforehand so they can express their wishes and feelings" in prefilled["instructions"]
    with pytest.raises(FormInvalid) as caught:
        ppg.do("prepare_targets", DT, {**PREPARE, "young_person_attending": False})
    assert set(caught.value.errors) == {"yp_met_on", "yp_wishes_and_feelings"}
    ppg.do(
        "prepare_targets",
        DT,
        {
            **PREPARE,
            "young_person_attending": False,
            "yp_met_on": "2026-03-06",
            "yp_wishes_and_feelings": "Likes art; worried about maths",
        },
    )
    assert ppg.task_ids() == ["hold_meeting"]


def test_targets_beyond_twelve_weeks_are_sent_back_to_the_dt(ppg, engine):
    start(ppg)
    ppg.do("arrange_meeting", SW, ARRANGE)
    assert "achievable within 12 weeks (by 2 June 2026)" in ppg.view("prepare_targets", DT)["instructions"]
    assert ppg.refused(
        "prepare_targets", DT, {**PREPARE, "targets": targets(("2026-05-22", "2026-06-03", "2026-03-10"))}
    ) == {
        "targets.1.by_when": "Target 2 must be achievable within 12 weeks of the meeting on 10 March 2026: "
        "enter a date on or before 2 June 2026",
        "targets.2.by_when": "Target 3 must be due after the meeting on 10 March 2026",
    }
    ppg.do("prepare_targets", DT, {**PREPARE, "targets": targets(("2026-05-22", "2026-06-02", "2026-04-30"))})
    assert ppg.task_ids() == ["hold_meeting"]


def test_the_previous_targets_are_shown_to_the_dt_to_inform_the_new_ones(ppg, engine):
    start(ppg)
    ppg.do("arrange_meeting", SW, ARRANGE)
    instructions = ppg.view("prepare_targets", DT)["instructions"]
    assert "- Read a chapter book each week (by 27 February 2026)" in instructions
    assert "Only a teacher can set targets." in instructions


def test_targets_not_ready_the_day_before_the_meeting_warn_the_dt_and_sw(ppg, engine):
    start(ppg)
    ppg.do("arrange_meeting", SW, ARRANGE)
    assert ppg.sweep("2026-03-09T23:00:00+00:00").timers_fired == 0
    assert ppg.sweep("2026-03-10T00:00:00+00:00").timers_fired == 1
    subject = "PEP targets for Alex Example are not ready for the meeting on 2026-03-10"
    assert ppg.notes("overdue") == [(DT, subject), (SW, subject)]
    assert ppg.task_ids() == ["prepare_targets"]


# ---- at the meeting -----------------------------------------------------------------------------


def test_the_meeting_guidance_confidential_room_young_person_and_ppg_is_shown(ppg, engine):
    to_meeting(ppg)
    instructions = ppg.view("hold_meeting", DT)["instructions"]
    for guidance in (
        "Hold the meeting in a confidential room. Everyone must be clear in their role to raise achievement.",
        "Invite the young person in at the end of the meeting to agree or re-define the targets.",
        "showing the impact of how the pupil premium grant has been spent",
        "at most £500 this term (£500 three times a year)",
    ):
        assert guidance in instructions


def test_ppg_over_500_pounds_a_term_is_refused_by_the_form(ppg, engine):
    to_meeting(ppg)
    with pytest.raises(FormInvalid) as caught:
        ppg.do("hold_meeting", DT, {**RECORD, "ppg_total": 600, "targets": targets(amounts=(300, 200, 100))})
    assert caught.value.errors == {"ppg_total": "PPG agreed for this term (£) must be 500 or less"}


def test_the_ppg_must_be_agreed_at_the_meeting_and_linked_to_the_targets(ppg, engine):
    to_meeting(ppg)
    with pytest.raises(FormInvalid) as caught:
        ppg.do("hold_meeting", DT, {**RECORD, "ppg_agreed_at_meeting": False})
    assert list(caught.value.errors) == ["ppg_agreed_at_meeting"]
    assert ppg.refused("hold_meeting", DT, {**RECORD, "ppg_total": 450}) == {
        "ppg_total": "The PPG agreed must be linked to the targets: the amounts against the targets add up to "
        "£500.00, not £450.00"
    }


def test_every_previous_target_must_be_reviewed_at_the_meeting(ppg, engine):
    to_meeting(ppg)
    with pytest.raises(FormInvalid) as caught:
        ppg.do("hold_meeting", DT, {**RECORD, "previous_target_review": [{"target": "Read"}]})
    assert set(caught.value.errors) == {"previous_target_review.0.outcome", "previous_target_review.0.impact_of_ppg"}
    assert ppg.refused("hold_meeting", DT, {**RECORD, "previous_target_review": REVIEW[:2]}) == {
        "previous_target_review": "Review each of the 3 previous targets: whether it was met, partly met or not met, "
        "and the impact of the PPG spent on it"
    }
    ppg.do("hold_meeting", DT, RECORD)
    assert ppg.task_ids() == ["dt_section", "sw_section"]


def test_the_meeting_cannot_be_recorded_before_it_happens(ppg, engine):
    to_meeting(ppg)
    engine.clock.set("2026-03-09T15:00:00+00:00")
    assert ppg.refused("hold_meeting", DT, RECORD) == {
        "meeting_date": "The meeting is on 10 March 2026: record it on the day of the meeting or after. If the "
        "meeting has moved, report the new date first (the meeting is rescheduled)"
    }


def test_targets_redefined_at_the_meeting_beyond_twelve_weeks_are_sent_back(ppg, engine):
    to_meeting(ppg)
    errors = ppg.refused(
        "hold_meeting",
        DT,
        {
            **RECORD,
            "targets": targets(("2026-05-22", "2026-05-22", "2026-07-01")),
            "young_person_agreement": "re-defined the targets with us",
        },
    )
    assert errors == {
        "targets.2.by_when": "Target 3 must be achievable within 12 weeks of the meeting on "
        "10 March 2026: enter a date on or before 2 June 2026"
    }
    assert ppg.task_ids() == ["hold_meeting"]


def test_a_meeting_that_did_not_happen_on_its_date_is_moved_to_the_actual_date(ppg, engine):
    to_meeting(ppg)
    with ppg.sessions.begin() as s:
        engine.send_message(
            s,
            "meeting_rescheduled",
            "Y5",
            {"meeting_date": "2026-03-12", "meeting_time": "09:30", "venue": "Oak Primary", "reason": "DT off sick"},
            actor=SW,
        )
    moved = ppg.task("hold_meeting")
    assert moved.due_at.isoformat() == "2026-03-12T23:59:59+00:00"
    data = ppg.view("hold_meeting", DT)["data"]
    assert data["meeting_date_history"][0] | {"recorded_at": None} == {
        "from": "2026-03-10",
        "to": "2026-03-12",
        "reason": "DT off sick",
        "recorded_at": None,
    }
    assert (data["meeting_time"], data["sections_due"]) == ("09:30", "2026-03-19T23:59:59+00:00")
    with ppg.sessions() as s:
        received = [e for e in events(s, "Y5") if e.kind == "message_received"]
    assert (
        received[-1].data["message"] == "meeting_rescheduled" and received[-1].data["data"]["reason"] == "DT off sick"
    )
    engine.clock.set("2026-03-12T15:00:00+00:00")
    ppg.do("hold_meeting", DT, RECORD)
    assert ppg.task("dt_section").due_at.isoformat() == "2026-03-19T23:59:59+00:00"


def test_a_meeting_moved_before_the_targets_are_ready_moves_the_targets_deadline(ppg, engine):
    start(ppg)
    ppg.do("arrange_meeting", SW, ARRANGE)
    with ppg.sessions.begin() as s:
        engine.send_message(s, "meeting_rescheduled", "Y5", {"meeting_date": "2026-03-05", "reason": "earlier slot"})
    assert ppg.task("prepare_targets").due_at.isoformat() == "2026-03-04T23:59:59+00:00"


def test_a_meeting_moved_into_the_holidays_goes_back_to_the_sw(ppg, engine):
    to_meeting(ppg)
    with ppg.sessions.begin() as s:
        engine.send_message(s, "meeting_rescheduled", "Y5", {"meeting_date": "2026-03-24", "reason": "school trip"})
    assert ppg.task_ids() == ["arrange_meeting"]
    assert "2026-03-24 is in the last two school weeks" in ppg.view("arrange_meeting", SW)["instructions"]
    ppg.do("arrange_meeting", SW, {**ARRANGE, "meeting_date": "2026-03-12"})
    assert ppg.task_ids() == ["hold_meeting"]  # the targets are already prepared


def test_an_unrecorded_meeting_prompts_the_sw_and_dt_to_give_the_actual_date(ppg, engine):
    to_meeting(ppg)
    assert ppg.sweep("2026-03-11T09:00:01+00:00").timers_fired == 1
    assert ppg.notes("reminder") == [
        (SW, "Did the PEP for Alex Example take place on 2026-03-10?"),
        (DT, "Did the PEP for Alex Example take place on 2026-03-10?"),
    ]
    assert ppg.task_ids() == ["hold_meeting"]


# ---- exceptional funding ------------------------------------------------------------------------


def test_additional_funding_in_exceptional_circumstances_goes_to_the_vs_head(ppg, engine):
    instance = to_meeting(ppg)
    exceptional = {**RECORD, "exceptional_funding_requested": True}
    with pytest.raises(FormInvalid) as caught:
        ppg.do("hold_meeting", DT, exceptional)
    assert set(caught.value.errors) == {"exceptional_funding_amount", "exceptional_funding_reason"}
    ppg.do(
        "hold_meeting",
        DT,
        {
            **exceptional,
            "exceptional_funding_amount": 800,
            "exceptional_funding_reason": "Specialist dyslexia assessment",
        },
    )
    assert ppg.task_ids() == ["decide_exceptional_funding", "dt_section", "sw_section"]
    decision = ppg.task("decide_exceptional_funding")
    assert (decision.role_key, decision.pooled) == ("vs_head", True)
    with pytest.raises(NotAllowed):
        ppg.do("decide_exceptional_funding", EA, {"exceptional_decision": "approved"})
    with pytest.raises(FormInvalid):
        ppg.do(
            "decide_exceptional_funding",
            VSH,
            {"exceptional_decision": "approved", "exceptional_decision_reason": "Justified"},
        )
    ppg.do(
        "decide_exceptional_funding",
        VSH,
        {
            "exceptional_decision": "approved",
            "exceptional_amount_approved": 600,
            "exceptional_decision_reason": "Assessment is essential",
        },
    )
    assert (DT, "Additional funding for Alex Example: approved") in ppg.notes("notice")
    ppg.do("dt_section", DT, DT_SECTION)
    ppg.do("sw_section", SW, SW_SECTION)
    ppg.do("dt_sign_off", DT, DT_SIGN)
    ppg.do("sw_sign_off", SW, SW_SIGN)
    assert "the additional £600.00 approved by the VS Head" in ppg.view("vs_sign_off", EA)["instructions"]
    ppg.do("vs_sign_off", EA, VS_AGREE)
    data = ppg.result(instance.id)
    assert (data["ppg_released"], data["exceptional_funding_released"], data["total_released"]) == (500, 600, 1100)


def test_refused_additional_funding_releases_only_the_termly_ppg(ppg, engine):
    instance = to_meeting(ppg)
    ppg.do(
        "hold_meeting",
        DT,
        {
            **RECORD,
            "exceptional_funding_requested": True,
            "exceptional_funding_amount": 300,
            "exceptional_funding_reason": "Laptop for home learning",
        },
    )
    ppg.do(
        "decide_exceptional_funding",
        VSH,
        {"exceptional_decision": "refused", "exceptional_decision_reason": "Covered by the school"},
    )
    for spec_id, actor, data in (
        ("dt_section", DT, DT_SECTION),
        ("sw_section", SW, SW_SECTION),
        ("dt_sign_off", DT, DT_SIGN),
        ("sw_sign_off", SW, SW_SIGN),
        ("vs_sign_off", EA, VS_AGREE),
    ):
        ppg.do(spec_id, actor, data)
    assert ppg.result(instance.id)["total_released"] == 500


# ---- after the meeting: 7 days ------------------------------------------------------------------


def test_dt_and_sw_are_reminded_and_the_ea_alerted_when_sections_are_late(ppg, engine):
    instance = to_meeting(ppg)
    ppg.do("hold_meeting", DT, RECORD)
    ppg.sweep("2026-03-11T12:00:00+00:00")
    assert ppg.sweep("2026-03-15T09:00:00+00:00").timers_fired == 0
    assert ppg.sweep("2026-03-15T09:00:01+00:00").timers_fired == 2
    assert sorted(ppg.notes("reminder")) == [
        (DT, "Complete your PEP sections for Alex Example by 2026-03-17"),
        (SW, "Complete your PEP sections for Alex Example by 2026-03-17"),
    ]
    ppg.do("dt_section", DT, DT_SECTION)  # the DT is on time, the SW is not
    assert ppg.sweep("2026-03-18T00:00:00+00:00").timers_fired == 1
    subject = "The social worker's PEP sections for Alex Example are overdue"
    assert ppg.notes("escalation") == [("pool:vs_education_adviser", subject), (SW, subject)]
    assert ppg.task_ids() == ["sw_section"]  # the task stays with the social worker
    ppg.do("sw_section", SW, SW_SECTION)
    with ppg.sessions() as s:
        done = [
            e for e in events(s, "Y5", instance.id) if e.kind == "task_completed" and e.data["task"] == "sw_section"
        ]
    assert done[0].data["late"] is True


def test_a_late_dt_is_escalated_to_the_ea(ppg, engine):
    to_meeting(ppg)
    ppg.do("hold_meeting", DT, RECORD)
    ppg.do("sw_section", SW, SW_SECTION)
    ppg.sweep("2026-03-18T00:00:00+00:00")
    subject = "The designated teacher's PEP sections for Alex Example are overdue"
    assert ppg.notes("escalation") == [("pool:vs_education_adviser", subject), (DT, subject)]
    assert sorted(ppg.notes("reminder")) == [(DT, "Complete your PEP sections for Alex Example by 2026-03-17")]


def test_the_dt_and_sw_sections_are_red_blue_and_purple(ppg, engine):
    to_meeting(ppg)
    ppg.do("hold_meeting", DT, RECORD)
    assert ppg.task("dt_section").name == "Complete the designated teacher's sections (red and purple)"
    assert ppg.task("sw_section").name == "Complete the social worker's sections (blue and purple)"
    assert "day-to-day implementation of the targets" in ppg.view("dt_section", DT)["instructions"]
    with pytest.raises(NotAllowed):
        ppg.do("sw_section", DT, SW_SECTION)
    with pytest.raises(FormInvalid) as caught:
        ppg.do("dt_section", DT, {"monitoring_plan": "Termly"})
    assert set(caught.value.errors) == {"strategies_communicated_to", "agreed_actions_school"}


# ---- sign-off and release -----------------------------------------------------------------------


def test_three_sign_offs_in_order_dt_then_sw_then_vs(ppg, engine):
    to_sign_off(ppg)
    assert ppg.task_ids() == ["dt_sign_off"]
    with pytest.raises(NotAllowed):
        ppg.do("dt_sign_off", SW, DT_SIGN)
    with pytest.raises(FormInvalid):
        ppg.do("dt_sign_off", DT, {**DT_SIGN, "dt_agrees_targets": False})
    ppg.do("dt_sign_off", DT, DT_SIGN)
    assert ppg.task_ids() == ["sw_sign_off"]
    with pytest.raises(NotAllowed):
        ppg.do("sw_sign_off", DT, SW_SIGN)
    with pytest.raises(FormInvalid) as caught:
        ppg.do("sw_sign_off", SW, {k: v for k, v in SW_SIGN.items() if k != "next_meeting_date"})
    assert caught.value.errors == {"next_meeting_date": "Enter next PEP meeting date"}
    with pytest.raises(FormInvalid) as caught:
        ppg.do("sw_sign_off", SW, {**SW_SIGN, "pep_complete": False})
    assert caught.value.errors == {"pep_complete": "The social worker must make sure the PEP is complete"}
    ppg.do("sw_sign_off", SW, SW_SIGN)
    assert ppg.task_ids() == ["vs_sign_off"]
    with pytest.raises(NotAllowed):
        ppg.do("vs_sign_off", DT, VS_AGREE)
    with pytest.raises(NotAllowed):
        ppg.do("vs_sign_off", VSH, VS_AGREE)
    ppg.do("vs_sign_off", "ea2@council.test", VS_AGREE)
    with ppg.sessions() as s:
        order = [e.data["task"] for e in events(s, "Y5") if e.kind == "task_completed"][-3:]
    assert order == ["dt_sign_off", "sw_sign_off", "vs_sign_off"]


def test_the_next_meeting_must_be_next_term_in_term_time(ppg, engine):
    to_sign_off(ppg)
    ppg.do("dt_sign_off", DT, DT_SIGN)
    next_term = (
        "The next PEP meeting must be next term, the term starting 13 April 2026: PEPs are reviewed once each term"
    )
    for date, problem in (
        ("2026-03-12", next_term),
        (
            "2026-05-27",
            "The next PEP meeting must be on a school day: 27 May 2026 is in the school holidays, at half-term",
        ),
        (
            "2026-07-13",
            "The next PEP meeting must be on or before 8 July 2026: in the last two school weeks of the Summer term",
        ),
        ("2026-09-15", next_term),
        ("2031-09-15", next_term),
    ):
        errors = ppg.refused("sw_sign_off", SW, {**SW_SIGN, "next_meeting_date": date})
        assert errors["next_meeting_date"].startswith(problem), date
    ppg.do("sw_sign_off", SW, {**SW_SIGN, "next_meeting_date": "2026-07-08"})
    assert ppg.task_ids() == ["vs_sign_off"]


def test_when_the_vs_disagrees_the_dt_amends_within_7_days_and_all_sign_again_before_release(ppg, engine):
    instance = to_sign_off(ppg)
    ppg.do("dt_sign_off", DT, DT_SIGN)
    ppg.do("sw_sign_off", SW, SW_SIGN)
    engine.clock.set("2026-03-16T10:00:00+00:00")
    with pytest.raises(FormInvalid) as caught:
        ppg.do("vs_sign_off", EA, {"vs_agrees_targets": False, "vs_agrees_ppg": True})
    assert caught.value.errors == {"vs_feedback": "Enter what must be amended"}
    ppg.do(
        "vs_sign_off",
        EA,
        {"vs_agrees_targets": False, "vs_agrees_ppg": True, "vs_feedback": "Target 2 is not measurable"},
    )
    amend = ppg.task("amend_targets")
    assert (amend.role_key, amend.due_at.isoformat()) == ("designated_teacher", "2026-03-23T23:59:59+00:00")
    assert (
        "does not yet agree with Alex Example's targets: Target 2 is not measurable"
        in ppg.view("amend_targets", DT)["instructions"]
    )
    assert ppg.result(instance.id) == {}  # nothing released yet
    assert ppg.sweep("2026-03-24T00:00:00+00:00").timers_fired == 1
    subject = "Amended PEP targets for Alex Example are overdue"
    assert ppg.notes("escalation") == [("pool:vs_education_adviser", subject), (DT, subject), (SW, subject)]
    new_targets = targets(("2026-05-22", "2026-06-20", "2026-05-22"))
    assert ppg.refused(
        "amend_targets", DT, {"targets": new_targets, "ppg_total": 500, "amendment_summary": "Target 2 now measurable"}
    ) == {
        "targets.1.by_when": "Target 2 must be achievable within 12 weeks of the meeting on 10 March 2026: "
        "enter a date on or before 2 June 2026"
    }
    ppg.do(
        "amend_targets", DT, {"targets": targets(), "ppg_total": 500, "amendment_summary": "Target 2 now measurable"}
    )
    ppg.do("dt_sign_off", DT, DT_SIGN)
    ppg.do("sw_sign_off", SW, SW_SIGN)
    ppg.do("vs_sign_off", EA, VS_AGREE)
    assert ppg.result(instance.id)["ppg_released"] == 500


def test_a_second_disagreement_gives_a_new_7_day_deadline(ppg, engine):
    to_sign_off(ppg)
    ppg.do("dt_sign_off", DT, DT_SIGN)
    ppg.do("sw_sign_off", SW, SW_SIGN)
    disagree = {"vs_agrees_targets": True, "vs_agrees_ppg": False, "vs_feedback": "Link PPG to target 3"}
    ppg.do("vs_sign_off", EA, disagree)
    ppg.do("amend_targets", DT, {"targets": targets(), "ppg_total": 500, "amendment_summary": "None"})
    ppg.do("dt_sign_off", DT, DT_SIGN)
    ppg.do("sw_sign_off", SW, SW_SIGN)
    engine.clock.set("2026-03-30T10:00:00+00:00")
    ppg.do("vs_sign_off", EA, disagree)
    assert ppg.task("amend_targets").due_at.isoformat() == "2026-04-06T22:59:59+00:00"  # BST
    assert ppg.sweep("2026-03-31T10:00:00+00:00").timers_fired == 0


def test_a_concern_that_targets_will_not_be_met_is_shared_with_the_vs(ppg, engine):
    to_sign_off(ppg)
    with pytest.raises(FormInvalid):
        ppg.do("dt_sign_off", DT, {**DT_SIGN, "targets_at_risk": True})
    ppg.do(
        "dt_sign_off",
        DT,
        {**DT_SIGN, "targets_at_risk": True, "concern_details": "Frequent absence since the placement move"},
    )
    subject = "Concern: Alex Example's PEP targets may not be met"
    assert ppg.notes("concern") == [("pool:vs_education_adviser", subject), (SW, subject)]
    assert ppg.task_ids() == ["sw_sign_off"]


# ---- the next PEP -------------------------------------------------------------------------------


def test_the_dt_and_sw_are_emailed_three_school_weeks_before_the_next_pep(ppg, engine):
    start(ppg, next_meeting_date="2026-05-12", previous=targets())
    assert ppg.open_tasks() == []
    # 15 school days before Tuesday 12 May 2026, skipping the 4 May bank holiday: Monday 20 April, 09:00 BST
    assert ppg.sweep("2026-04-20T08:00:00+00:00").timers_fired == 0
    assert ppg.sweep("2026-04-20T08:00:01+00:00").timers_fired == 1
    subject = "The next PEP for Alex Example is due on 2026-05-12"
    assert ppg.notes("reminder") == [(DT, subject), (SW, subject)]
    arrange = ppg.view("arrange_meeting", SW)
    assert arrange["data"]["meeting_date"] == "2026-05-12"
    assert "The date agreed at the last PEP was 12 May 2026." in arrange["instructions"]


def test_a_pep_with_no_agreed_date_starts_at_once(ppg, engine):
    start(ppg, previous=[])
    assert ppg.task_ids() == ["arrange_meeting"]
    assert "once each academic term, three times a year" in ppg.view("arrange_meeting", SW)["instructions"]


def test_a_first_pep_has_no_previous_targets_to_review(ppg, engine):
    to_meeting(ppg, previous=[])
    ppg.do("hold_meeting", DT, {**RECORD, "previous_target_review": []})
    assert ppg.task_ids() == ["dt_section", "sw_section"]


# ---- who may act --------------------------------------------------------------------------------


def test_wrong_roles_and_other_childrens_staff_are_refused(ppg, engine):
    start(ppg)
    with pytest.raises(NotAllowed, match="does not hold the role Social Worker"):
        ppg.do("arrange_meeting", DT, ARRANGE)
    with pytest.raises(NotAllowed):
        ppg.do("arrange_meeting", "sw2@council.test", ARRANGE)
    ppg.do("arrange_meeting", SW, ARRANGE)
    with pytest.raises(NotAllowed):
        ppg.do("prepare_targets", Y6_DT, PREPARE)
    with pytest.raises(NotAllowed):
        ppg.do("prepare_targets", EA, PREPARE)
    ppg.do("prepare_targets", DT, PREPARE)
    engine.clock.set("2026-03-10T15:00:00+00:00")
    with pytest.raises(NotAllowed):
        ppg.do("hold_meeting", SW, copy.deepcopy(RECORD))


# ---- a child with no school place -------------------------------------------------------------


def test_a_child_with_no_school_place_has_the_designated_teachers_steps_done_by_the_vs_education_advisers(ppg, engine):
    """The Designated Teacher's lane falls back to the VS Education Advisers' pool (config/roles.yaml):
    nothing waits for a teacher the child does not have, and the PEP runs to its end."""
    child = "NOSCHOOL"
    start(ppg, child)
    ppg.do("arrange_meeting", SW, ARRANGE, child)
    prepare = ppg.task("prepare_targets", child)
    assert (prepare.lane, prepare.role_key, prepare.pooled) == ("Designated Teacher", "vs_education_adviser", True)
    ppg.do("prepare_targets", EA, PREPARE, child)
    engine.clock.set("2026-03-10T15:00:00+00:00")
    ppg.do("hold_meeting", EA, RECORD, child)
    ppg.do("dt_section", EA, DT_SECTION, child)
    ppg.do("sw_section", SW, SW_SECTION, child)
    ppg.do("dt_sign_off", EA, DT_SIGN, child)
    ppg.do("sw_sign_off", SW, SW_SIGN, child)
    done = ppg.do("vs_sign_off", EA, VS_AGREE, child)
    assert done.status == "completed" and ppg.open_tasks(child) == []
    assert not [n for n in ppg.notes("task_needs_person", child)]
