"""A child's history is hash-chained: it verifies, and any altered, removed or inserted event is named."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select, update

from engine import history
from engine.models import Event

from .test_runtime import MEETING, PEP, complete, only_task, start_review


def a_reviewed_child(engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    complete(engine, council, only_task(council), "dt@demo.test", PEP)


def verify(council, child_id="C001"):
    with council() as s:
        return history.verify(s, child_id)


def event_id(council, kind: str) -> int:
    with council() as s:
        return s.scalar(select(Event.id).where(Event.child_id == "C001", Event.kind == kind).order_by(Event.seq))


def test_every_step_is_recorded_with_who_did_it_and_what_they_submitted(deployed, engine, council):
    a_reviewed_child(engine, council)
    with council() as s:
        completed = [e for e in history.events(s, "C001") if e.kind == "task_completed"]
    assert [(e.actor, e.data["name"]) for e in completed] == [
        ("sw@demo.test", "Arrange the PEP meeting"), ("dt@demo.test", "Complete the PEP")]
    assert completed[1].data["data"] == PEP
    assert completed[1].data["late"] is False and completed[1].data["due_at"] == "2026-03-17T23:59:59+00:00"
    assert completed[0].data["path"] == ["arrange_meeting", "set_deadline"]


def test_an_untouched_history_verifies(deployed, engine, council):
    a_reviewed_child(engine, council)
    result = verify(council)
    assert result.ok and result.events > 5


@pytest.mark.tampered
def test_changing_what_a_teacher_submitted_is_detected(deployed, engine, council):
    a_reviewed_child(engine, council)
    target = event_id(council, "task_completed")
    with council.begin() as s:
        forged = {**s.get(Event, target).data, "data": {"meeting_date": "2026-03-01", "venue": "elsewhere"}}
        s.execute(update(Event).where(Event.id == target).values(data=forged))
    problems = verify(council).problems
    assert len(problems) == 1 and f"id {target}" in problems[0] and "altered" in problems[0]


@pytest.mark.tampered
def test_changing_when_something_happened_is_detected(deployed, engine, council):
    a_reviewed_child(engine, council)
    target = event_id(council, "task_ready")
    with council.begin() as s:
        event = s.get(Event, target)
        s.execute(update(Event).where(Event.id == target).values(at=event.at.replace(year=2025)))
    assert any("altered" in p for p in verify(council).problems)


@pytest.mark.tampered
def test_removing_an_event_from_the_middle_is_detected(deployed, engine, council):
    a_reviewed_child(engine, council)
    target = event_id(council, "task_completed")
    with council.begin() as s:
        s.execute(delete(Event).where(Event.id == target))
    problems = verify(council).problems
    assert any("missing" in p for p in problems) and any("removed or inserted" in p for p in problems)


@pytest.mark.tampered
def test_removing_the_latest_event_is_detected(deployed, engine, council):
    a_reviewed_child(engine, council)
    with council.begin() as s:
        last = s.scalar(select(func.max(Event.id)).where(Event.child_id == "C001"))
        s.execute(delete(Event).where(Event.id == last))
    assert any("removed or added at the end" in p for p in verify(council).problems)


@pytest.mark.tampered
def test_inserting_a_forged_event_with_a_valid_hash_is_detected(deployed, engine, council):
    """A forger who knows the hash function renumbers the later events and slips one in after #2."""
    a_reviewed_child(engine, council)
    with council.begin() as s:
        later = s.scalars(select(Event).where(Event.child_id == "C001", Event.seq > 2).order_by(Event.seq.desc()))
        for event in later:
            s.execute(update(Event).where(Event.id == event.id).values(seq=event.seq + 1))
        second = s.scalar(select(Event).where(Event.child_id == "C001", Event.seq == 2))
        data = {"name": "Signed off"}
        forged_hash = history.event_hash(second.hash, "C001", 3, "task_completed", second.at, "forger@demo.test",
                                         second.instance_id, None, data)
        s.add(Event(child_id="C001", seq=3, kind="task_completed", at=second.at, actor="forger@demo.test",
                    instance_id=second.instance_id, task_id=None, data=data, prev_hash=second.hash, hash=forged_hash))
    problems = verify(council).problems
    assert any("#4" in p and "removed or inserted" in p for p in problems), problems


@pytest.mark.tampered
def test_one_childs_chain_is_independent_of_anothers(deployed, engine, council):
    a_reviewed_child(engine, council)
    start_review(engine, council, "C002")
    with council.begin() as s:
        s.execute(delete(Event).where(Event.child_id == "C002"))
    assert verify(council, "C001").ok
    assert not verify(council, "C002").ok
