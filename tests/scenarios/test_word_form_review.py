"""Seed 004 steps 3 to 7: the termly Word-form PEP with the business support officer (word_form_review.bpmn).

The social worker generates a new PEP form each term; business support e-mails a Word version three
school weeks before the meeting; the setting fills it in before the meeting starts; at the meeting the
social worker updates it and sets the year's PEP dates; business support types it up, the social worker
finalises it, business support sends it to all attendees; the next PEP is then due. Footnotes: 16+ the
Leaving Care Worker, 18+ the Personal Adviser; young children not yet in an early years setting go via
the Health Visitor and foster carers.
"""

from __future__ import annotations

import pytest

from engine.errors import FormInvalid, NotAllowed

from ..conftest import shipped_bundle
from ..helpers import Council

SW, SW2, BSO, PA = "sw@council.test", "sw2@council.test", "bso@council.test", "pa@council.test"
DT, OTHER_DT, COLLEGE_DT = "dt@oak.test", "dt@elm.test", "dt@college.test"
HV, CARER, IRO, YP = "hv@health.test", "carer@home.test", "iro@council.test", "yp@home.test"

# A test-only process that catches what the cycle end throws, so the payload can be checked.
NEXT_CYCLE_CATCHER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="catcher_definitions" targetNamespace="http://example.org/pep-test">
  <bpmn:message id="pep_cycle_due" name="pep_cycle_due" />
  <bpmn:process id="test_next_cycle_catcher" name="Next PEP cycle (test catcher)" isExecutable="true">
    <bpmn:startEvent id="next_cycle_caught" name="Next PEP due">
      <bpmn:outgoing>c1</bpmn:outgoing>
      <bpmn:messageEventDefinition id="next_cycle_caught_message" messageRef="pep_cycle_due">
        <bpmn:extensionElements>
          <spiffworkflow:messageVariable>cycle</spiffworkflow:messageVariable>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="c1" sourceRef="next_cycle_caught" targetRef="next_cycle_noted" />
    <bpmn:endEvent id="next_cycle_noted" name="Noted"><bpmn:incoming>c1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""

PREPARE = {
    "education_setting": "In an education setting",
    "legal_status": "Full care order",
    "placement_details": "Long-term foster placement with the same carers since 2024",
    "social_care_input": "Settled placement; weekly contact with birth mother.",
    "meeting_date": "2026-03-25",
    "meeting_time": "10:00",
    "venue": "Oak Primary, meeting room 2",
}
SUMMER_MEETING = {**PREPARE, "meeting_date": "2026-06-03"}
SENT = {
    "sent_on": "2026-03-04",
    "secure_method": "Egress secure e-mail",
    "recipients": [
        {"name": "Dana Teacher", "role": "Designated Practitioner / Teacher / Person", "email": "dt@oak.test"}
    ],
}
WORD_COPY = {
    "attendance_percent": 95.5,
    "attainment_summary": "Working at the expected standard in reading.",
    "previous_targets_review": "Times tables target met.",
    "special_educational_needs": "No identified SEN",
    "child_views": "Likes maths and football.",
    "word_copy": "upload-101",
    "copies_for_meeting": True,
}
ATTENDEES = [
    {"name": "Sam Social-Worker", "role": "Social Worker"},
    {"name": "Dana Teacher", "role": "Designated Teacher / Practitioner", "email": "dt@oak.test"},
    {"name": "Cara Carer", "role": "Foster Carer"},
]
TARGET = {
    "what": "Read a chapter book each week",
    "strategies": "Daily reading with a mentor",
    "who": "Dana Teacher",
    "by_when": "2026-06-12",
    "pp_plus_amount": 300,
}
MEETING = {
    "meeting_held_on": "2026-03-25",
    "prepared_before_meeting": True,
    "attendees": ATTENDEES,
    "amendments": "Added the reading mentor.",
    "targets": [TARGET],
    "pep_dates": ["2026-06-17"],
    "paperwork_returned": True,
}
TYPED = {"typed_pep": "upload-202", "typed_on": "2026-03-27"}
FINAL = {"decision": "Finalise the PEP", "finalised_on": "2026-03-30"}
CORRECTIONS = {
    "decision": "Return to business support with corrections",
    "corrections": "The carer's name is misspelt in section 2.",
}
DISTRIBUTED = {
    "attendees": ATTENDEES,
    "secure_method": "Egress secure e-mail",
    "sent_on": "2026-03-31",
    "sent_to_all": True,
}
EY_PREPARE = {
    **PREPARE,
    "education_setting": "Not yet in an early years setting",
    "venue": "Carer's home",
    "child_development_information": "Walking well; says about 20 words.",
    "share_with_parents": True,
}
HV_INFO = {
    "development_summary": "Speech a little behind; good motor skills.",
    "health_needs": "None known.",
    "two_year_review_done": True,
    "two_year_review_date": "2026-02-10",
}
CARER_INFO = {
    "routines_and_interests": "Loves books at bedtime.",
    "development_at_home": "Feeds herself.",
    "carer_views": "Would benefit from a nursery place.",
}


