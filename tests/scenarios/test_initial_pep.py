"""The initial PEP (processes/initial_pep.bpmn) for a child who becomes looked after.

The clock is frozen on Monday 2 March 2026; children enter care that day unless a test says otherwise.
Working-day deadlines from 2 March 2026: 5 working days = Monday 9 March, 10 = Monday 16 March,
20 = Monday 30 March (British Summer Time from 29 March: end of day is 22:59:59 UTC).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.errors import FormInvalid, NotAllowed
from engine.history import events
from engine.models import Instance
from tests.conftest import shipped_bundle

from ..helpers import Council
from .test_pep_cycle import bundle_with_catchers, caught_payload

ENTERED = "2026-03-02"
INITIATE = {
    "initiated_on": ENTERED,
    "sent_to": "Dana Teacher, designated teacher",
    "sent_by": "Liquid Logic",
    "sent_securely": True,
}
# meeting on Friday 20 March at 10:00; the initial CLA review on Monday 30 March
ARRANGE = {
    "meeting_date": "2026-03-20",
    "meeting_time": "10:00",
    "venue": "Oak Primary, meeting room 2",
    "initial_cla_review_date": "2026-03-30",
    "invited": [{"name": "Dana Teacher", "role": "designated teacher"}, {"name": "Cara Carer", "role": "foster carer"}],
}
SETTING = {
    "attendance_percent": 91.5,
    "attainment": "Working towards the expected standard in reading",
    "strengths": "Loves science and football",
    "needs_identified": "Some anxiety at transitions (SEMH)",
    "sen_status": "SEN support",
}
TARGETS = [
    {
        "what": "Read aloud to an adult three times a week",
        "category": "academic",
        "strategies": "Daily reading with a key adult",
        "evidence_of_impact": "Reading age up 6 months",
        "who": "Class teacher and carer",
        "by_when": "2026-05-22",
        "pp_plus_amount": 300,
    }
]
RECORD = {
    "meeting_held_on": "2026-03-20",
    "attendees": [
        {"name": "Sam Social-Worker", "role": "social worker"},
        {"name": "Dana Teacher", "role": "designated teacher"},
    ],
    "attendance_percent": 91.5,
    "attainment": "Working towards in reading",
    "needs": "SEMH: anxiety",
    "targets": TARGETS,
    "child_views": "I like my new school",
    "carer_input": "Settling well at home",
    "next_meeting_date": "2026-05-13",
    "next_meeting_time": "09:30",
}


@pytest.fixture
def initial(demo_council, engine):
    return Council(engine, demo_council).deployed(shipped_bundle("initial_pep.bpmn", forms=("initial_",)))


@pytest.fixture
def chained(demo_council, engine):
    """The initial PEP with the router and stand-ins for the review variants."""
    return Council(engine, demo_council).deployed(
        bundle_with_catchers("initial_pep.bpmn", "pep_cycle.bpmn", forms=("initial_",))
    )


# ---- the way to each step -----------------------------------------------------------------------


def enter_care(
    council, child_id, entry="planned", setting="school", school="Oak Primary", entered=ENTERED, **extra
) -> Instance:
    data = {"entry": entry, "entered_care": entered, "education_setting": setting, "school": school, **extra}
    started = council.send("child_becomes_looked_after", data, child_id, actor="sw@council.test")
    assert len(started) == 1
    return started[0]


def to_arranging(council, child_id="Y5", **entry) -> Instance:
    instance = enter_care(council, child_id, **entry)
    council.complete(council.only_task(child=child_id), "sw@council.test", INITIATE)
    return instance


def to_setting(council, child_id="Y5", arrange=ARRANGE, **entry) -> Instance:
    instance = to_arranging(council, child_id, **entry)
    council.complete(council.only_task(child=child_id), "sw@council.test", arrange)
    return instance


def to_record(council, child_id="Y5", **entry) -> Instance:
    instance = to_setting(council, child_id, **entry)
    council.complete(council.only_task(child=child_id), "dt@oak.test", SETTING)
    return instance


# ---- 1a / 1b: initiating the PEP -----------------------------------------------------------------


def test_planned_entry_the_social_worker_initiates_the_pep_within_five_working_days(initial, engine):
    enter_care(initial, "Y5")
    first = initial.only_task(child="Y5")
    assert (first.spec_id, first.lane, first.form) == (
        "initiate_pep_sw",
        "Social Worker",
        "initial_initiate_pep.schema.json",
    )
    assert initial.assignee(first) == "sw@council.test"
    assert first.due_at.isoformat() == "2026-03-09T23:59:59+00:00"
    text = initial.view(first, "sw@council.test")["instructions"]
    assert "is becoming looked after (planned" in text
    assert "send it securely" in text and "designated teacher / practitioner at Oak Primary" in text


def test_emergency_entry_the_pep_is_initiated_immediately_by_the_next_working_day(initial, engine):
    enter_care(initial, "Y5", entry="emergency")
    first = initial.only_task(child="Y5")
    assert first.due_at.isoformat() == "2026-03-03T23:59:59+00:00"
    assert (
        "came into care in an emergency on 2 March 2026: initiate the PEP on Liquid Logic immediately"
        in initial.view(first, "sw@council.test")["instructions"]
    )


def test_an_emergency_pep_not_initiated_in_time_is_flagged_and_the_social_worker_keeps_it(initial, engine):
    enter_care(initial, "Y5", entry="emergency")
    first = initial.only_task(child="Y5")
    assert initial.sweep("2026-03-03T23:00:00+00:00").timers_fired == 0
    assert initial.sweep("2026-03-04T00:00:01+00:00").timers_fired == 1
    assert initial.only_task(child="Y5").id == first.id
    assert initial.told(kind="overdue", child="Y5") == {"sw@council.test", "pool:vs_administrator"}


def test_the_pep_must_be_sent_securely_and_the_form_is_checked(initial, engine):
    enter_care(initial, "Y5")
    with pytest.raises(FormInvalid) as caught:
        initial.complete(
            initial.only_task(child="Y5"),
            "sw@council.test",
            {"initiated_on": "2 March", "sent_to": "DT", "sent_by": "Post", "sent_securely": False},
        )
    assert set(caught.value.errors) == {"initiated_on", "sent_by", "sent_securely"}
    assert caught.value.errors["sent_by"] == "Select sent securely by"


def test_a_teacher_cannot_initiate_the_pep(initial, engine):
    enter_care(initial, "Y5")
    with pytest.raises(NotAllowed):
        initial.complete(initial.only_task(child="Y5"), "dt@oak.test", INITIATE)


def test_the_virtual_school_is_informed_when_the_pep_is_initiated(initial, engine):
    to_arranging(initial, "Y5")
    [(who, subject)] = initial.notes("notice", "Y5")
    assert (who, subject) == ("pool:vs_administrator", "Alex Example has become looked after: initial PEP initiated")
    arrange = initial.only_task(child="Y5")
    assert (arrange.spec_id, arrange.lane) == ("arrange_initial_meeting", "Social Worker")
    assert arrange.due_at.isoformat() == "2026-03-16T23:59:59+00:00"  # 10 working days


@pytest.mark.parametrize("child_id", ["P16", "P18"])
def test_at_16_plus_the_leaving_care_worker_or_personal_adviser_initiates_the_pep(initial, engine, child_id):
    enter_care(initial, child_id, school="Riverside College")
    first = initial.only_task(child=child_id)
    assert (first.spec_id, first.lane) == ("initiate_pep_pa", "Personal Adviser")
    assert initial.assignee(first) == "pa@council.test"
    assert (
        "Leaving Care Worker / Personal Adviser initiates the PEP"
        in initial.view(first, "pa@council.test")["instructions"]
    )
    with pytest.raises(NotAllowed):
        initial.complete(first, "sw2@council.test", INITIATE)
    initial.complete(first, "pa@council.test", INITIATE)
    assert initial.only_task(child=child_id).spec_id == "arrange_initial_meeting"


def test_a_personal_adviser_who_has_not_initiated_the_pep_is_flagged(initial, engine):
    enter_care(initial, "P16", entry="emergency", school="Riverside College")
    initial.sweep("2026-03-04T00:00:01+00:00")
    assert initial.told(kind="overdue", child="P16") == {"pa@council.test", "pool:vs_administrator"}
    assert initial.only_task(child="P16").spec_id == "initiate_pep_pa"


def test_a_year_11_pupil_under_16_in_school_year_terms_has_the_social_worker_initiate(initial, engine):
    enter_care(initial, "Y11", school="Elm Academy")
    assert initial.only_task(child="Y11").spec_id == "initiate_pep_sw"


# ---- 2: arranging the initial meeting -------------------------------------------------------------


def test_the_pep_coordinator_is_told_the_date_time_and_venue(initial, engine):
    to_setting(initial, "Y5")
    told = initial.notes("notice", "Y5")[-1]
    assert told == (
        "pool:vs_administrator",
        "Initial PEP meeting for Alex Example: 2026-03-20 at 10:00, Oak Primary, meeting room 2",
    )
    assert initial.told(kind="escalation", child="Y5") == set()


def test_arranging_the_meeting_checks_the_date_time_venue_and_cla_review(initial, engine):
    to_arranging(initial, "Y5")
    with pytest.raises(FormInvalid) as caught:
        initial.complete(
            initial.only_task(child="Y5"),
            "sw@council.test",
            {"meeting_date": "20/03/2026", "meeting_time": "10am", "invited": []},
        )
    assert set(caught.value.errors) == {"meeting_date", "meeting_time", "venue", "initial_cla_review_date", "invited"}
    assert caught.value.errors["meeting_time"] == "Use the 24-hour clock, for example 14:30"


def test_the_social_worker_is_reminded_then_a_meeting_not_arranged_in_10_working_days_is_escalated(initial, engine):
    to_arranging(initial, "Y5")
    arrange = initial.only_task(child="Y5")
    assert initial.sweep("2026-03-13T00:00:00+00:00").timers_fired == 1  # Thursday 12 March, end of day
    assert initial.notes("reminder", "Y5") == [
        ("sw@council.test", "Arrange the initial PEP meeting for Alex Example by 2026-03-16T23:59:59+00:00")
    ]
    assert initial.sweep("2026-03-16T23:00:00+00:00").timers_fired == 0
    assert initial.sweep("2026-03-17T00:00:00+00:00").timers_fired == 1
    assert initial.told(kind="overdue", child="Y5") == {"pool:vs_administrator", "sw@council.test"}
    assert initial.only_task(child="Y5").id == arrange.id  # the social worker keeps the task
    initial.complete(arrange, "sw@council.test", ARRANGE)
    assert initial.only_task(child="Y5").spec_id == "setting_prepares"


@pytest.mark.parametrize(
    ("meeting_date", "review_date"),
    [("2026-03-31", "2026-04-02"), ("2026-03-20", "2026-03-19")],
    ids=["after 20 working days", "after the initial CLA review"],
)
def test_a_meeting_booked_too_late_is_escalated_to_the_vs_head(initial, engine, meeting_date, review_date):
    to_setting(initial, "Y5", arrange={**ARRANGE, "meeting_date": meeting_date, "initial_cla_review_date": review_date})
    assert initial.told(kind="escalation", child="Y5") == {"pool:vs_head", "pool:vs_administrator", "sw@council.test"}
    assert initial.notes("escalation", "Y5")[0][1] == "Initial PEP meeting for Alex Example is booked too late"
    assert initial.only_task(child="Y5").spec_id == "setting_prepares"  # the PEP goes on


def test_a_meeting_the_working_day_before_the_cla_review_is_in_time(initial, engine):
    to_setting(
        initial, "Y5", arrange={**ARRANGE, "meeting_date": "2026-03-27", "initial_cla_review_date": "2026-03-30"}
    )
    assert initial.told(kind="escalation", child="Y5") == set()


# ---- the information for the meeting --------------------------------------------------------------


def test_the_designated_teacher_prepares_the_settings_information_before_the_meeting(initial, engine):
    to_setting(initial, "Y5")
    prep = initial.only_task(child="Y5")
    assert (prep.spec_id, prep.lane, initial.assignee(prep)) == (
        "setting_prepares",
        "Designated Teacher",
        "dt@oak.test",
    )
    assert prep.due_at.isoformat() == "2026-03-20T10:00:00+00:00"  # when the meeting starts
    assert "bring copies to the meeting" in initial.view(prep, "dt@oak.test")["instructions"]
    with pytest.raises(FormInvalid) as caught:
        initial.complete(prep, "dt@oak.test", {**SETTING, "attendance_percent": 105})
    assert caught.value.errors == {"attendance_percent": "Attendance this year (%) must be 100 or less"}
    with pytest.raises(NotAllowed):
        initial.complete(prep, "dt@elm.test", SETTING)


def test_the_designated_teacher_is_reminded_and_a_meeting_starts_without_the_settings_information(initial, engine):
    to_setting(initial, "Y5")
    assert initial.sweep("2026-03-19T10:00:01+00:00").timers_fired == 1
    assert initial.told(kind="reminder", child="Y5") == {"dt@oak.test"}
    assert initial.sweep("2026-03-20T10:00:01+00:00").timers_fired == 1
    record = initial.only_task(child="Y5")
    assert record.spec_id == "record_initial_pep"
    assert initial.told(kind="overdue", child="Y5") == {"sw@council.test", "pool:vs_administrator"}


def test_an_early_years_child_goes_to_the_settings_designated_practitioner(initial, engine):
    to_setting(initial, "EY3", setting="early_years", school="Little Acorns Nursery")
    prep = initial.only_task(child="EY3")
    assert (prep.spec_id, initial.assignee(prep)) == ("setting_prepares", "dp@nursery.test")


def test_a_young_child_not_in_an_early_years_setting_goes_to_the_health_visitor_and_carers(initial, engine):
    enter_care(initial, "EY2", setting="none", school=None)
    first = initial.only_task(child="EY2")
    text = initial.view(first, "sw@council.test")["instructions"]
    assert "the Health Visitor and the foster carers (and the parents if appropriate)" in text
    assert "not yet in an early-years setting" in text
    initial.complete(first, "sw@council.test", {**INITIATE, "sent_to": "Hana Visitor and Cara Carer"})
    initial.complete(initial.only_task(child="EY2"), "sw@council.test", ARRANGE)
    tasks = {t.spec_id: initial.assignee(t) for t in initial.open_tasks("EY2")}
    assert tasks == {
        "health_visitor_prepares": "hv@health.test",
        "carers_prepare": "carer@home.test",
        "sw_prepares_development": "sw@council.test",
    }
    assert (
        "there is no education-setting input"
        in initial.view(initial.task("sw_prepares_development", "EY2"), "sw@council.test")["instructions"]
    )
    initial.complete(
        initial.task("health_visitor_prepares", "EY2"),
        "hv@health.test",
        {"development_summary": "2-year check due; walking and babbling", "health_needs": "None known"},
    )
    initial.complete(
        initial.task("carers_prepare", "EY2"),
        "carer@home.test",
        {"carer_observations": "Loves stacking blocks", "parents_contributed": False},
    )
    assert [t.spec_id for t in initial.open_tasks("EY2")] == ["sw_prepares_development"]
    initial.complete(
        initial.task("sw_prepares_development", "EY2"),
        "sw@council.test",
        {"development_information": "Late to talk; referred for speech and language"},
    )
    record = initial.only_task(child="EY2")
    assert record.spec_id == "record_initial_pep"
    assert "There is no education-setting input" in initial.view(record, "sw@council.test")["instructions"]
    with initial.sessions() as s:
        data = engine.task_view(s, record.id, "sw@council.test")["data"]
    assert data["health_needs"] == "None known" and data["carer_observations"] == "Loves stacking blocks"
    with (
        initial.sessions() as s
    ):  # the leaving-care watcher of the preparation stopped; the meeting task catches it now
        assert s.get(Instance, record.instance_id).waiting_messages == ["child_leaves_care"]
    done = initial.complete(
        record, "sw@council.test", {**RECORD, "child_views": "Smiles and babbles with the carer (observed)"}
    )
    assert done.status == "completed" and initial.path(done.id)[-1] == "initial_pep_done"


def test_the_carers_are_the_only_ones_to_answer_the_carers_task(initial, engine):
    to_setting(initial, "EY2", setting="none", school=None)
    with pytest.raises(NotAllowed):
        initial.complete(initial.task("carers_prepare", "EY2"), "hv@health.test", {"carer_observations": "Fine"})


def test_a_young_childs_meeting_goes_ahead_without_missing_information(initial, engine):
    to_setting(initial, "EY2", setting="none", school=None)
    initial.complete(
        initial.task("carers_prepare", "EY2"), "carer@home.test", {"carer_observations": "Loves stacking blocks"}
    )
    initial.sweep("2026-03-20T10:00:01+00:00")
    assert initial.only_task(child="EY2").spec_id == "record_initial_pep"
    subjects = [subject for _, subject in initial.notes("overdue", "EY2")]
    assert "The Health Visitor's information for Gray Invented's initial PEP was not ready" in subjects
    assert "The development information for Gray Invented's initial PEP was not ready" in subjects


def test_a_child_without_a_school_place_gets_the_virtual_schools_support(initial, engine):
    enter_care(initial, "NOSCHOOL", setting="none", school=None)
    assert (
        "the Virtual School, which supports you"
        in initial.view(initial.only_task(child="NOSCHOOL"), "sw@council.test")["instructions"]
    )
    initial.complete(initial.only_task(child="NOSCHOOL"), "sw@council.test", {**INITIATE, "sent_to": "Virtual School"})
    initial.complete(initial.only_task(child="NOSCHOOL"), "sw@council.test", ARRANGE)
    support = initial.only_task(child="NOSCHOOL")
    assert (support.spec_id, support.lane, support.pooled) == ("vs_supports_no_place", "VS Education Adviser", True)
    assert "translator" in initial.view(support, "ea@council.test")["instructions"]
    with pytest.raises(FormInvalid) as caught:  # a translator is needed: which language?
        initial.complete(
            support,
            "ea@council.test",
            {
                "current_education_offer": "Tuition 10 hours a week",
                "action_to_secure_place": "Admissions",
                "translator_required": True,
            },
        )
    assert set(caught.value.errors) == {"translator_language"}
    initial.complete(
        support,
        "ea@council.test",
        {
            "current_education_offer": "Tuition 10 hours a week",
            "action_to_secure_place": "Fair access panel",
            "translator_required": True,
            "translator_language": "Tigrinya",
        },
    )
    assert initial.only_task(child="NOSCHOOL").spec_id == "record_initial_pep"
    done = initial.complete(initial.only_task(child="NOSCHOOL"), "sw@council.test", RECORD)
    assert done.status == "completed" and initial.open_tasks("NOSCHOOL") == []  # nobody missing on the way
    assert initial.notes("task_needs_person", "NOSCHOOL") == []


def test_a_meeting_without_the_virtual_schools_input_is_flagged_to_the_vs_head(initial, engine):
    to_setting(initial, "NOSCHOOL", setting="none", school=None)
    initial.sweep("2026-03-20T10:00:01+00:00")
    assert initial.only_task(child="NOSCHOOL").spec_id == "record_initial_pep"
    assert initial.told(kind="overdue", child="NOSCHOOL") == {"pool:vs_head", "sw@council.test"}


# ---- the meeting held within 20 working days, the initial PEP complete -----------------------------


def test_the_initial_pep_is_due_before_the_initial_cla_review(initial, engine):
    to_record(initial, "Y5")
    record = initial.only_task(child="Y5")
    assert (record.spec_id, record.lane, initial.assignee(record)) == (
        "record_initial_pep",
        "Social Worker",
        "sw@council.test",
    )
    # the working day before the review on Monday 30 March: Friday 27 March (still GMT)
    assert record.due_at.isoformat() == "2026-03-27T23:59:59+00:00"


def test_without_an_earlier_cla_review_the_initial_pep_is_due_in_20_working_days(initial, engine):
    to_setting(initial, "Y5", arrange={**ARRANGE, "initial_cla_review_date": "2026-04-01"})
    initial.complete(initial.only_task(child="Y5"), "dt@oak.test", SETTING)
    assert initial.only_task(child="Y5").due_at.isoformat() == "2026-03-30T22:59:59+00:00"  # Monday 30 March, BST


def test_an_initial_pep_not_held_in_time_is_escalated_to_the_vs_head_and_pep_coordinator(initial, engine):
    to_record(initial, "Y5")
    record = initial.only_task(child="Y5")
    assert initial.sweep("2026-03-26T00:00:00+00:00").timers_fired == 1  # Wednesday 25 March, end of day
    assert initial.told(kind="reminder", child="Y5") == {"sw@council.test"}
    assert initial.sweep("2026-03-28T00:00:00+00:00").timers_fired == 1
    assert initial.told(kind="escalation", child="Y5") == {"pool:vs_head", "pool:vs_administrator", "sw@council.test"}
    assert initial.notes("escalation", "Y5")[0][1] == "Initial PEP for Alex Example not held within 20 working days"
    assert initial.only_task(child="Y5").id == record.id  # the social worker keeps it
    initial.complete(record, "sw@council.test", RECORD)


def test_the_initial_pep_records_its_content_and_refuses_incomplete_targets(initial, engine):
    to_record(initial, "Y5")
    record = initial.only_task(child="Y5")
    text = initial.view(record, "sw@council.test")["instructions"]
    assert "Record the child's views and the carers' input, and set the date of the next PEP meeting" in text
    bad = {**RECORD, "targets": [{"what": "Read", "by_when": "soon", "pp_plus_amount": -5}], "attendance_percent": -1}
    bad.pop("child_views")
    with pytest.raises(FormInvalid) as caught:
        initial.complete(record, "sw@council.test", bad)
    assert set(caught.value.errors) == {
        "attendance_percent",
        "child_views",
        "targets.0.by_when",
        "targets.0.evidence_of_impact",
        "targets.0.pp_plus_amount",
        "targets.0.strategies",
        "targets.0.who",
    }
    with pytest.raises(NotAllowed):
        initial.complete(record, "dt@oak.test", RECORD)


def test_the_initial_pep_ends_by_throwing_pep_cycle_due_with_the_next_date_and_targets(initial, engine):
    instance = to_record(initial, "Y5")
    done = initial.complete(initial.only_task(child="Y5"), "sw@council.test", RECORD)
    assert done.status == "completed" and initial.open_tasks("Y5") == []
    path = initial.path(instance.id)
    assert path[-1] == "initial_pep_done"
    assert {
        "child_becomes_looked_after_start",
        "set_planned_deadline",
        "virtual_school_informed",
        "pep_coordinator_informed",
        "setting_prepares",
    } <= set(path)
    with initial.sessions() as s:
        kinds = [e.kind for e in events(s, "Y5", instance.id)]
        assert kinds[-1] == "instance_completed" and "pep_signed_off" in kinds


def test_the_initial_pep_records_the_deadline_it_answers_and_the_day_its_meeting_was_held(initial, engine):
    instance = to_record(initial, "Y5")
    initial.complete(initial.only_task(child="Y5"), "sw@council.test", RECORD)
    with initial.sessions() as s:
        recorded = events(s, "Y5", instance.id)
    started = next(e for e in recorded if e.kind == "instance_started")
    # 20 working days after entering care on Monday 2 March 2026: the end of Monday 30 March (BST)
    assert started.data["answers"] == {"kind": "initial", "deadline": "2026-03-30T22:59:59+00:00"}
    assert [e.data["date"] for e in recorded if e.kind == "meeting_held"] == [RECORD["meeting_held_on"]]
    with initial.sessions() as s:
        assert [e.kind for e in events(s, "Y5") if e.kind == "entered_care"] == ["entered_care"]


def test_the_router_starts_the_councils_termly_review_with_the_initial_peps_targets(chained, engine):
    instance = to_record(chained, "Y5")
    chained.complete(chained.only_task(child="Y5"), "sw@council.test", RECORD)
    with chained.sessions() as s:
        router = s.scalars(select(Instance).where(Instance.previous_instance_id == instance.id)).one()
        review = s.scalars(select(Instance).where(Instance.previous_instance_id == router.id)).one()
        assert (router.definition.process_id, review.definition.process_id) == ("pep_cycle", "catch_termly_review_due")
    assert caught_payload(chained, "Y5") == {
        "variant": "termly_review_due",
        "next_meeting_date": "2026-05-13",
        "previous_targets": TARGETS,
    }


def test_the_councils_review_variant_is_carried_to_the_router(chained, engine):
    to_record(chained, "Y5", review_variant="word_form_review_due")
    chained.complete(chained.only_task(child="Y5"), "sw@council.test", RECORD)
    assert caught_payload(chained, "Y5")["variant"] == "word_form_review_due"


# ---- the child leaves care --------------------------------------------------------------------------


def test_a_child_leaving_care_ends_the_initial_pep_without_a_pep_cycle(chained, engine):
    instance = to_arranging(chained, "Y5")
    with chained.sessions.begin() as s:
        caught = engine.send_message(
            s, "child_leaves_care", "Y5", {"left_care": "2026-03-05", "reason": "Returned home to parents"}
        )
    assert [i.id for i in caught] == [instance.id]
    with chained.sessions() as s:
        assert s.get(Instance, instance.id).status == "completed"
        assert s.scalars(select(Instance).where(Instance.previous_instance_id == instance.id)).all() == []
    assert chained.open_tasks("Y5") == []
    path = chained.path(instance.id)
    assert path[-1] == "left_care_end" and "initial_pep_done" not in path
    assert chained.notes("notice", "Y5")[-1] == (
        "pool:vs_administrator",
        "Alex Example has left care: the initial PEP is closed",
    )


def test_a_young_child_leaving_care_closes_all_the_preparation_tasks_once(initial, engine):
    instance = to_setting(initial, "EY2", setting="none", school=None)
    assert len(initial.open_tasks("EY2")) == 3
    with initial.sessions.begin() as s:
        engine.send_message(s, "child_leaves_care", "EY2", {"left_care": "2026-03-10", "reason": "Adopted"})
    with initial.sessions() as s:
        assert s.get(Instance, instance.id).status == "completed"
        assert s.get(Instance, instance.id).next_timer_at is None
    assert initial.open_tasks("EY2") == []
    left = [n for n in initial.notes("notice", "EY2") if "has left care" in n[1]]
    assert len(left) == 1
    assert initial.sweep("2026-03-20T10:00:01+00:00").instances == 0


def test_a_child_leaving_care_before_the_pep_is_initiated_closes_it(initial, engine):
    instance = enter_care(initial, "P16", school="Riverside College")
    with initial.sessions.begin() as s:
        engine.send_message(s, "child_leaves_care", "P16", {"left_care": "2026-03-03", "reason": "Turned 18"})
    with initial.sessions() as s:
        assert s.get(Instance, instance.id).status == "completed"
    assert initial.open_tasks("P16") == []
