"""The council's overdue work now: every open task past its due date, with whom it was escalated to and
when, filtered by role, person, school and days overdue; bulk reminders and (for pooled tasks) bulk
reassignment, each written to the child's history. Called by the oversight pages (webui/oversight.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from . import calendar, history
from .mail import one_line
from .models import (
    Child,
    Instance,
    Notification,
    OpenTask,
    User,
    UserRole,
)

# ---- overdue work now -------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueFilter:
    """The overdue list's filters: a role (key), a person (user id), a school, at least so many days."""

    role: str | None = None
    person: int | None = None
    school: str | None = None
    min_days: int | None = None


def overdue_tasks(
    session: Session, now: datetime, visible, chosen: OverdueFilter = OverdueFilter(), limit: int = 1000
) -> list[dict]:
    """Every open task past its due date, of children `visible` admits, longest overdue first (then by
    child); with its
    holder (or pool), and whom the sweep escalated it to, and when."""
    holder, told = aliased(User), aliased(User)
    query = (
        select(
            OpenTask,
            Child.name.label("child_name"),
            Child.school,
            holder.name.label("holder"),
            told.name.label("escalated_to"),
        )
        .join(Child, Child.id == OpenTask.child_id)
        .outerjoin(holder, holder.id == OpenTask.assignee_id)
        .outerjoin(told, told.id == OpenTask.escalated_to_user_id)
        .where(OpenTask.due_at < now, visible)
    )
    if chosen.role:
        query = query.where(OpenTask.role_key == chosen.role)
    if chosen.person:
        query = query.where(OpenTask.assignee_id == chosen.person)
    if chosen.school:
        query = query.where(Child.school == chosen.school)
    if chosen.min_days:
        query = query.where(OpenTask.due_at <= now - timedelta(days=chosen.min_days))
    return [
        {
            "task": row.OpenTask,
            "child_id": row.OpenTask.child_id,
            "child_name": row.child_name,
            "school": row.school,
            "holder": row.holder,
            "escalated_to": row.escalated_to,
            "days_overdue": (now - row.OpenTask.due_at).days,
        }
        for row in session.execute(query.order_by(OpenTask.due_at, Child.name, OpenTask.id).limit(limit))
    ]


def overdue_choices(session: Session, now: datetime, visible) -> dict:
    """What the overdue list can be filtered by: the roles, holders and schools of overdue tasks."""
    base = (
        select().select_from(OpenTask).join(Child, Child.id == OpenTask.child_id).where(OpenTask.due_at < now, visible)
    )
    return {
        "roles": sorted(session.scalars(base.add_columns(OpenTask.role_key).distinct())),
        "people": session.execute(
            base.add_columns(User.id, User.name)
            .join(User, User.id == OpenTask.assignee_id)
            .distinct()
            .order_by(User.name)
        ).all(),
        "schools": sorted(
            str(row.school) for row in session.execute(base.add_columns(Child.school).distinct()) if row.school
        ),
    }


def _chosen_tasks(session: Session, task_ids: list[str], now: datetime, visible) -> list[OpenTask]:
    """The overdue tasks among `task_ids` that the person may see, their instances locked in id order
    (instance first, as every step locks: the child's history comes after)."""
    chosen = (
        select(OpenTask)
        .join(Child, Child.id == OpenTask.child_id)
        .where(OpenTask.id.in_(task_ids[:500]), OpenTask.due_at < now, visible)
    )
    for instance_id in sorted(set(session.scalars(chosen.with_only_columns(OpenTask.instance_id)))):
        session.execute(select(Instance.id).where(Instance.id == instance_id).with_for_update())
    # read again once locked: a step that committed meanwhile may have closed a task
    return list(
        session.scalars(chosen.order_by(OpenTask.instance_id, OpenTask.id).execution_options(populate_existing=True))
    )


def remind(session: Session, task_ids: list[str], actor: str, now: datetime, visible) -> int:
    """Remind the holder (or the pool) of each chosen overdue task: a notification each, and
    `task_reminded` in the child's history, by whom. Returns how many were reminded."""
    by_child: dict[str, list[dict]] = {}
    tasks = _chosen_tasks(session, task_ids, now, visible)
    names = dict(session.execute(select(Child.id, Child.name).where(Child.id.in_({t.child_id for t in tasks}))).all())
    for task in tasks:
        due = calendar.long_date(task.due_at)
        session.add(
            Notification(
                user_id=task.assignee_id,
                role_key=None if task.assignee_id else task.role_key,
                child_id=task.child_id,
                task_id=task.id,
                kind="task_reminder",
                created_at=now,
                sent_at=None,
                subject=one_line(f"Reminder: {task.name} for {names[task.child_id]} was due {due}"),
                body=f"{task.name} for {names[task.child_id]} was due {due} and is not done yet. The Virtual School "
                "asks you to complete it as soon as you can.",
            )
        )
        task.reminded_at = now
        by_child.setdefault(task.child_id, []).append(
            _entry(
                task,
                "task_reminded",
                actor,
                task=task.spec_id,
                name=task.name,
                role=task.role_key,
                due_at=task.due_at.isoformat() if task.due_at else None,
                user_id=task.assignee_id,
                pool=None if task.assignee_id else task.role_key,
            )
        )
    for child_id, entries in by_child.items():
        history.append(session, child_id, entries, now)
    session.flush()
    return len(tasks)


def assignable_people(session: Session, role_key: str) -> list[tuple[int, str]]:
    """The active holders of a council-wide role: whom a pooled task of it may be given to."""
    return [
        (row.id, row.name)
        for row in session.execute(
            select(User.id, User.name)
            .join(UserRole, UserRole.user_id == User.id)
            .where(UserRole.role_key == role_key, User.active)
            .order_by(User.name)
        )
    ]


def assign(session: Session, task_ids: list[str], user_id: int, actor: str, now: datetime, visible) -> tuple[int, int]:
    """Give each chosen overdue pooled task to `user_id`, who must hold its role (a claim on their behalf,
    `task_claimed` with by whom in the history). Returns (given, refused: not pooled or not their role)."""
    held = set(session.scalars(select(UserRole.role_key).where(UserRole.user_id == user_id)))
    active = session.scalar(select(User.active).where(User.id == user_id))
    given, refused, by_child = 0, 0, dict[str, list[dict]]()
    for task in _chosen_tasks(session, task_ids, now, visible):
        if not active or not task.pooled or task.role_key not in held:
            refused += 1
            continue
        if task.assignee_id != user_id:
            by_child.setdefault(task.child_id, []).append(
                _entry(
                    task,
                    "task_claimed",
                    actor,
                    name=task.name,
                    user_id=user_id,
                    previous_user_id=task.assignee_id,
                    assigned_by=actor,
                )
            )
            task.assignee_id = user_id
        given += 1
    for child_id, entries in by_child.items():
        history.append(session, child_id, entries, now)
    session.flush()
    return given, refused


def _entry(open_task: OpenTask, kind: str, actor: str, **data) -> dict:
    return {"kind": kind, "actor": actor, "instance_id": open_task.instance_id, "task_id": open_task.id, "data": data}