@pytest.fixture
def council(demo_council, engine):
    """The demo council with word_form_review.bpmn, its forms and a catcher for pep_cycle_due deployed."""
    bundle = shipped_bundle("word_form_review.bpmn", forms=("wordform_",))
    bundle.add("processes/test_next_cycle_catcher.bpmn", NEXT_CYCLE_CATCHER)
    return Council(engine, demo_council).deployed(bundle)


# ---- the way to each step -----------------------------------------------------------------------


def start_cycle(council, child_id="Y5", next_meeting_date=None, previous_targets=()) -> int:
    """The router's message: the next termly Word-form PEP is due."""
    payload = {
        "variant": "word_form_review_due",
        "next_meeting_date": next_meeting_date,
        "previous_targets": list(previous_targets),
    }
    [instance] = council.send("word_form_review_due", payload, child_id)
    return instance.id


def to_word_copy(council, child_id="Y5", prepare=PREPARE, lead=SW):
    """Start a cycle, prepare the form, let the send date come and send it: the setting's turn."""
    instance_id = start_cycle(council, child_id)
    council.do_next(council.only_task(child=child_id).spec_id, lead, prepare, child_id)
    council.sweep("2026-03-04T00:00:01+00:00")
    council.do_next("send_word_form", BSO, SENT, child_id)
    return instance_id


def to_meeting(council, child_id="Y5", prepare=PREPARE, lead=SW, dt=DT):
    instance_id = to_word_copy(council, child_id, prepare, lead)
    council.do_next("prepare_word_copy", dt, WORD_COPY, child_id)
    return instance_id


def to_finalise(council, child_id="Y5", lead=SW, dt=DT, meeting=MEETING):
    instance_id = to_meeting(council, child_id, lead=lead, dt=dt)
    council.do_next(council.only_task(child=child_id).spec_id, lead, meeting, child_id)
    council.do_next("type_up_pep", BSO, TYPED, child_id)
    return instance_id


def caught_next_cycles(council, child_id="Y5") -> list[dict]:
    """Payloads of pep_cycle_due as received by the test catcher."""
    return [
        e.data["data"]
        for e in council.history(child_id)
        if e.kind == "instance_started" and e.data.get("process_id") == "test_next_cycle_catcher"
    ]


# ---- step 3: a new form each term, sent three school weeks before the meeting ------------------


def test_each_term_the_social_worker_generates_a_new_form_filled_in_up_to_the_meeting(council, engine):
    start_cycle(council)
    task = council.only_task()
    assert (task.spec_id, task.lane, task.role_key) == ("prepare_form_sw", "Social Worker", "social_worker")
    assert task.assignee_id == council.user_id(SW)
    shown = council.view(task, SW)
    assert {"meeting_date", "meeting_time", "venue", "social_care_input"} <= set(shown["form_schema"]["required"])
    assert "fill it in up to the 'PEP meeting' point" in shown["instructions"]
    assert "three school weeks before the meeting" in shown["instructions"]
    assert shown["data"]["education_setting"] == "In an education setting"
    assert task.due_at is None  # no date was set at the last PEP


def test_a_date_set_at_the_last_pep_opens_the_new_form_five_school_weeks_ahead(council, engine):
    instance_id = start_cycle(council, next_meeting_date="2026-06-03", previous_targets=[TARGET])
    assert council.open_tasks() == []
    # five school weeks before Wednesday 3 June 2026, across the May half-term and bank holiday
    assert council.instance(instance_id).next_timer_at.isoformat() == "2026-04-20T23:00:00+00:00"
    assert council.sweep("2026-04-20T22:00:00+00:00").timers_fired == 0
    council.sweep("2026-04-20T23:00:01+00:00")
    task = council.only_task()
    assert task.spec_id == "prepare_form_sw"
    assert task.due_at.isoformat() == "2026-05-05T23:00:00+00:00"  # before business support must send it
    shown = council.view(task, SW)
    assert shown["data"]["meeting_date"] == "2026-06-03"  # pre-filled
    assert "Targets from the last PEP: Read a chapter book each week." in shown["instructions"]


def test_business_support_sends_three_school_weeks_before_the_meeting_across_half_term(council, engine):
    instance_id = start_cycle(council)
    council.do_next("prepare_form_sw", SW, SUMMER_MEETING)
    assert council.open_tasks() == []
    # 15 school days before Wednesday 3 June, skipping half-term (25-29 May) and the 4 May bank holiday:
    # Wednesday 6 May, 00:00 London (BST)
    assert council.instance(instance_id).next_timer_at.isoformat() == "2026-05-05T23:00:00+00:00"
    assert council.sweep("2026-05-05T22:59:00+00:00").timers_fired == 0
    assert council.open_tasks() == []
    council.sweep("2026-05-05T23:00:01+00:00")
    task = council.only_task()
    assert (task.spec_id, task.role_key, task.pooled, task.assignee_id) == (
        "send_word_form",
        "business_support_officer",
        True,
        None,
    )
    assert task.due_at.isoformat() == "2026-05-06T22:59:59+00:00"
    shown = council.view(task, BSO)
    assert "securely to the designated practitioner/teacher/person at Oak Primary" in shown["instructions"]
    assert "due three school weeks before the meeting" in shown["instructions"]
    assert set(shown["form_schema"]["required"]) == {"sent_on", "secure_method", "recipients"}


