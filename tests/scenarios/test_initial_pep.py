"""The initial PEP (processes/initial_pep.bpmn) for a child who becomes looked after.

The clock is frozen on Monday 2 March 2026; children enter care that day unless a test says otherwise.
Working-day deadlines from 2 March 2026: 5 working days = Monday 9 March, 10 = Monday 16 March,
20 = Monday 30 March (British Summer Time from 29 March: end of day is 22:59:59 UTC).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import deploy
from engine.history import events
from engine.models import Instance, Notification, OpenTask, User
from engine.runtime import FormInvalid, NotAllowed
from tests.conftest import shipped_bundle

from ..helpers import recorded_after_the_fact, sweep
from .test_pep_cycle import bundle_with_catchers, caught_payload

ENTERED = "2026-03-02"
INITIATE = {"initiated_on": ENTERED, "sent_to": "Dana Teacher, designated teacher", "sent_by": "Liquid Logic",
            "sent_securely": True}
# meeting on Friday 20 March at 10:00; the initial CLA review on Monday 30 March
ARRANGE = {"meeting_date": "2026-03-20", "meeting_time": "10:00", "venue": "Oak Primary, meeting room 2",
           "initial_cla_review_date": "2026-03-30",
           "invited": [{"name": "Dana Teacher", "role": "designated teacher"},
                       {"name": "Cara Carer", "role": "foster carer"}]}
SETTING = {"attendance_percent": 91.5, "attainment": "Working towards the expected standard in reading",
           "strengths": "Loves science and football", "needs_identified": "Some anxiety at transitions (SEMH)",
           "sen_status": "SEN support"}
TARGETS = [{"what": "Read aloud to an adult three times a week", "category": "academic",
            "strategies": "Daily reading with a key adult", "evidence_of_impact": "Reading age up 6 months",
            "who": "Class teacher and carer", "by_when": "2026-05-22", "pp_plus_amount": 300}]
RECORD = {"meeting_held_on": "2026-03-20",
          "attendees": [{"name": "Sam Social-Worker", "role": "social worker"},
                        {"name": "Dana Teacher", "role": "designated teacher"}],
          "attendance_percent": 91.5, "attainment": "Working towards in reading", "needs": "SEMH: anxiety",
          "targets": TARGETS, "child_views": "I like my new school", "carer_input": "Settling well at home",
          "next_meeting_date": "2026-05-13", "next_meeting_time": "09:30"}


@pytest.fixture
def initial(demo_council, clock):
    with clocks.using(clock), demo_council.begin() as s:
        deploy(s, shipped_bundle("initial_pep.bpmn", forms=("initial_",)), actor="owner@council.test")
    return demo_council


@pytest.fixture
def chained(demo_council, clock):
    """The initial PEP with the router and stand-ins for the review variants."""
    with clocks.using(clock), demo_council.begin() as s:
        deploy(s, bundle_with_catchers("initial_pep.bpmn", "pep_cycle.bpmn", forms=("initial_",)),
               actor="owner@council.test")
    return demo_council


# ---- helpers ------------------------------------------------------------------------------------

def enter_care(engine, sessions, child_id, entry="planned", setting="school", school="Oak Primary",
               entered=ENTERED, **extra) -> Instance:
    data = {"entry": entry, "entered_care": entered, "education_setting": setting, "school": school, **extra}
    with sessions.begin() as s:
        started = engine.send_message(s, "child_becomes_looked_after", child_id, data, actor="sw@council.test")
    assert len(started) == 1
    return started[0]


def open_tasks(sessions, child_id) -> list[OpenTask]:
    with sessions() as s:
        return s.scalars(select(OpenTask).where(OpenTask.child_id == child_id).order_by(OpenTask.spec_id)).all()


def only_task(sessions, child_id) -> OpenTask:
    tasks = open_tasks(sessions, child_id)
    assert len(tasks) == 1, [t.name for t in tasks]
    return tasks[0]


def task(sessions, child_id, spec_id) -> OpenTask:
    return next(t for t in open_tasks(sessions, child_id) if t.spec_id == spec_id)


def complete(engine, sessions, open_task: OpenTask, actor: str, data: dict) -> Instance:
    with sessions() as s:
        recorded_after_the_fact(engine, s, open_task.id, actor, data)
    with sessions.begin() as s:
        return engine.complete_task(s, open_task.id, actor, data)


def assignee(sessions, open_task: OpenTask) -> str | None:
    with sessions() as s:
        user = s.get(User, open_task.assignee_id) if open_task.assignee_id else None
        return user.email if user else None


def notices(sessions, child_id, kind=None) -> list[tuple[str, str]]:
    """(recipient, subject) of the notifications a diagram sent: a person's e-mail or 'pool:<role>'."""
    with sessions() as s:
        query = select(Notification).where(Notification.child_id == child_id,
                                           Notification.kind.not_in(["task_assigned", "task_pooled"]))
        if kind:
            query = query.where(Notification.kind == kind)
        rows = s.scalars(query.order_by(Notification.id)).all()
        return [((s.get(User, n.user_id).email if n.user_id else f"pool:{n.role_key}"), n.subject) for n in rows]


