"""Auditors can trust a child's history: re-executing its recorded inputs gives back every stored state,
and a forged answer, a removed or inserted event, or a tampered instance row is caught and named.

(Every other engine test is also replayed after it runs: see `history_replays` in conftest.py.)
"""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from engine import clock as clocks
from engine import history, history_keys
from engine.deploy import deploy_changes, latest_bundle
from engine.models import Child, Event, Instance
from engine.replay import replay_child
from engine.serializer import _digest_v1, state_digest, state_matches

from .helpers import sweep
from .test_runtime import MEETING, PEP, complete, only_task, start_review, to_qa

pytestmark = pytest.mark.tampered  # these tests forge histories on purpose: no replay check afterwards


def replay(engine, council, child_id="C001"):
    with council() as s:
        return replay_child(s, engine, child_id)


def rechain(session, child_id="C001") -> None:
    """What a forger with database access and the history key would do after editing events: recompute
    every hash (without the key they cannot: tests/test_history.py)."""
    prev, key = history.GENESIS, history_keys.signing_key()
    for event in session.scalars(select(Event).where(Event.child_id == child_id).order_by(Event.seq)):
        digest = history.event_hash(
            prev,
            child_id,
            event.seq,
            event.kind,
            event.at,
            event.actor,
            event.instance_id,
            event.task_id,
            event.data,
            key,
        )
        session.execute(update(Event).where(Event.id == event.id).values(prev_hash=prev, hash=digest, key_id=key.id))
        prev = digest
    session.get(Child, child_id).history_head = prev


def frame_of(result, kind, name=None):
    return next(f for f in result.frames if f.event.kind == kind and (name is None or f.event.data.get("name") == name))


def test_a_review_replays_step_by_step_with_the_path_the_waits_and_the_data(deployed, engine, council):
    qa = to_qa(engine, council)
    complete(engine, council, qa, "ea@demo.test", {"rating": "Green", "feedback": "Clear targets."})
    result = replay(engine, council)
    assert result.ok, result.problems
    assert result.steps_checked == 4  # started, meeting arranged, PEP completed, QA

    started = frame_of(result, "instance_started")
    assert started.check == "match" and started.active == ["arrange_meeting", "left_care"]
    arranged = frame_of(result, "task_completed", "Arrange the PEP meeting")
    assert arranged.completed[-2:] == ["arrange_meeting", "set_deadline"]
    assert "complete_pep" in arranged.active and "reminder" in arranged.active
    assert arranged.data["meeting_date"] == MEETING["meeting_date"] and "attendance_percent" not in arranged.data
    pep = frame_of(result, "task_completed", "Complete the PEP")
    assert pep.data["attendance_percent"] == PEP["attendance_percent"] and pep.active == ["qa"]
    signed_off = frame_of(result, "task_completed", "Quality-assure the PEP")
    assert signed_off.active == [] and signed_off.completed[-1] == "done" and signed_off.data["rating"] == "Green"

    ready = frame_of(result, "task_ready", "Complete the PEP")
    assert ready.check == "match" and ready.definition_id == started.definition_id


def test_claims_and_views_change_no_process_state_and_are_not_re_executed(deployed, engine, council):
    qa = to_qa(engine, council)
    with council.begin() as s:
        engine.claim(s, qa.id, "ea@demo.test")
    result = replay(engine, council)
    assert result.ok and frame_of(result, "task_claimed").check == "unchecked"