def test_a_meeting_less_than_three_school_weeks_away_is_sent_at_once(council, engine):
    start_cycle(council)
    council.do_next("prepare_form_sw", SW, {**PREPARE, "meeting_date": "2026-03-12"})
    task = council.only_task()
    assert task.spec_id == "send_word_form"
    assert task.due_at.isoformat() == "2026-03-02T23:59:59+00:00"  # today
    assert "less than three school weeks away: send it as soon as possible" in council.view(task, BSO)["instructions"]


def test_an_unsent_form_reminds_business_support_then_escalates_to_the_social_worker(council, engine):
    start_cycle(council)
    council.do_next("prepare_form_sw", SW, PREPARE)
    council.sweep("2026-03-04T00:00:01+00:00")
    task = council.only_task()
    assert task.due_at.isoformat() == "2026-03-04T23:59:59+00:00"
    assert council.sweep("2026-03-05T00:00:00+00:00").timers_fired == 1
    assert council.notices("reminder", every_child=True) == [
        (None, "business_support_officer", "Reminder: send the Word PEP for Alex Example now")
    ]
    assert council.only_task().id == task.id  # business support keeps the task
    assert council.sweep("2026-03-05T23:00:00+00:00").timers_fired == 0
    assert council.sweep("2026-03-06T00:00:00+00:00").timers_fired == 1
    assert council.notices("escalation", every_child=True) == [
        (SW, None, "Word PEP for Alex Example not yet sent"),
        (None, "business_support_officer", "Word PEP for Alex Example not yet sent"),
    ]
    assert council.only_task().id == task.id
    council.complete(task, BSO, SENT)
    assert council.only_task().spec_id == "prepare_word_copy"


# ---- step 4: the setting fills in the form before the meeting starts --------------------------


def test_the_designated_practitioner_prepares_the_word_copy_due_at_the_start_of_the_meeting(council, engine):
    to_word_copy(council)
    task = council.only_task()
    assert (task.spec_id, task.lane, task.role_key) == (
        "prepare_word_copy",
        "Designated Practitioner",
        "designated_teacher",
    )
    assert task.due_at.isoformat() == "2026-03-25T10:00:00+00:00"  # 10:00 on the meeting day
    shown = council.view(task, DT)
    assert "must be filled in before the start of the PEP meeting on 25 March 2026 at 10:00" in shown["instructions"]
    assert "Bring copies of it to the meeting." in shown["instructions"]
    council.do_next("prepare_word_copy", DT, WORD_COPY)
    assert council.only_task().spec_id == "hold_meeting_sw"


def test_a_form_not_filled_in_when_the_meeting_starts_is_escalated_to_the_social_worker(council, engine):
    to_word_copy(council)
    assert council.sweep("2026-03-25T09:59:59+00:00").timers_fired == 0
    assert council.sweep("2026-03-25T10:00:01+00:00").timers_fired == 1
    assert council.notices("escalation", every_child=True) == [
        (SW, None, "PEP form for Alex Example not filled in before the meeting")
    ]
    meeting = council.only_task()  # the form is withdrawn from the setting; the meeting goes ahead
    assert meeting.spec_id == "hold_meeting_sw"
    assert [e.kind for e in council.history()][-4:] == ["timer_fired", "notified", "task_withdrawn", "task_ready"]


# ---- step 5: the meeting, and the dates of the year's PEPs -------------------------------------


def test_at_the_meeting_the_social_worker_updates_the_pep_and_brings_the_paperwork_back(council, engine):
    to_meeting(council)
    task = council.only_task()
    assert (task.spec_id, task.lane) == ("hold_meeting_sw", "Social Worker")
    assert task.due_at.isoformat() == "2026-03-25T23:59:59+00:00"
    shown = council.view(task, SW)
    assert "with the support of the designated practitioner/teacher/person" in shown["instructions"]
    assert "bring the PEP paperwork back with you" in shown["instructions"]
    assert "set the dates for the PEPs for the rest of this academic year" in shown["instructions"]
    with pytest.raises(FormInvalid) as caught:
        council.complete(task, SW, {**MEETING, "paperwork_returned": False, "pep_dates": []})
    assert caught.value.errors == {
        "paperwork_returned": "Bring the PEP paperwork back from the meeting for typing up",
        "pep_dates": "Add at least 1 PEP date",
    }


def test_the_social_worker_is_sent_back_until_the_dates_cover_the_rest_of_the_year(council, engine):
    to_meeting(council)
    # a spring-term meeting needs a summer-term date; 8 April is in the Easter holiday
    with pytest.raises(FormInvalid) as caught:
        council.do_next("hold_meeting_sw", SW, {**MEETING, "pep_dates": ["2026-04-08"]})
    assert caught.value.errors == {
        "pep_dates.0": "PEP date 1 must be a school day: 8 April 2026 is in the school holidays, at half-term, at a "
        "weekend, on a bank holiday or on a school closure day"
    }
    with pytest.raises(FormInvalid) as caught:
        council.do_next("hold_meeting_sw", SW, {**MEETING, "pep_dates": ["2026-03-25", "2026-09-16"]})
    assert caught.value.errors == {"pep_dates.0": "PEP date 1 must be after this meeting on 25 March 2026"}
    with pytest.raises(FormInvalid) as caught:
        council.do_next("hold_meeting_sw", SW, {**MEETING, "pep_dates": ["2026-09-16"]})
    assert caught.value.errors == {"pep_dates": "Enter a PEP date in the summer term 2025-26: a PEP is held each term"}
    with pytest.raises(FormInvalid) as caught, council.sessions.begin() as s:  # recorded the day before it is held
        engine.complete_task(s, council.only_task().id, SW, {**MEETING, "meeting_held_on": "2026-03-26"})
    assert caught.value.errors == {"meeting_held_on": "Date the meeting was held must be today or in the past"}
    assert council.only_task().spec_id == "hold_meeting_sw"
    council.do_next("hold_meeting_sw", SW, MEETING)
    assert council.only_task().spec_id == "type_up_pep"