def recipients(sessions, child_id, kind) -> set[str]:
    return {who for who, _ in notices(sessions, child_id, kind)}


def instructions(engine, sessions, open_task: OpenTask, actor: str) -> str:
    with sessions() as s:
        return engine.task_view(s, open_task.id, actor)["instructions"]


def run_path(sessions, instance_id: int) -> list[str]:
    with sessions() as s:
        instance = s.get(Instance, instance_id)
        return [p for e in events(s, instance.child_id, instance_id) for p in e.data.get("path", [])]


def to_arranging(engine, sessions, child_id="Y5", **entry) -> Instance:
    instance = enter_care(engine, sessions, child_id, **entry)
    complete(engine, sessions, only_task(sessions, child_id), "sw@council.test", INITIATE)
    return instance


def to_setting(engine, sessions, child_id="Y5", arrange=ARRANGE, **entry) -> Instance:
    instance = to_arranging(engine, sessions, child_id, **entry)
    complete(engine, sessions, only_task(sessions, child_id), "sw@council.test", arrange)
    return instance


def to_record(engine, sessions, child_id="Y5", **entry) -> Instance:
    instance = to_setting(engine, sessions, child_id, **entry)
    complete(engine, sessions, only_task(sessions, child_id), "dt@oak.test", SETTING)
    return instance


# ---- 1a / 1b: initiating the PEP -----------------------------------------------------------------

def test_planned_entry_the_social_worker_initiates_the_pep_within_five_working_days(initial, engine):
    enter_care(engine, initial, "Y5")
    first = only_task(initial, "Y5")
    assert (first.spec_id, first.lane, first.form) == (
        "initiate_pep_sw", "Social Worker", "initial_initiate_pep.schema.json")
    assert assignee(initial, first) == "sw@council.test"
    assert first.due_at.isoformat() == "2026-03-09T23:59:59+00:00"
    text = instructions(engine, initial, first, "sw@council.test")
    assert "is becoming looked after (planned" in text
    assert "send it securely" in text and "designated teacher / practitioner at Oak Primary" in text


def test_emergency_entry_the_pep_is_initiated_immediately_by_the_next_working_day(initial, engine):
    enter_care(engine, initial, "Y5", entry="emergency")
    first = only_task(initial, "Y5")
    assert first.due_at.isoformat() == "2026-03-03T23:59:59+00:00"
    assert "came into care in an emergency on 2 March 2026: initiate the PEP on Liquid Logic immediately" in \
        instructions(engine, initial, first, "sw@council.test")


def test_an_emergency_pep_not_initiated_in_time_is_flagged_and_the_social_worker_keeps_it(initial, engine):
    enter_care(engine, initial, "Y5", entry="emergency")
    first = only_task(initial, "Y5")
    assert sweep(engine, initial, "2026-03-03T23:00:00+00:00").timers_fired == 0
    assert sweep(engine, initial, "2026-03-04T00:00:01+00:00").timers_fired == 1
    assert only_task(initial, "Y5").id == first.id
    assert recipients(initial, "Y5", "overdue") == {"sw@council.test", "pool:vs_administrator"}


def test_the_pep_must_be_sent_securely_and_the_form_is_checked(initial, engine):
    enter_care(engine, initial, "Y5")
    with pytest.raises(FormInvalid) as caught:
        complete(engine, initial, only_task(initial, "Y5"), "sw@council.test",
                 {"initiated_on": "2 March", "sent_to": "DT", "sent_by": "Post", "sent_securely": False})
    assert set(caught.value.errors) == {"initiated_on", "sent_by", "sent_securely"}
    assert caught.value.errors["sent_by"] == "Select sent securely by"