def test_timer_firings_are_re_run_at_their_recorded_times(deployed, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    sweep(engine, council, "2026-03-20T09:00:00+00:00")  # the PEP is late: the advisers chase it
    engine.clock.set("2031-01-01T00:00:00+00:00")  # replay does not depend on today's date
    result = replay(engine, council)
    assert result.ok, result.problems
    late = frame_of(result, "timer_fired", "PEP late")
    assert late.check == "match" and "chase_late_pep" in late.active


def test_a_forger_who_holds_the_key_changes_an_answer_and_recomputes_the_chain_is_caught(deployed, engine, council):
    to_qa(engine, council)
    with council.begin() as s:
        event = s.scalar(select(Event).where(Event.kind == "task_completed").order_by(Event.seq))
        forged = {**event.data, "data": {**event.data["data"], "meeting_date": "2026-03-12"}}
        s.execute(update(Event).where(Event.id == event.id).values(data=forged))
        rechain(s)
        seq = event.seq
    with council() as s:
        assert history.verify(s, "C001").ok, "the chain alone cannot see it, signed with the key"
    problems = replay(engine, council).problems
    assert problems[0] == (
        f"event #{seq} (task_completed Arrange the PEP meeting, instance 1): "
        "re-executing it does not give the state that was stored"
    )


def test_changing_an_event_without_the_chain_is_named_twice(deployed, engine, council):
    to_qa(engine, council)
    with council.begin() as s:
        event = s.scalar(select(Event).where(Event.kind == "task_completed").order_by(Event.seq.desc()))
        s.execute(
            update(Event)
            .where(Event.id == event.id)
            .values(data={**event.data, "data": {**event.data["data"], "attendance_percent": 100}})
        )
    problems = replay(engine, council).problems
    assert f"event #{event.seq} (id {event.id}, task_completed): content altered" in problems
    assert any(p.startswith(f"event #{event.seq} (task_completed Complete the PEP") for p in problems)


def test_a_deleted_step_is_named(deployed, engine, council):
    to_qa(engine, council)
    with council.begin() as s:
        event = s.scalar(select(Event).where(Event.kind == "task_completed").order_by(Event.seq))
        s.execute(delete(Event).where(Event.id == event.id))
    problems = replay(engine, council).problems
    assert any(f"#{event.seq} missing" in p for p in problems), problems


def test_an_inserted_event_is_named(deployed, engine, council):
    to_qa(engine, council)
    with council.begin() as s:
        last = s.scalar(select(Event).where(Event.child_id == "C001").order_by(Event.seq.desc()))
        s.add(
            Event(
                child_id="C001",
                seq=last.seq + 1,
                kind="task_completed",
                at=last.at,
                actor="forger@demo.test",
                instance_id=last.instance_id,
                task_id=None,
                data={"name": "Quality-assure the PEP"},
                prev_hash=last.hash,
                hash="f" * 64,
            )
        )
    problems = replay(engine, council).problems
    assert any(f"event #{last.seq + 1}" in p and "content altered" in p for p in problems), problems


def test_a_tampered_instance_row_is_named(deployed, engine, council):
    instance_id = to_qa(engine, council).instance_id
    with council.begin() as s:
        state = s.get(Instance, instance_id).state
        next(iter(state["tasks"].values()))["data"]["child"]["name"] = "Someone Else"
        s.execute(update(Instance).where(Instance.id == instance_id).values(state=state))
    assert replay(engine, council).problems == [
        f"instance {instance_id}: its stored state is not the state its history leads to"
    ]


def test_a_state_digest_recorded_before_version_2_still_verifies(deployed, engine, council):
    instance_id = to_qa(engine, council).instance_id
    with council() as s:
        state = s.get(Instance, instance_id).state
    legacy = _digest_v1(state)  # how steps recorded their state before digest version 2
    assert state_matches(state, legacy) and state_matches(state, state_digest(state))
    altered = {**state, "success": not state["success"]}
    assert not state_matches(altered, legacy) and not state_matches(altered, state_digest(state))


def test_the_version_that_ran_is_replayed_after_a_new_one_is_deployed(deployed, engine, council, clock):
    first_review = start_review(engine, council)
    path = "processes/review.bpmn"
    with clocks.using(clock), council.begin() as s:
        xml = latest_bundle(s).files[path]
        deploy_changes(s, {path: xml.replace("Arrange the PEP meeting", "Arrange the meeting")}, "owner@demo.test")
        engine.cancel(s, first_review, "admin@demo.test", reason="started again on the new version")
    start_review(engine, council)
    result = replay(engine, council)
    assert result.ok, result.problems
    first, second = [f for f in result.frames if f.event.kind == "instance_started"]
    assert first.definition_id != second.definition_id
    assert [f.event.data["name"] for f in result.frames if f.event.kind == "task_ready"] == [
        "Arrange the PEP meeting",
        "Arrange the meeting",
    ]


def test_replay_runs_the_engines_own_moves_so_a_change_to_how_answers_apply_needs_no_change_to_replay(
    deployed, engine, council, monkeypatch
):
    """An answer's move is written once (engine/moves.py): change it, and the live step and replay both
    make the changed move, so the history still verifies; replay alone making the old move would not."""
    from engine import moves

    stock = moves.answer

    def answer_and_note(task, data, advance, ran=lambda task: None):
        stock(task, {**data, "noted_by_the_move": True}, advance, ran)

    monkeypatch.setattr(moves, "answer", answer_and_note)
    qa = to_qa(engine, council)
    complete(engine, council, qa, "ea@demo.test", {"rating": "Green", "feedback": "Clear targets."})
    result = replay(engine, council)
    assert result.ok, result.problems
    assert frame_of(result, "task_completed", "Complete the PEP").data["noted_by_the_move"] is True

    monkeypatch.setattr(moves, "answer", stock)  # the history was made by the changed move
    assert not replay(engine, council).ok
