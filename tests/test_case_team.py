"""Who holds a child's work: the case team. Changes are the engine's rules, from the web and the CLI
alike: open tasks follow the role, every change is in the child's history, auditors stay outside."""

from __future__ import annotations

import pytest

from engine import clock as clocks
from engine.errors import NotAllowed
from engine.history import events
from engine.models import OpenTask, User
from engine.people import PeopleError, add_user, set_case_team

from .test_runtime import MEETING, complete, only_task, start_review


def holder(council, task_id: str) -> str | None:
    with council() as s:
        task = s.get(OpenTask, task_id)
        return s.get(User, task.assignee_id).email if task.assignee_id else None


def test_a_new_designated_teacher_takes_over_the_open_pep_and_the_history_says_so(deployed, engine, council, clock):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    task = only_task(council)
    assert holder(council, task.id) == "dt@demo.test"
    with clocks.using(clock), council.begin() as s:
        set_case_team(s, "C001", {"Designated Teacher": "other.dt@demo.test"}, actor="admin@demo.test")
    assert holder(council, task.id) == "other.dt@demo.test"
    with council() as s:
        change = [e for e in events(s, "C001") if e.kind == "case_team_changed"][-1]
    assert change.actor == "admin@demo.test"
    assert change.data == {
        "role": "designated_teacher",
        "from": "dt@demo.test",
        "to": "other.dt@demo.test",
        "tasks": [task.id],
    }


def test_nobody_removes_the_holder_and_their_open_work_goes_to_the_roles_fallback(deployed, engine, council, clock):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    task = only_task(council)
    with clocks.using(clock), council.begin() as s:
        set_case_team(s, "C001", {"Designated Teacher": None}, actor="admin@demo.test")
    with council() as s:
        moved = s.get(OpenTask, task.id)  # the Designated Teacher's fallback: the VS Education Adviser pool
        assert (moved.assignee_id, moved.pooled, moved.role_key) == (None, True, "vs_education_adviser")
    with pytest.raises(NotAllowed), council.begin() as s:  # the old teacher can no longer answer
        engine.complete_task(s, task.id, "dt@demo.test", {})


def test_an_auditor_cannot_be_put_in_a_case_team(council, clock):
    with clocks.using(clock), council.begin() as s:
        add_user(s, "auditor@demo.test", "Aud Itor", roles=["Auditor"])
    with pytest.raises(PeopleError, match="auditor"), clocks.using(clock), council.begin() as s:
        set_case_team(s, "C001", {"Carer": "auditor@demo.test"})
    with pytest.raises(PeopleError, match="sees no child"), clocks.using(clock), council.begin() as s:
        set_case_team(s, "C001", {"Process Owner": "sw@demo.test"})


def test_only_someone_the_message_names_may_report_a_change_even_outside_the_web(deployed, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    with pytest.raises(NotAllowed, match="may report this"), council.begin() as s:
        engine.send_message(s, "meeting_rescheduled", "C001", {"meeting_date": "2026-03-24"}, actor="yp@demo.test")
    with council.begin() as s:
        assert engine.send_message(
            s, "meeting_rescheduled", "C001", {"meeting_date": "2026-03-24"}, actor="sw@demo.test"
        )