def test_a_teacher_cannot_initiate_the_pep(initial, engine):
    enter_care(engine, initial, "Y5")
    with pytest.raises(NotAllowed):
        complete(engine, initial, only_task(initial, "Y5"), "dt@oak.test", INITIATE)


def test_the_virtual_school_is_informed_when_the_pep_is_initiated(initial, engine):
    to_arranging(engine, initial, "Y5")
    [(who, subject)] = notices(initial, "Y5", "notice")
    assert (who, subject) == ("pool:vs_administrator", "Alex Example has become looked after: initial PEP initiated")
    arrange = only_task(initial, "Y5")
    assert (arrange.spec_id, arrange.lane) == ("arrange_initial_meeting", "Social Worker")
    assert arrange.due_at.isoformat() == "2026-03-16T23:59:59+00:00"  # 10 working days


@pytest.mark.parametrize("child_id", ["P16", "P18"])
def test_at_16_plus_the_leaving_care_worker_or_personal_adviser_initiates_the_pep(initial, engine, child_id):
    enter_care(engine, initial, child_id, school="Riverside College")
    first = only_task(initial, child_id)
    assert (first.spec_id, first.lane) == ("initiate_pep_pa", "Personal Adviser")
    assert assignee(initial, first) == "pa@council.test"
    assert "Leaving Care Worker / Personal Adviser initiates the PEP" in \
        instructions(engine, initial, first, "pa@council.test")
    with pytest.raises(NotAllowed):
        complete(engine, initial, first, "sw2@council.test", INITIATE)
    complete(engine, initial, first, "pa@council.test", INITIATE)
    assert only_task(initial, child_id).spec_id == "arrange_initial_meeting"


def test_a_personal_adviser_who_has_not_initiated_the_pep_is_flagged(initial, engine):
    enter_care(engine, initial, "P16", entry="emergency", school="Riverside College")
    sweep(engine, initial, "2026-03-04T00:00:01+00:00")
    assert recipients(initial, "P16", "overdue") == {"pa@council.test", "pool:vs_administrator"}
    assert only_task(initial, "P16").spec_id == "initiate_pep_pa"


def test_a_year_11_pupil_under_16_in_school_year_terms_has_the_social_worker_initiate(initial, engine):
    enter_care(engine, initial, "Y11", school="Elm Academy")
    assert only_task(initial, "Y11").spec_id == "initiate_pep_sw"


# ---- 2: arranging the initial meeting -------------------------------------------------------------

def test_the_pep_coordinator_is_told_the_date_time_and_venue(initial, engine):
    to_setting(engine, initial, "Y5")
    told = notices(initial, "Y5", "notice")[-1]
    assert told == ("pool:vs_administrator",
                    "Initial PEP meeting for Alex Example: 2026-03-20 at 10:00, Oak Primary, meeting room 2")
    assert recipients(initial, "Y5", "escalation") == set()


def test_arranging_the_meeting_checks_the_date_time_venue_and_cla_review(initial, engine):
    to_arranging(engine, initial, "Y5")
    with pytest.raises(FormInvalid) as caught:
        complete(engine, initial, only_task(initial, "Y5"), "sw@council.test",
                 {"meeting_date": "20/03/2026", "meeting_time": "10am", "invited": []})
    assert set(caught.value.errors) == {"meeting_date", "meeting_time", "venue", "initial_cla_review_date", "invited"}
    assert caught.value.errors["meeting_time"] == "Use the 24-hour clock, for example 14:30"


def test_the_social_worker_is_reminded_then_a_meeting_not_arranged_in_10_working_days_is_escalated(
        initial, engine):
    to_arranging(engine, initial, "Y5")
    arrange = only_task(initial, "Y5")
    assert sweep(engine, initial, "2026-03-13T00:00:00+00:00").timers_fired == 1  # Thursday 12 March, end of day
    assert notices(initial, "Y5", "reminder") == [
        ("sw@council.test", "Arrange the initial PEP meeting for Alex Example by 2026-03-16T23:59:59+00:00")]
    assert sweep(engine, initial, "2026-03-16T23:00:00+00:00").timers_fired == 0
    assert sweep(engine, initial, "2026-03-17T00:00:00+00:00").timers_fired == 1
    assert recipients(initial, "Y5", "overdue") == {"pool:vs_administrator", "sw@council.test"}
    assert only_task(initial, "Y5").id == arrange.id  # the social worker keeps the task
    complete(engine, initial, arrange, "sw@council.test", ARRANGE)
    assert only_task(initial, "Y5").spec_id == "setting_prepares"