def test_an_autumn_meeting_sets_the_spring_and_summer_pep_dates(council, engine):
    engine.clock.set("2026-09-14T09:00:00+00:00")
    start_cycle(council)
    council.do_next("prepare_form_sw", SW, {**PREPARE, "meeting_date": "2026-10-14"})
    council.sweep("2026-09-23T00:00:01+00:00")
    council.do_next("send_word_form", BSO, SENT)
    council.do_next("prepare_word_copy", DT, WORD_COPY)
    with pytest.raises(FormInvalid) as caught:
        council.do_next(
            "hold_meeting_sw", SW, {**MEETING, "meeting_held_on": "2026-10-14", "pep_dates": ["2027-02-03"]}
        )
    assert caught.value.errors == {"pep_dates": "Enter a PEP date in the summer term 2026-27: a PEP is held each term"}
    council.do_next(
        "hold_meeting_sw", SW, {**MEETING, "meeting_held_on": "2026-10-14", "pep_dates": ["2027-06-09", "2027-02-03"]}
    )
    assert council.only_task().spec_id == "type_up_pep"


def test_a_summer_term_meeting_sets_the_autumn_pep_date_and_hands_it_to_the_next_cycle(council, engine):
    instance_id = start_cycle(council, previous_targets=[{"what": "Learn the 7 times table"}])
    council.do_next("prepare_form_sw", SW, SUMMER_MEETING)
    council.sweep("2026-05-06T09:00:00+00:00")
    council.do_next("send_word_form", BSO, {**SENT, "sent_on": "2026-05-06"})
    council.do_next("prepare_word_copy", DT, WORD_COPY)
    summer = {**MEETING, "meeting_held_on": "2026-06-03"}
    with pytest.raises(FormInvalid) as caught:
        council.do_next("hold_meeting_sw", SW, {**summer, "pep_dates": ["2026-07-08"]})
    assert caught.value.errors == {"pep_dates": "Enter a PEP date in the autumn term 2026-27: a PEP is held each term"}
    council.do_next("hold_meeting_sw", SW, {**summer, "pep_dates": ["2026-09-23"]})
    council.do_next("type_up_pep", BSO, TYPED)
    council.do_next("finalise_pep_sw", SW, FINAL)
    council.do_next("send_to_attendees", BSO, DISTRIBUTED)
    assert council.instance(instance_id).status == "completed"
    assert caught_next_cycles(council) == [
        {"variant": "word_form_review_due", "next_meeting_date": "2026-09-23", "previous_targets": [TARGET]}
    ]


# ---- step 6: typing up, checking and finalising, sending to all attendees -----------------------


def test_the_social_worker_hands_the_pep_to_business_support_for_typing_up(council, engine):
    to_meeting(council)
    council.do_next("hold_meeting_sw", SW, MEETING)
    task = council.only_task()
    assert (task.spec_id, task.role_key, task.pooled) == ("type_up_pep", "business_support_officer", True)
    shown = council.view(task, BSO)
    assert (
        "The social worker has handed you Alex Example's PEP from the meeting on 25 March 2026" in shown["instructions"]
    )
    with pytest.raises(FormInvalid) as caught:
        council.complete(task, BSO, {"typed_on": "27/03/2026"})
    assert caught.value.errors == {
        "typed_pep": "Select a file for typed-up PEP",
        "typed_on": "Date typed up must be a real date",
    }


def test_the_social_worker_checks_the_typed_pep_and_sends_it_back_with_corrections(council, engine):
    to_finalise(council)
    task = council.only_task()
    assert (task.spec_id, task.lane) == ("finalise_pep_sw", "Social Worker")
    with pytest.raises(FormInvalid) as caught:
        council.complete(task, SW, {"decision": "Return to business support with corrections"})
    assert caught.value.errors == {"corrections": "Enter corrections for business support"}
    council.complete(task, SW, CORRECTIONS)
    retype = council.only_task()
    assert retype.spec_id == "type_up_pep"
    assert (
        "Corrections asked for: The carer's name is misspelt in section 2." in council.view(retype, BSO)["instructions"]
    )
    council.complete(retype, BSO, TYPED)
    council.do_next("finalise_pep_sw", SW, FINAL)
    assert council.only_task().spec_id == "send_to_attendees"


