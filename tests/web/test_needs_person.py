"""The VS administrator's list of tasks that need a person: only they see it, each row leads to the
child, and naming a person for the role gives them the task, written to the child's history."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine.history import events
from engine.models import OpenTask, User
from engine.people import add_child


@pytest.fixture
def waiting(deployed_app, council, engine, clock):
    """C004 has no social worker yet, and their termly review has begun: its first task needs a person."""
    with clocks.using(clock), council.begin() as s:
        add_child(s, "C004", "Robin Newcomer", date(2013, 4, 2), "Oak Primary")
        engine.start(s, "test_review", "C004", actor="admin@demo.test")
    with council() as s:
        return s.scalars(select(OpenTask).where(OpenTask.child_id == "C004")).one()


@pytest.mark.parametrize("email", ["sw@demo.test", "dt@demo.test", "ea@demo.test", "yp@demo.test"])
def test_only_the_vs_administrator_sees_the_list_or_gives_a_task_a_person(waiting, browser, email, council):
    someone = browser(email)
    assert someone.get("/admin/needs-a-person").status_code == 403
    refused = someone.post(f"/admin/needs-a-person/{waiting.id}", {"person": "sw@demo.test"})
    assert refused.status_code == 403
    with council() as s:
        assert s.get(OpenTask, waiting.id).assignee_id is None
    assert browser().get("/admin/needs-a-person").status_code in (302, 401)  # signed out: to the sign-in page


def test_the_vs_administrator_names_the_social_worker_and_the_task_is_theirs(waiting, browser, council):
    admin = browser("admin@demo.test")
    page = admin.get("/admin/needs-a-person").get_data(as_text=True)
    assert 'aria-current="page">Needs a person' in page
    assert "1 task(s) waiting" in page and "Arrange the PEP meeting" in page and "Social Worker" in page
    assert 'href="/children/C004"' in page

    empty = admin.post(f"/admin/needs-a-person/{waiting.id}", {"person": ""}, page_url="/admin/needs-a-person")
    assert empty.status_code == 422
    assert "Select Robin Newcomer&#39;s Social Worker" in empty.get_data(as_text=True)

    done = admin.post(
        f"/admin/needs-a-person/{waiting.id}",
        {"person": "sw@demo.test"},
        page_url="/admin/needs-a-person",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Sam Social-Worker is now Robin Newcomer&#39;s Social Worker" in done
    assert "No task needs a person" in done
    with council() as s:
        sw = s.scalar(select(User).where(User.email == "sw@demo.test"))
        assert s.get(OpenTask, waiting.id).assignee_id == sw.id
        change = [e for e in events(s, "C004") if e.kind == "case_team_changed"][-1]
    assert change.actor == "admin@demo.test" and change.data["tasks"] == [waiting.id]
    timeline = admin.get("/audit/children/C004").get_data(as_text=True)
    assert "needs a person: nobody is the child&#39;s Social Worker" in timeline

    again = admin.post(
        f"/admin/needs-a-person/{waiting.id}",
        {"person": "dt@demo.test"},
        page_url="/admin/needs-a-person",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "no longer needs a person" in again