@pytest.mark.parametrize(("meeting_date", "review_date"), [("2026-03-31", "2026-04-02"), ("2026-03-20", "2026-03-19")],
                         ids=["after 20 working days", "after the initial CLA review"])
def test_a_meeting_booked_too_late_is_escalated_to_the_vs_head(initial, engine, meeting_date, review_date):
    to_setting(engine, initial, "Y5", arrange={**ARRANGE, "meeting_date": meeting_date,
                                               "initial_cla_review_date": review_date})
    assert recipients(initial, "Y5", "escalation") == {"pool:vs_head", "pool:vs_administrator", "sw@council.test"}
    assert notices(initial, "Y5", "escalation")[0][1] == "Initial PEP meeting for Alex Example is booked too late"
    assert only_task(initial, "Y5").spec_id == "setting_prepares"  # the PEP goes on


def test_a_meeting_the_working_day_before_the_cla_review_is_in_time(initial, engine):
    to_setting(engine, initial, "Y5", arrange={**ARRANGE, "meeting_date": "2026-03-27",
                                               "initial_cla_review_date": "2026-03-30"})
    assert recipients(initial, "Y5", "escalation") == set()


# ---- the information for the meeting --------------------------------------------------------------

def test_the_designated_teacher_prepares_the_settings_information_before_the_meeting(initial, engine):
    to_setting(engine, initial, "Y5")
    prep = only_task(initial, "Y5")
    assert (prep.spec_id, prep.lane, assignee(initial, prep)) == (
        "setting_prepares", "Designated Teacher", "dt@oak.test")
    assert prep.due_at.isoformat() == "2026-03-20T10:00:00+00:00"  # when the meeting starts
    assert "bring copies to the meeting" in instructions(engine, initial, prep, "dt@oak.test")
    with pytest.raises(FormInvalid) as caught:
        complete(engine, initial, prep, "dt@oak.test", {**SETTING, "attendance_percent": 105})
    assert caught.value.errors == {"attendance_percent": "Attendance this year (%) must be 100 or less"}
    with pytest.raises(NotAllowed):
        complete(engine, initial, prep, "dt@elm.test", SETTING)


def test_the_designated_teacher_is_reminded_and_a_meeting_starts_without_the_settings_information(
        initial, engine):
    to_setting(engine, initial, "Y5")
    assert sweep(engine, initial, "2026-03-19T10:00:01+00:00").timers_fired == 1
    assert recipients(initial, "Y5", "reminder") == {"dt@oak.test"}
    assert sweep(engine, initial, "2026-03-20T10:00:01+00:00").timers_fired == 1
    record = only_task(initial, "Y5")
    assert record.spec_id == "record_initial_pep"
    assert recipients(initial, "Y5", "overdue") == {"sw@council.test", "pool:vs_administrator"}


def test_an_early_years_child_goes_to_the_settings_designated_practitioner(initial, engine):
    to_setting(engine, initial, "EY3", setting="early_years", school="Little Acorns Nursery")
    prep = only_task(initial, "EY3")
    assert (prep.spec_id, assignee(initial, prep)) == ("setting_prepares", "dp@nursery.test")