def test_the_finalised_pep_goes_securely_to_all_attendees_and_the_next_pep_is_due(council, engine):
    instance_id = to_finalise(council)
    council.do_next("finalise_pep_sw", SW, FINAL)
    task = council.only_task()
    assert (task.spec_id, task.role_key) == ("send_to_attendees", "business_support_officer")
    shown = council.view(task, BSO)
    assert (
        "Send it securely to everyone who attended the meeting on 25 March 2026: Sam Social-Worker (Social Worker), "
        "Dana Teacher (Designated Teacher / Practitioner), Cara Carer (Foster Carer)."
    ) in shown["instructions"]
    assert shown["data"]["attendees"] == ATTENDEES  # pre-filled from the meeting
    with pytest.raises(FormInvalid) as caught:
        council.complete(task, BSO, {**DISTRIBUTED, "sent_to_all": False})
    assert caught.value.errors == {"sent_to_all": "The finalised PEP goes to all attendees"}
    council.complete(task, BSO, DISTRIBUTED)
    subject = "The finalised PEP for Alex Example has been sent to you"
    assert council.notices("notice", every_child=True) == [
        (DT, None, subject),
        (CARER, None, subject),
        (YP, None, subject),
        (IRO, None, subject),
    ]
    # step 7: the process is repeated from step 3 with the date set at this meeting
    done = council.instance(instance_id)
    assert (done.status, done.next_timer_at, done.waiting_messages) == ("completed", None, [])
    finished = [e for e in council.history() if e.instance_id == instance_id and e.kind == "task_completed"][-1]
    assert "next_pep_due" in finished.data["path"] and "cycle_closed_left_care" not in finished.data["path"]
    assert caught_next_cycles(council) == [
        {"variant": "word_form_review_due", "next_meeting_date": "2026-06-17", "previous_targets": [TARGET]}
    ]


# ---- footnote *: 16+ the Leaving Care Worker, 18+ the Personal Adviser --------------------------


def test_at_16_the_leaving_care_worker_leads_the_pep(council, engine):
    start_cycle(council, "P16")
    task = council.only_task(child="P16")
    assert (task.spec_id, task.lane, task.role_key) == ("prepare_form_lcw", "Leaving Care Worker", "personal_adviser")
    with pytest.raises(NotAllowed):
        council.complete(task, SW2, PREPARE)  # the child's social worker no longer leads
    council.complete(task, PA, PREPARE)
    council.sweep("2026-03-04T00:00:01+00:00")
    council.do_next("send_word_form", BSO, SENT, "P16")
    council.sweep("2026-03-25T10:00:01+00:00")  # the college has not filled in the form
    assert council.notices("escalation", every_child=True) == [
        (PA, None, "PEP form for Drew Placeholder not filled in before the meeting")
    ]
    council.do_next("hold_meeting_lcw", PA, MEETING, "P16")
    typing = council.only_task(child="P16")
    assert "The leaving care worker has handed you" in council.view(typing, BSO)["instructions"]
    council.complete(typing, BSO, TYPED)
    final = council.only_task(child="P16")
    assert (final.spec_id, final.lane) == ("finalise_pep_lcw", "Leaving Care Worker")


def test_at_18_the_personal_adviser_leads_the_pep(council, engine):
    start_cycle(council, "P18")
    task = council.only_task(child="P18")
    assert (task.spec_id, task.lane, task.role_key) == ("prepare_form_pa", "Personal Adviser", "personal_adviser")
    council.complete(task, PA, {**PREPARE, "meeting_date": "2026-03-12"})
    send_task = council.only_task(child="P18")
    council.sweep("2026-03-04T00:00:00+00:00")  # a working day after sending was due
    assert council.notices("escalation", every_child=True) == [
        (PA, None, "Word PEP for Emery Fictional not yet sent"),
        (None, "business_support_officer", "Word PEP for Emery Fictional not yet sent"),
    ]
    council.complete(send_task, BSO, SENT)
    council.do_next("prepare_word_copy", COLLEGE_DT, WORD_COPY, "P18")
    meeting = council.only_task(child="P18")
    assert (meeting.spec_id, meeting.lane, meeting.assignee_id) == (
        "hold_meeting_pa",
        "Personal Adviser",
        council.user_id(PA),
    )


def test_a_year_11_pupil_who_has_turned_16_still_has_their_social_worker(council, engine):
    # Casey turned 16 in February 2026 but was 15 on 31 August, so is in Year 11: not yet post-16
    start_cycle(council, "Y11")
    task = council.only_task(child="Y11")
    assert (task.spec_id, task.lane, task.role_key) == ("prepare_form_sw", "Social Worker", "social_worker")
    council.complete(task, SW2, PREPARE)


# ---- footnote **: young children not yet in an early years setting ------------------------------


