"""Inbox queries: a person's own tasks and their pools in one list, most urgent first, filtered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from engine.inbox import inbox, inbox_counts
from engine.models import OpenTask, Role, User

from .test_runtime import start_review

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def add_tasks(sessions, instance_id, child_id, *tasks):
    """Open tasks for the inbox to find: (id, name, role key, assignee email or None for the pool, due in days)."""
    with sessions.begin() as s:
        users = dict(s.execute(select(User.email, User.id)).all())
        s.execute(
            insert(OpenTask),
            [
                dict(
                    id=task_id,
                    instance_id=instance_id,
                    child_id=child_id,
                    spec_id=name,
                    name=name,
                    lane=role,
                    role_key=role,
                    form=None,
                    assignee_id=users.get(who),
                    pooled=who is None,
                    due_at=NOW + timedelta(days=due) if due is not None else None,
                    ready_at=NOW - timedelta(days=len(name)),
                )
                for task_id, name, role, who, due in tasks
            ],
        )


def adviser(sessions):
    with sessions() as s:
        user = s.scalar(select(User).where(User.email == "ea@demo.test"))
        return user.id, set(user.role_keys)


def test_my_tasks_and_my_pool_come_together_most_urgent_first_and_undated_last(deployed, engine, council):
    instance_id = start_review(engine, council)
    with council() as s:
        pool_role = s.scalar(select(Role.key).where(Role.pooled, Role.label == "VS Education Adviser"))
    add_tasks(
        council,
        instance_id,
        "C001",
        ("t-undated", "Undated pool task", pool_role, None, None),
        ("t-late", "Overdue QA", pool_role, None, -3),
        ("t-mine-soon", "My review", pool_role, "ea@demo.test", 2),
        ("t-theirs", "Someone else's", pool_role, "ea2@demo.test", 1),
        ("t-later", "QA next month", pool_role, None, 30),
    )
    user_id, roles = adviser(council)
    with council() as s:
        rows = inbox(s, user_id, roles, NOW)
        assert [r.task_id for r in rows] == ["t-late", "t-mine-soon", "t-later", "t-undated"]
        assert rows[0].child_name == "Alex Example" and rows[0].process_id == "test_review"
        assert [r.task_id for r in inbox(s, user_id, roles, NOW, view="mine")] == ["t-mine-soon"]
        assert [r.task_id for r in inbox(s, user_id, roles, NOW, view="pool")] == ["t-late", "t-later", "t-undated"]
        assert [r.task_id for r in inbox(s, user_id, roles, NOW, due="overdue")] == ["t-late"]
        assert [r.task_id for r in inbox(s, user_id, roles, NOW, due="week")] == ["t-late", "t-mine-soon"]
        assert [r.task_id for r in inbox(s, user_id, roles, NOW, limit=2)] == ["t-late", "t-mine-soon"]
        assert inbox_counts(s, user_id, roles, NOW) == {"mine": 1, "overdue": 0, "pool": 3}


def test_filters_by_child_school_and_process_narrow_the_inbox(deployed, engine, council):
    first, second = start_review(engine, council, "C001"), start_review(engine, council, "C002")
    with council() as s:
        pool_role = s.scalar(select(Role.key).where(Role.pooled, Role.label == "VS Education Adviser"))
    add_tasks(council, first, "C001", ("t-alex", "QA for Alex", pool_role, None, 5))
    add_tasks(council, second, "C002", ("t-blair", "QA for Blair", pool_role, None, 4))
    user_id, roles = adviser(council)
    with council() as s:
        assert [r.task_id for r in inbox(s, user_id, roles, NOW)] == ["t-blair", "t-alex"]
        assert [r.task_id for r in inbox(s, user_id, roles, NOW, child="alex")] == ["t-alex"]
        assert [r.task_id for r in inbox(s, user_id, roles, NOW, child="c002")] == ["t-blair"]
        assert [r.task_id for r in inbox(s, user_id, roles, NOW, school="Oak Primary")] == ["t-alex"]
        assert [r.task_id for r in inbox(s, user_id, roles, NOW, process="test_review")] == ["t-blair", "t-alex"]
        assert inbox(s, user_id, roles, NOW, process="post16") == []