def test_a_young_child_not_in_an_early_years_setting_goes_to_the_health_visitor_and_carers(initial, engine):
    enter_care(engine, initial, "EY2", setting="none", school=None)
    first = only_task(initial, "EY2")
    text = instructions(engine, initial, first, "sw@council.test")
    assert "the Health Visitor and the foster carers (and the parents if appropriate)" in text
    assert "not yet in an early-years setting" in text
    complete(engine, initial, first, "sw@council.test", {**INITIATE, "sent_to": "Hana Visitor and Cara Carer"})
    complete(engine, initial, only_task(initial, "EY2"), "sw@council.test", ARRANGE)
    tasks = {t.spec_id: assignee(initial, t) for t in open_tasks(initial, "EY2")}
    assert tasks == {"health_visitor_prepares": "hv@health.test", "carers_prepare": "carer@home.test",
                     "sw_prepares_development": "sw@council.test"}
    assert "there is no education-setting input" in instructions(
        engine, initial, task(initial, "EY2", "sw_prepares_development"), "sw@council.test")
    complete(engine, initial, task(initial, "EY2", "health_visitor_prepares"), "hv@health.test",
             {"development_summary": "2-year check due; walking and babbling", "health_needs": "None known"})
    complete(engine, initial, task(initial, "EY2", "carers_prepare"), "carer@home.test",
             {"carer_observations": "Loves stacking blocks", "parents_contributed": False})
    assert [t.spec_id for t in open_tasks(initial, "EY2")] == ["sw_prepares_development"]
    complete(engine, initial, task(initial, "EY2", "sw_prepares_development"), "sw@council.test",
             {"development_information": "Late to talk; referred for speech and language"})
    record = only_task(initial, "EY2")
    assert record.spec_id == "record_initial_pep"
    assert "There is no education-setting input" in instructions(engine, initial, record, "sw@council.test")
    with initial() as s:
        data = engine.task_view(s, record.id, "sw@council.test")["data"]
    assert data["health_needs"] == "None known" and data["carer_observations"] == "Loves stacking blocks"
    with initial() as s:  # the leaving-care watcher of the preparation stopped; the meeting task catches it now
        assert s.get(Instance, record.instance_id).waiting_messages == ["child_leaves_care"]
    done = complete(engine, initial, record, "sw@council.test",
                    {**RECORD, "child_views": "Smiles and babbles with the carer (observed)"})
    assert done.status == "completed" and run_path(initial, done.id)[-1] == "initial_pep_done"


def test_the_carers_are_the_only_ones_to_answer_the_carers_task(initial, engine):
    to_setting(engine, initial, "EY2", setting="none", school=None)
    with pytest.raises(NotAllowed):
        complete(engine, initial, task(initial, "EY2", "carers_prepare"), "hv@health.test",
                 {"carer_observations": "Fine"})


def test_a_young_childs_meeting_goes_ahead_without_missing_information(initial, engine):
    to_setting(engine, initial, "EY2", setting="none", school=None)
    complete(engine, initial, task(initial, "EY2", "carers_prepare"), "carer@home.test",
             {"carer_observations": "Loves stacking blocks"})
    sweep(engine, initial, "2026-03-20T10:00:01+00:00")
    assert only_task(initial, "EY2").spec_id == "record_initial_pep"
    subjects = [subject for _, subject in notices(initial, "EY2", "overdue")]
    assert "The Health Visitor's information for Gray Invented's initial PEP was not ready" in subjects
    assert "The development information for Gray Invented's initial PEP was not ready" in subjects


def test_a_child_without_a_school_place_gets_the_virtual_schools_support(initial, engine):
    enter_care(engine, initial, "NOSCHOOL", setting="none", school=None)
    assert "the Virtual School, which supports you" in instructions(
        engine, initial, only_task(initial, "NOSCHOOL"), "sw@council.test")
    complete(engine, initial, only_task(initial, "NOSCHOOL"), "sw@council.test",
             {**INITIATE, "sent_to": "Virtual School"})
    complete(engine, initial, only_task(initial, "NOSCHOOL"), "sw@council.test", ARRANGE)
    support = only_task(initial, "NOSCHOOL")
    assert (support.spec_id, support.lane, support.pooled) == (
        "vs_supports_no_place", "VS Education Adviser", True)
    assert "translator" in instructions(engine, initial, support, "ea@council.test")
    with pytest.raises(FormInvalid) as caught:  # a translator is needed: which language?
        complete(engine, initial, support, "ea@council.test",
                 {"current_education_offer": "Tuition 10 hours a week", "action_to_secure_place": "Admissions",
                  "translator_required": True})
    assert set(caught.value.errors) == {"translator_language"}
    complete(engine, initial, support, "ea@council.test",
             {"current_education_offer": "Tuition 10 hours a week", "action_to_secure_place": "Fair access panel",
              "translator_required": True, "translator_language": "Tigrinya"})
    assert only_task(initial, "NOSCHOOL").spec_id == "record_initial_pep"
    done = complete(engine, initial, only_task(initial, "NOSCHOOL"), "sw@council.test", RECORD)
    assert done.status == "completed" and open_tasks(initial, "NOSCHOOL") == []  # nobody missing on the way
    assert notices(initial, "NOSCHOOL", "task_needs_person") == []


