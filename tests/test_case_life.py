"""A child's life in care, whatever their PEPs are doing (engine/caselife.py): their details kept by
those allowed, with history; a change of school or leaving care reported for any child in care; one
PEP of a kind at a time; a running PEP withdrawn with a reason."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from engine import calendar, caselife, projection
from engine import clock as clocks
from engine.deploy import Bundle, deploy
from engine.errors import EngineError, FormInvalid, NotAllowed
from engine.models import Child, Event, Instance, PepProjection
from engine.people import add_user

from .conftest import ROOT
from .test_deploy import ENTERING_CARE
from .test_runtime import start_review

MESSAGE_FORMS = ("message_child_becomes_looked_after", "message_child_changes_school", "message_child_leaves_care")
NEW_SCHOOL = {"new_school": "Birch Secondary School", "move_date": "2026-04-20", "reason": "Moved to a new foster home"}
LEFT_CARE = {"left_care": "2026-03-20", "reason": "Returned home"}


def with_message_forms(sessions, clock) -> None:
    """The next version: the test processes, and the shipped forms of the case-life messages."""
    bundle = Bundle()
    for name in MESSAGE_FORMS:
        bundle.add(f"forms/{name}.schema.json", (ROOT / "forms" / f"{name}.schema.json").read_text(encoding="utf-8"))
    with clocks.using(clock), sessions.begin() as s:
        deploy(s, bundle, actor="owner@demo.test")


def kinds(sessions, child_id="C001", *wanted) -> list[Event]:
    with sessions() as s:
        return s.scalars(
            select(Event).where(Event.child_id == child_id, Event.kind.in_(wanted)).order_by(Event.seq)
        ).all()


@pytest.fixture
def case_life(deployed, council, clock):
    with_message_forms(council, clock)
    with clocks.using(clock), council.begin() as s:
        add_user(s, "auditor@demo.test", "Aud Inspector", roles=["Auditor"])
        add_user(s, "vsh@demo.test", "Val Head", roles=["VS Head"])
    return council


# ---- (a) a child's details ----------------------------------------------------------------------


def test_the_social_worker_changes_the_childs_school_and_the_history_keeps_before_and_after(case_life, engine):
    with case_life.begin() as s:
        changes = caselife.edit_details(
            s,
            "C001",
            {"name": "Alex Example", "school": "Oak Primary Academy", "legal_status": "care_order", "in_area": False},
            "sw@demo.test",
            engine.now(),
        )
    assert changes == {
        "school": {"before": "Oak Primary", "after": "Oak Primary Academy"},
        "legal_status": {"before": None, "after": "care_order"},
        "in_area": {"before": None, "after": False},
    }
    with case_life() as s:
        child = s.get(Child, "C001")
        assert (child.school, child.legal_status, child.in_area) == ("Oak Primary Academy", "care_order", False)
    [event] = kinds(case_life, "C001", "child_details_changed")
    assert (event.actor, event.instance_id, event.data["changes"]) == ("sw@demo.test", None, changes)


def test_the_vs_administrator_may_change_any_childs_details_and_nothing_unchanged_is_written(case_life, engine):
    with case_life.begin() as s:
        assert caselife.edit_details(s, "C002", {"date_of_birth": "2012-01-10"}, "admin@demo.test", engine.now()) == {
            "date_of_birth": {"before": "2012-01-09", "after": "2012-01-10"}
        }
        assert caselife.edit_details(s, "C002", {"date_of_birth": "2012-01-10"}, "admin@demo.test", engine.now()) == {}
        assert s.get(Child, "C002").date_of_birth == date(2012, 1, 10)
    assert len(kinds(case_life, "C002", "child_details_changed")) == 1


@pytest.mark.parametrize(
    "who", ["dt@demo.test", "auditor@demo.test", "ea@demo.test", "vsh@demo.test", "nobody@demo.test"]
)
def test_a_designated_teacher_an_auditor_or_an_adviser_may_not_change_a_childs_details(case_life, engine, who):
    with case_life.begin() as s:
        assert not caselife.may_edit_details(s, who, "C001")
        with pytest.raises(caselife.NotPermitted):
            caselife.edit_details(s, "C001", {"school": "Nowhere"}, who, engine.now())
    assert kinds(case_life, "C001", "child_details_changed") == []


def test_a_social_worker_changes_only_their_own_childrens_details(case_life):
    with case_life.begin() as s:
        add_user(s, "sw2@demo.test", "Sol Other-Worker", roles=["Social Worker"])
        assert caselife.may_edit_details(s, "sw@demo.test", "C001")
        assert not caselife.may_edit_details(s, "sw2@demo.test", "C001")


# ---- (b) changes reported whatever the PEPs wait for ----------------------------------------------


def test_a_change_of_school_with_no_pep_waiting_is_recorded_and_the_school_changed(case_life, engine):
    with case_life.begin() as s:
        assert "child_changes_school" in caselife.reports_offered(s, s.get(Child, "C002"), "sw@demo.test")
        assert engine.send_message(s, "child_changes_school", "C002", NEW_SCHOOL, actor="sw@demo.test") == []
    with case_life() as s:
        assert s.get(Child, "C002").school == "Birch Secondary School"
    reported, changed = kinds(case_life, "C002", "change_reported", "child_details_changed")
    assert reported.data == {"message": "child_changes_school", "data": NEW_SCHOOL, "received_by": []}
    assert changed.data == {
        "changes": {"school": {"before": "Elm Academy", "after": "Birch Secondary School"}},
        "message": "child_changes_school",
    }


def test_leaving_care_reaches_the_waiting_pep_and_the_child_is_no_longer_in_care(case_life, engine):
    instance_id = start_review(engine, case_life)
    with case_life.begin() as s:
        assert engine.send_message(s, "child_leaves_care", "C001", LEFT_CARE, actor="sw@demo.test")[0].id == instance_id
        child = s.get(Child, "C001")
        assert child.in_care is False
        offered = caselife.reports_offered(s, child, "sw@demo.test")
        assert "child_changes_school" not in offered and "child_leaves_care" not in offered
        assert "child_becomes_looked_after" in offered  # they may come back into care
        with pytest.raises(EngineError, match="Alex Example is not in care now"):
            engine.send_message(s, "child_changes_school", "C001", NEW_SCHOOL, actor="sw@demo.test")
    [reported] = kinds(case_life, "C001", "change_reported")
    assert reported.data["received_by"] == [instance_id]
    [changed] = kinds(case_life, "C001", "child_details_changed")
    assert changed.data == {"changes": {"in_care": {"before": True, "after": False}}, "message": "child_leaves_care"}


def test_a_change_of_school_is_offered_to_those_its_form_names_and_refused_to_others(case_life, engine):
    with case_life.begin() as s:
        child = s.get(Child, "C001")
        assert set(caselife.reports_offered(s, child, "sw@demo.test")) >= {"child_changes_school", "child_leaves_care"}
        assert "child_changes_school" not in caselife.reports_offered(s, child, "dt@demo.test")
        assert caselife.reports_offered(s, child, "auditor@demo.test") == {}
        with pytest.raises(NotAllowed):
            engine.send_message(s, "child_changes_school", "C001", NEW_SCHOOL, actor="dt@demo.test")


# ---- (c) one PEP of a kind at a time --------------------------------------------------------------


def test_the_same_kind_of_pep_cannot_be_started_twice_for_a_child_while_one_runs(case_life, engine):
    first = start_review(engine, case_life)
    with (
        pytest.raises(EngineError, match="Test termly review is already running for Alex Example"),
        case_life.begin() as s,
    ):
        engine.start(s, "test_review", "C001", actor="sw@demo.test")
    start_review(engine, case_life, "C002")  # another child's is theirs
    with case_life.begin() as s:
        engine.withdraw(s, first, "admin@demo.test", "Started twice by mistake")
    start_review(engine, case_life)  # once the first is withdrawn, it may start again


def test_a_child_already_in_care_is_not_reported_as_coming_into_care_and_no_second_initial_pep_starts(
    demo_council, engine, clock
):
    with clocks.using(clock), demo_council.begin() as s:
        deploy(s, Bundle.from_dirs(ROOT), actor="owner@council.test")
    with demo_council.begin() as s:
        started = engine.send_message(s, "child_becomes_looked_after", "Y5", ENTERING_CARE, actor="sw@council.test")
        assert [i.definition.process_id for i in started] == ["initial_pep"]
        child = s.get(Child, "Y5")
        offered = caselife.reports_offered(s, child, "sw@council.test")
        assert "child_becomes_looked_after" not in offered
        assert {"child_changes_school", "child_leaves_care"} <= set(offered)  # whatever the Initial PEP waits for
    with pytest.raises(EngineError, match="Alex Example is already looked after"), demo_council.begin() as s:
        engine.send_message(s, "child_becomes_looked_after", "Y5", ENTERING_CARE, actor="sw@council.test")
    with demo_council.begin() as s:
        s.get(Child, "Y5").in_care = False  # had they left care with the Initial PEP running, it would not start twice
    with (
        pytest.raises(EngineError, match="Initial PEP.* is already running for Alex Example"),
        demo_council.begin() as s,
    ):
        engine.send_message(s, "child_becomes_looked_after", "Y5", ENTERING_CARE, actor="sw@council.test")
    with demo_council() as s:
        assert len(s.scalars(select(Instance).where(Instance.child_id == "Y5")).all()) == 1


def test_coming_into_care_records_the_day_on_the_childs_record_and_in_the_initial_peps_projection(
    demo_council, engine, clock
):
    """The oversight pages read both: whether the child was in care in a past term, and the initial
    PEP's 10 and 20 working days (the PEP is projected in its step, before the report's day is written)."""
    with clocks.using(clock), demo_council.begin() as s:
        deploy(s, Bundle.from_dirs(ROOT), actor="owner@council.test")
    with demo_council.begin() as s:
        s.get(Child, "Y5").in_care = False
        (started,) = engine.send_message(s, "child_becomes_looked_after", "Y5", ENTERING_CARE, actor="sw@council.test")
    with demo_council() as s:
        row = s.get(PepProjection, started.id)
        assert s.get(Child, "Y5").entered_care == date(2026, 3, 2)
        assert (row.kind, row.entered_care) == ("initial", date(2026, 3, 2))
        assert calendar.to_london(row.ready_by).date() == date(2026, 3, 30)  # 20 working days
        assert {k: getattr(row, k) for k in projection.recompute(s, started.id)} == projection.recompute(s, started.id)


# ---- (d) withdrawing a PEP -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin@demo.test", "vsh@demo.test"])
def test_the_vs_administrator_or_head_withdraws_a_running_pep_with_a_reason(case_life, engine, who):
    instance_id = start_review(engine, case_life)
    with case_life.begin() as s:
        engine.withdraw(s, instance_id, who, "  Started twice by mistake ")
    with case_life() as s:
        instance = s.get(Instance, instance_id)
        assert (instance.status, instance.ended_at is not None) == ("cancelled", True)
    [event] = kinds(case_life, "C001", "instance_cancelled")
    assert (event.actor, event.data["reason"], event.data["withdrawn"]) == (who, "Started twice by mistake", True)


@pytest.mark.parametrize("who", ["dt@demo.test", "sw@demo.test", "auditor@demo.test", "ea@demo.test"])
def test_no_one_else_may_withdraw_a_pep(case_life, engine, who):
    instance_id = start_review(engine, case_life)
    with pytest.raises(NotAllowed), case_life.begin() as s:
        engine.withdraw(s, instance_id, who, "I would rather not")
    with case_life() as s:
        assert s.get(Instance, instance_id).status == "running"


def test_a_pep_is_not_withdrawn_without_a_reason(case_life, engine):
    instance_id = start_review(engine, case_life)
    with pytest.raises(FormInvalid) as refused, case_life.begin() as s:
        engine.withdraw(s, instance_id, "admin@demo.test", "   ")
    assert refused.value.errors == {"reason": "Enter why the PEP is being withdrawn"}