def test_a_child_not_in_early_years_goes_to_the_health_visitor_and_foster_carer_without_a_setting(council, engine):
    instance_id = start_cycle(council, "EY2")
    task = council.only_task(child="EY2")
    shown = council.view(task, SW)
    assert shown["data"]["education_setting"] == "Not yet in an early years setting"  # no school, aged 1
    assert "Record any information you hold about the child's development." in shown["instructions"]
    no_info = {k: v for k, v in EY_PREPARE.items() if k != "child_development_information"}
    with pytest.raises(FormInvalid) as caught:
        council.complete(task, SW, no_info)
    assert caught.value.errors == {
        "child_development_information": "Enter information you hold about the child's development"
    }
    council.complete(task, SW, EY_PREPARE)
    council.sweep("2026-03-04T00:00:01+00:00")
    send_task = council.only_task(child="EY2")
    assert (
        "securely to the Health Visitor and the foster carers (and the parents), so they can prepare the information "
        "needed for the meeting: there is no education setting input."
    ) in council.view(send_task, BSO)["instructions"]
    council.complete(send_task, BSO, SENT)
    tasks = council.open_tasks("EY2")
    assert sorted((t.spec_id, t.lane, t.role_key) for t in tasks) == [
        ("prepare_carer_information", "Foster Carer", "carer"),
        ("prepare_health_visitor_information", "Health Visitor", "health_visitor"),
    ]
    assert all(t.due_at.isoformat() == "2026-03-25T10:00:00+00:00" for t in tasks)
    carer_task = council.task("prepare_carer_information", "EY2")
    assert "The parents have also been sent the form" in council.view(carer_task, CARER)["instructions"]
    council.complete(council.task("prepare_health_visitor_information", "EY2"), HV, HV_INFO)
    council.complete(carer_task, CARER, CARER_INFO)
    meeting = council.only_task(child="EY2")
    assert meeting.spec_id == "hold_meeting_sw"
    assert "with the support of the Health Visitor and foster carers" in council.view(meeting, SW)["instructions"]
    council.complete(meeting, SW, MEETING)
    council.do_next("type_up_pep", BSO, TYPED, "EY2")
    council.do_next("finalise_pep_sw", SW, FINAL, "EY2")
    council.do_next("send_to_attendees", BSO, DISTRIBUTED, "EY2")
    subject = "The finalised PEP for Gray Invented has been sent to you"
    assert [n[:2] for n in council.notices("notice", every_child=True)] == [
        (HV, None),
        (CARER, None),
    ]  # no IRO in Gray's team
    assert all(n[2] == subject for n in council.notices("notice", every_child=True))
    assert council.instance(instance_id).status == "completed"
    assert not any(e.data.get("task") == "prepare_word_copy" for e in council.history("EY2"))


def test_health_visitor_or_carer_information_missing_at_the_meeting_is_escalated(council, engine):
    start_cycle(council, "EY2")
    council.do_next("prepare_form_sw", SW, EY_PREPARE, "EY2")
    council.sweep("2026-03-04T00:00:01+00:00")
    council.do_next("send_word_form", BSO, SENT, "EY2")
    council.complete(council.task("prepare_health_visitor_information", "EY2"), HV, HV_INFO)
    council.sweep("2026-03-25T10:00:01+00:00")
    assert council.notices("escalation", every_child=True) == [
        (SW, None, "Foster carer information for Gray Invented's PEP not ready")
    ]
    assert council.only_task(child="EY2").spec_id == "hold_meeting_sw"


# ---- messages: a rescheduled meeting, a child leaving care -------------------------------------


def test_a_rescheduled_meeting_moves_the_send_date(council, engine):
    instance_id = start_cycle(council)
    council.do_next("prepare_form_sw", SW, PREPARE)
    assert council.instance(instance_id).next_timer_at.isoformat() == "2026-03-04T00:00:00+00:00"
    [caught] = council.send(
        "meeting_rescheduled",
        {
            "meeting_date": "2026-06-03",
            "meeting_time": "13:30",
            "venue": "Oak Primary hall",
            "reason": "Teacher on a course",
        },
        actor=SW,
    )
    assert caught.id == instance_id
    assert council.instance(instance_id).next_timer_at.isoformat() == "2026-05-05T23:00:00+00:00"
    assert council.sweep("2026-03-04T00:00:01+00:00").timers_fired == 0
    assert council.open_tasks() == []
    council.sweep("2026-05-05T23:00:01+00:00")
    task = council.only_task()
    assert "The PEP meeting is on 3 June 2026 at 13:30 (Oak Primary hall)." in council.view(task, BSO)["instructions"]


def test_a_meeting_rescheduled_while_business_support_holds_the_form_waits_for_the_new_send_date(council, engine):
    instance_id = start_cycle(council)
    council.do_next("prepare_form_sw", SW, PREPARE)
    council.sweep("2026-03-04T09:00:00+00:00")
    assert council.only_task().spec_id == "send_word_form"
    council.send(
        "meeting_rescheduled",
        {"meeting_date": "2026-06-03", "meeting_time": "10:00", "venue": "Oak Primary", "reason": "Illness"},
        actor=SW,
    )
    assert council.open_tasks() == []
    assert council.instance(instance_id).next_timer_at.isoformat() == "2026-05-05T23:00:00+00:00"
    # the old deadlines are gone with the withdrawn task
    assert council.sweep("2026-03-06T09:00:00+00:00").timers_fired == 0
    assert council.notices("reminder", every_child=True) == [] and council.notices("escalation", every_child=True) == []