def test_a_meeting_without_the_virtual_schools_input_is_flagged_to_the_vs_head(initial, engine):
    to_setting(engine, initial, "NOSCHOOL", setting="none", school=None)
    sweep(engine, initial, "2026-03-20T10:00:01+00:00")
    assert only_task(initial, "NOSCHOOL").spec_id == "record_initial_pep"
    assert recipients(initial, "NOSCHOOL", "overdue") == {"pool:vs_head", "sw@council.test"}


# ---- the meeting held within 20 working days, the initial PEP complete -----------------------------

def test_the_initial_pep_is_due_before_the_initial_cla_review(initial, engine):
    to_record(engine, initial, "Y5")
    record = only_task(initial, "Y5")
    assert (record.spec_id, record.lane, assignee(initial, record)) == (
        "record_initial_pep", "Social Worker", "sw@council.test")
    # the working day before the review on Monday 30 March: Friday 27 March (still GMT)
    assert record.due_at.isoformat() == "2026-03-27T23:59:59+00:00"


def test_without_an_earlier_cla_review_the_initial_pep_is_due_in_20_working_days(initial, engine):
    to_setting(engine, initial, "Y5", arrange={**ARRANGE, "initial_cla_review_date": "2026-04-01"})
    complete(engine, initial, only_task(initial, "Y5"), "dt@oak.test", SETTING)
    assert only_task(initial, "Y5").due_at.isoformat() == "2026-03-30T22:59:59+00:00"  # Monday 30 March, BST


def test_an_initial_pep_not_held_in_time_is_escalated_to_the_vs_head_and_pep_coordinator(initial, engine):
    to_record(engine, initial, "Y5")
    record = only_task(initial, "Y5")
    assert sweep(engine, initial, "2026-03-26T00:00:00+00:00").timers_fired == 1  # Wednesday 25 March, end of day
    assert recipients(initial, "Y5", "reminder") == {"sw@council.test"}
    assert sweep(engine, initial, "2026-03-28T00:00:00+00:00").timers_fired == 1
    assert recipients(initial, "Y5", "escalation") == {"pool:vs_head", "pool:vs_administrator", "sw@council.test"}
    assert notices(initial, "Y5", "escalation")[0][1] == \
        "Initial PEP for Alex Example not held within 20 working days"
    assert only_task(initial, "Y5").id == record.id  # the social worker keeps it
    complete(engine, initial, record, "sw@council.test", RECORD)


def test_the_initial_pep_records_its_content_and_refuses_incomplete_targets(initial, engine):
    to_record(engine, initial, "Y5")
    record = only_task(initial, "Y5")
    text = instructions(engine, initial, record, "sw@council.test")
    assert "Record the child's views and the carers' input, and set the date of the next PEP meeting" in text
    bad = {**RECORD, "targets": [{"what": "Read", "by_when": "soon", "pp_plus_amount": -5}],
           "attendance_percent": -1}
    bad.pop("child_views")
    with pytest.raises(FormInvalid) as caught:
        complete(engine, initial, record, "sw@council.test", bad)
    assert set(caught.value.errors) == {
        "attendance_percent", "child_views", "targets.0.by_when", "targets.0.evidence_of_impact",
        "targets.0.pp_plus_amount", "targets.0.strategies", "targets.0.who"}
    with pytest.raises(NotAllowed):
        complete(engine, initial, record, "dt@oak.test", RECORD)


def test_the_initial_pep_ends_by_throwing_pep_cycle_due_with_the_next_date_and_targets(initial, engine):
    instance = to_record(engine, initial, "Y5")
    done = complete(engine, initial, only_task(initial, "Y5"), "sw@council.test", RECORD)
    assert done.status == "completed" and open_tasks(initial, "Y5") == []
    path = run_path(initial, instance.id)
    assert path[-1] == "initial_pep_done"
    assert {"child_becomes_looked_after_start", "set_planned_deadline", "virtual_school_informed",
            "pep_coordinator_informed", "setting_prepares"} <= set(path)
    with initial() as s:
        kinds = [e.kind for e in events(s, "Y5", instance.id)]
        assert kinds[-1] == "instance_completed" and "pep_signed_off" in kinds