def test_a_meeting_rescheduled_while_the_setting_prepares_moves_its_deadline(council, engine):
    to_word_copy(council)
    old = council.only_task()
    council.send(
        "meeting_rescheduled",
        {"meeting_date": "2026-03-26", "meeting_time": "14:00", "venue": "Oak Primary", "reason": "Carer unavailable"},
        actor=SW,
    )
    task = council.only_task()
    assert task.spec_id == "prepare_word_copy" and task.id != old.id
    assert task.due_at.isoformat() == "2026-03-26T14:00:00+00:00"
    assert council.sweep("2026-03-25T10:00:01+00:00").timers_fired == 0  # the old start time
    council.complete(task, DT, WORD_COPY)
    meeting = council.only_task()
    assert meeting.due_at.isoformat() == "2026-03-26T23:59:59+00:00"
    with council.sessions() as s:
        assert engine.task_view(s, meeting.id, SW)["data"]["reschedules"] == [
            {"from": "2026-03-25", "to": "2026-03-26", "reason": "Carer unavailable"}
        ]


def test_a_meeting_rescheduled_before_it_is_held_moves_the_meeting_step(council, engine):
    to_meeting(council)
    council.send(
        "meeting_rescheduled",
        {"meeting_date": "2026-03-27", "meeting_time": "09:00", "venue": "Oak Primary", "reason": "Snow"},
        actor=SW,
    )
    meeting = council.only_task()
    assert (meeting.spec_id, meeting.due_at.isoformat()) == ("hold_meeting_sw", "2026-03-27T23:59:59+00:00")


def test_a_rescheduled_meeting_reopens_the_health_visitor_and_carer_tasks_with_the_new_deadline(council, engine):
    start_cycle(council, "EY2")
    council.do_next("prepare_form_sw", SW, EY_PREPARE, "EY2")
    council.sweep("2026-03-04T00:00:01+00:00")
    council.do_next("send_word_form", BSO, SENT, "EY2")
    assert len(council.open_tasks("EY2")) == 2
    council.send(
        "meeting_rescheduled",
        {
            "meeting_date": "2026-03-24",
            "meeting_time": "11:00",
            "venue": "Carer's home",
            "reason": "Health Visitor on leave",
        },
        child="EY2",
        actor=SW,
    )
    tasks = council.open_tasks("EY2")
    assert sorted(t.spec_id for t in tasks) == ["prepare_carer_information", "prepare_health_visitor_information"]
    assert {t.due_at.isoformat() for t in tasks} == {"2026-03-24T11:00:00+00:00"}
    council.sweep("2026-03-24T11:00:01+00:00")
    assert [n[:2] for n in council.notices("escalation", every_child=True)] == [(SW, None), (SW, None)]
    assert council.only_task(child="EY2").spec_id == "hold_meeting_sw"


def test_a_rescheduled_meeting_reopens_only_the_contribution_still_open(council, engine):
    start_cycle(council, "EY2")
    council.do_next("prepare_form_sw", SW, EY_PREPARE, "EY2")
    council.sweep("2026-03-04T00:00:01+00:00")
    council.do_next("send_word_form", BSO, SENT, "EY2")
    council.complete(council.task("prepare_health_visitor_information", "EY2"), HV, HV_INFO)
    council.send(
        "meeting_rescheduled",
        {"meeting_date": "2026-03-26", "meeting_time": "15:00", "venue": "Carer's home", "reason": "Carer unwell"},
        child="EY2",
        actor=SW,
    )
    carer_task = council.only_task(child="EY2")  # the Health Visitor's answer stands
    assert (carer_task.spec_id, carer_task.due_at.isoformat()) == (
        "prepare_carer_information",
        "2026-03-26T15:00:00+00:00",
    )
    council.complete(carer_task, CARER, CARER_INFO)
    meeting = council.only_task(child="EY2")
    assert meeting.due_at.isoformat() == "2026-03-26T23:59:59+00:00"  # the join kept the new date
    data = council.view(meeting, SW)["data"]
    assert (data["meeting_time"], data["development_summary"]) == ("15:00", HV_INFO["development_summary"])


def test_a_child_leaving_care_ends_the_peps_after_this_one_is_finalised(council, engine):
    instance_id = to_word_copy(council)
    [caught] = council.send("child_leaves_care", {"left_care": "2026-03-20", "reason": "Returned home"}, actor=SW)
    assert caught.id == instance_id
    assert council.only_task().spec_id == "prepare_word_copy"  # the current PEP carries on
    council.do_next("prepare_word_copy", DT, WORD_COPY)
    council.do_next("hold_meeting_sw", SW, MEETING)
    council.do_next("type_up_pep", BSO, TYPED)
    council.do_next("finalise_pep_sw", SW, FINAL)
    done = council.do_next("send_to_attendees", BSO, DISTRIBUTED)
    assert done.status == "completed"
    finished = [e for e in council.history() if e.instance_id == instance_id and e.kind == "task_completed"][-1]
    assert "cycle_closed_left_care" in finished.data["path"] and "next_pep_due" not in finished.data["path"]
    assert caught_next_cycles(council) == []


# ---- who may do each step; invalid data --------------------------------------------------------


def test_only_the_right_people_can_do_each_step(council, engine):
    start_cycle(council)
    with pytest.raises(NotAllowed, match="does not hold the role Social Worker"):
        council.complete(council.only_task(), DT, PREPARE)
    with pytest.raises(NotAllowed):
        council.complete(council.only_task(), BSO, PREPARE)
    council.do_next("prepare_form_sw", SW, PREPARE)
    council.sweep("2026-03-04T00:00:01+00:00")
    with pytest.raises(NotAllowed, match="does not hold the role Business Support Officer"):
        council.complete(council.only_task(), SW, SENT)
    council.do_next("send_word_form", BSO, SENT)
    with pytest.raises(NotAllowed):
        council.complete(council.only_task(), OTHER_DT, WORD_COPY)  # another school's teacher
    with pytest.raises(NotAllowed):
        council.complete(council.only_task(), SW, WORD_COPY)
    council.do_next("prepare_word_copy", DT, WORD_COPY)
    with pytest.raises(NotAllowed):
        council.complete(council.only_task(), SW2, MEETING)  # another child's social worker
    council.do_next("hold_meeting_sw", SW, MEETING)
    with pytest.raises(NotAllowed):
        council.complete(council.only_task(), DT, TYPED)
    council.do_next("type_up_pep", BSO, TYPED)
    with pytest.raises(NotAllowed):
        council.complete(council.only_task(), BSO, FINAL)  # business support cannot finalise
    council.do_next("finalise_pep_sw", SW, FINAL)
    with pytest.raises(NotAllowed):
        council.complete(council.only_task(), CARER, DISTRIBUTED)


def test_a_health_visitor_cannot_do_the_carers_step(council, engine):
    start_cycle(council, "EY2")
    council.do_next("prepare_form_sw", SW, EY_PREPARE, "EY2")
    council.sweep("2026-03-04T00:00:01+00:00")
    council.do_next("send_word_form", BSO, SENT, "EY2")
    with pytest.raises(NotAllowed):
        council.complete(council.task("prepare_carer_information", "EY2"), HV, CARER_INFO)
    with pytest.raises(NotAllowed):
        council.complete(council.task("prepare_health_visitor_information", "EY2"), CARER, HV_INFO)


def test_invalid_form_data_is_refused_field_by_field(council, engine):
    start_cycle(council)
    task = council.only_task()
    with pytest.raises(FormInvalid) as caught:
        council.complete(
            task,
            SW,
            {**PREPARE, "meeting_date": "25/03/2026", "meeting_time": "10am", "venue": "", "education_setting": "Home"},
        )
    assert caught.value.errors == {
        "education_setting": "Answer the question: Where does the child learn?",
        "meeting_date": "PEP meeting date must be a real date",
        "meeting_time": "Use the 24-hour form HH:MM, for example 09:30",
        "venue": "Enter PEP meeting venue",
    }
    assert council.only_task().id == task.id
    council.complete(task, SW, PREPARE)
    council.sweep("2026-03-04T00:00:01+00:00")
    with pytest.raises(FormInvalid) as caught:
        council.complete(council.only_task(), BSO, {"sent_on": "2026-03-04", "secure_method": "Post", "recipients": []})
    assert set(caught.value.errors) == {"secure_method", "recipients"}
    council.do_next("send_word_form", BSO, SENT)
    with pytest.raises(FormInvalid) as caught:
        council.complete(
            council.only_task(),
            DT,
            {**WORD_COPY, "attendance_percent": 120, "special_educational_needs": "EHCP", "copies_for_meeting": False},
        )
    assert caught.value.errors == {
        "attendance_percent": "Attendance this year (%) must be 100 or less",
        "copies_for_meeting": "Confirm that you will bring copies of the form to the meeting",
        "ehcp": "Select a file for EHCP (latest)",
    }
    council.do_next("prepare_word_copy", DT, {**WORD_COPY, "special_educational_needs": "EHCP", "ehcp": "upload-7"})
    bad_target = {**TARGET, "what": "Go", "by_when": "soon", "pp_plus_amount": -5}
    with pytest.raises(FormInvalid) as caught:
        council.complete(council.only_task(), SW, {**MEETING, "targets": [bad_target], "pep_dates": ["next term"]})
    assert set(caught.value.errors) == {
        "targets.0.what",
        "targets.0.by_when",
        "targets.0.pp_plus_amount",
        "pep_dates.0",
    }


# ---- a child with no school place ---------------------------------------------------------------


def test_a_child_with_no_school_place_has_the_word_copy_prepared_by_the_vs_education_advisers(council, engine):
    """No designated practitioner: their lane falls back to the VS Education Advisers' pool
    (config/roles.yaml), and the PEP runs to its end with nobody missing."""
    adviser = "ea@council.test"
    instance_id = to_word_copy(council, "NOSCHOOL")
    copy = council.only_task(child="NOSCHOOL")
    assert (copy.spec_id, copy.lane, copy.role_key, copy.pooled) == (
        "prepare_word_copy",
        "Designated Practitioner",
        "vs_education_adviser",
        True,
    )
    council.do_next("prepare_word_copy", adviser, WORD_COPY, "NOSCHOOL")
    council.do_next(council.only_task(child="NOSCHOOL").spec_id, SW, MEETING, "NOSCHOOL")
    council.do_next("type_up_pep", BSO, TYPED, "NOSCHOOL")
    council.do_next("finalise_pep_sw", SW, FINAL, "NOSCHOOL")
    council.do_next("send_to_attendees", BSO, DISTRIBUTED, "NOSCHOOL")
    assert council.instance(instance_id).status == "completed" and council.open_tasks("NOSCHOOL") == []
    assert council.notices("task_needs_person", every_child=True) == []