def test_the_initial_pep_records_the_deadline_it_answers_and_the_day_its_meeting_was_held(initial, engine):
    instance = to_record(engine, initial, "Y5")
    complete(engine, initial, only_task(initial, "Y5"), "sw@council.test", RECORD)
    with initial() as s:
        recorded = events(s, "Y5", instance.id)
    started = next(e for e in recorded if e.kind == "instance_started")
    # 20 working days after entering care on Monday 2 March 2026: the end of Monday 30 March (BST)
    assert started.data["answers"] == {"kind": "initial", "deadline": "2026-03-30T22:59:59+00:00"}
    assert [e.data["date"] for e in recorded if e.kind == "meeting_held"] == [RECORD["meeting_held_on"]]
    with initial() as s:
        assert [e.kind for e in events(s, "Y5") if e.kind == "entered_care"] == ["entered_care"]


def test_the_router_starts_the_councils_termly_review_with_the_initial_peps_targets(chained, engine):
    instance = to_record(engine, chained, "Y5")
    complete(engine, chained, only_task(chained, "Y5"), "sw@council.test", RECORD)
    with chained() as s:
        router = s.scalars(select(Instance).where(Instance.previous_instance_id == instance.id)).one()
        review = s.scalars(select(Instance).where(Instance.previous_instance_id == router.id)).one()
        assert (router.definition.process_id, review.definition.process_id) == (
            "pep_cycle", "catch_termly_review_due")
    assert caught_payload(engine, chained, "Y5") == {
        "variant": "termly_review_due", "next_meeting_date": "2026-05-13", "previous_targets": TARGETS}


def test_the_councils_review_variant_is_carried_to_the_router(chained, engine):
    to_record(engine, chained, "Y5", review_variant="word_form_review_due")
    complete(engine, chained, only_task(chained, "Y5"), "sw@council.test", RECORD)
    assert caught_payload(engine, chained, "Y5")["variant"] == "word_form_review_due"


# ---- the child leaves care --------------------------------------------------------------------------

def test_a_child_leaving_care_ends_the_initial_pep_without_a_pep_cycle(chained, engine):
    instance = to_arranging(engine, chained, "Y5")
    with chained.begin() as s:
        caught = engine.send_message(s, "child_leaves_care", "Y5",
                                     {"left_care": "2026-03-05", "reason": "Returned home to parents"})
    assert [i.id for i in caught] == [instance.id]
    with chained() as s:
        assert s.get(Instance, instance.id).status == "completed"
        assert s.scalars(select(Instance).where(Instance.previous_instance_id == instance.id)).all() == []
    assert open_tasks(chained, "Y5") == []
    path = run_path(chained, instance.id)
    assert path[-1] == "left_care_end" and "initial_pep_done" not in path
    assert notices(chained, "Y5", "notice")[-1] == (
        "pool:vs_administrator", "Alex Example has left care: the initial PEP is closed")


def test_a_young_child_leaving_care_closes_all_the_preparation_tasks_once(initial, engine):
    instance = to_setting(engine, initial, "EY2", setting="none", school=None)
    assert len(open_tasks(initial, "EY2")) == 3
    with initial.begin() as s:
        engine.send_message(s, "child_leaves_care", "EY2", {"left_care": "2026-03-10", "reason": "Adopted"})
    with initial() as s:
        assert s.get(Instance, instance.id).status == "completed"
        assert s.get(Instance, instance.id).next_timer_at is None
    assert open_tasks(initial, "EY2") == []
    left = [n for n in notices(initial, "EY2", "notice") if "has left care" in n[1]]
    assert len(left) == 1
    assert sweep(engine, initial, "2026-03-20T10:00:01+00:00").instances == 0


def test_a_child_leaving_care_before_the_pep_is_initiated_closes_it(initial, engine):
    instance = enter_care(engine, initial, "P16", school="Riverside College")
    with initial.begin() as s:
        engine.send_message(s, "child_leaves_care", "P16", {"left_care": "2026-03-03", "reason": "Turned 18"})
    with initial() as s:
        assert s.get(Instance, instance.id).status == "completed"
    assert open_tasks(initial, "P16") == []
