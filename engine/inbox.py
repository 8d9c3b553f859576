"""Inbox queries: a person's tasks and the pools they can claim from, most urgent first.

Called by the web inbox, `pep tasks` and the benchmark. Plain indexed queries over the open-task
projection; no workflow is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, union_all
from sqlalchemy.orm import Session

from .models import Child, Event, Instance, OpenTask, ProcessDefinition, Role, TaskDraft, User


@dataclass(frozen=True)
class InboxRow:
    task_id: str
    name: str
    child_id: str
    child_name: str
    school: str | None
    process_id: str
    process_name: str
    role_label: str
    due_at: datetime | None
    ready_at: datetime
    assignee_id: int | None
    pooled: bool
    sent_back: str | None  # why the diagram sent it back to be done again
    draft: bool  # the person has saved answers to it


# The inbox's order (deadline, then age) as the inbox indexes hold it, from the assignee on. Within one
# part of an inbox the assignee is one person (mine) or none (a pool), so naming it changes nothing; but
# PostgreSQL does not take "assignee IS NULL" as a single value: ordered by deadline and age alone, it
# cannot read a pool in index order and sorts the whole pool (thousands of tasks for a VS adviser)
# before it returns the first page. Migration 0004 tells it how big a pool is, so that it reads in order.
IN_INDEX_ORDER = (OpenTask.assignee_id, OpenTask.due_at, OpenTask.ready_at)


def doable_by(user_id: int, role_keys: set[str], view: str = "all"):
    """The open tasks a person may do: assigned to them ("mine"), unclaimed in their pools ("pool"), or both."""
    mine = OpenTask.assignee_id == user_id
    pool = and_(OpenTask.pooled, OpenTask.assignee_id.is_(None), OpenTask.role_key.in_(role_keys or {""}))
    return {"mine": mine, "pool": pool}.get(view, or_(mine, pool))


def inbox(
    session: Session,
    user_id: int,
    role_keys: set[str],
    now: datetime,
    view: str = "all",
    child: str | None = None,
    school: str | None = None,
    process: str | None = None,
    due: str | None = None,
    limit: int = 200,
) -> list[InboxRow]:
    """Open tasks the person may do, filtered, sorted by deadline (none last) then age.

    One statement: each part of the inbox (my tasks, and the pool of each of my roles; with a deadline
    and without) is one range of an inbox index, read in the index's order and stopped at `limit`; the
    parts are put together and only the first page is joined to its child, process and role. With an
    OR of "mine" and "pool", an IN of several roles, or an ORDER BY on "has no deadline", the database
    would sort every open task of the council instead.
    """
    filters: list[ColumnElement[bool]] = []
    if child:
        like = f"%{child.strip().lower()}%"
        filters.append(
            OpenTask.child_id.in_(
                select(Child.id).where(
                    or_(func.lower(Child.name).like(like), func.lower(Child.id) == child.strip().lower())
                )
            )
        )
    if school:
        filters.append(OpenTask.child_id.in_(select(Child.id).where(Child.school == school)))
    if process:
        filters.append(
            OpenTask.instance_id.in_(
                select(Instance.id)
                .join(ProcessDefinition, ProcessDefinition.id == Instance.definition_id)
                .where(ProcessDefinition.process_id == process)
            )
        )
    if due == "overdue":
        filters.append(OpenTask.due_at < now)
    elif due in ("week", "month"):
        filters.append(OpenTask.due_at < now + timedelta(days=7 if due == "week" else 31))
    whose = [] if view == "pool" else [doable_by(user_id, role_keys, "mine")]
    whose += [] if view == "mine" else [doable_by(user_id, {role}, "pool") for role in sorted(role_keys)]
    deadlines = [OpenTask.due_at.is_not(None)] + ([] if due else [OpenTask.due_at.is_(None)])
    parts = [
        select(OpenTask.id, OpenTask.due_at, OpenTask.ready_at)
        .where(part, has_deadline, *filters)
        .order_by(*IN_INDEX_ORDER)
        .limit(limit)
        .subquery()
        for part in whose
        for has_deadline in deadlines
    ]
    if not parts:
        return []
    page = union_all(*(select(part) for part in parts)).subquery()
    rows = session.execute(
        select(
            OpenTask.id,
            OpenTask.name,
            Child.id,
            Child.name,
            Child.school,
            ProcessDefinition.process_id,
            ProcessDefinition.name,
            Role.label,
            OpenTask.due_at,
            OpenTask.ready_at,
            OpenTask.assignee_id,
            OpenTask.pooled,
            OpenTask.sent_back,
            select(TaskDraft.task_id).where(TaskDraft.task_id == OpenTask.id, TaskDraft.user_id == user_id).exists(),
        )
        .select_from(page)
        .join(OpenTask, OpenTask.id == page.c.id)
        .join(Child, Child.id == OpenTask.child_id)
        .join(Instance, Instance.id == OpenTask.instance_id)
        .join(ProcessDefinition, ProcessDefinition.id == Instance.definition_id)
        .join(Role, Role.key == OpenTask.role_key)
        .order_by(page.c.due_at.is_(None), page.c.due_at, page.c.ready_at, page.c.id)
        .limit(limit)
    ).all()
    # SQLAlchemy types a row's first ten columns only (the rest are *tuple[Any, ...]), which mypy cannot count
    return [InboxRow(*row) for row in rows]  # type: ignore[call-arg]


def inbox_counts(session: Session, user_id: int, role_keys: set[str], now: datetime) -> dict[str, int]:
    """How many tasks are mine, mine and overdue, and waiting in my pools."""
    mine, pool = doable_by(user_id, role_keys, "mine"), doable_by(user_id, role_keys, "pool")
    row = session.execute(
        select(func.count(), func.count().filter(OpenTask.due_at < now)).select_from(OpenTask).where(mine)
    ).one()
    pooled = session.execute(select(func.count()).select_from(OpenTask).where(pool)).scalar_one()
    return {"mine": row[0], "overdue": row[1], "pool": pooled}


def inbox_choices(session: Session, user_id: int, role_keys: set[str]) -> dict[str, list]:
    """The schools and processes that appear in the person's tasks, for the filters.

    Each reads the person's tasks once, through the inbox indexes, and looks up their children or
    instances directly: a council's pool holds thousands of tasks."""
    doable = doable_by(user_id, role_keys)
    schools = session.scalars(
        select(Child.school)
        .join(OpenTask, OpenTask.child_id == Child.id)
        .where(doable, Child.school.is_not(None))
        .distinct()
        .order_by(Child.school)
    ).all()
    processes = session.execute(
        select(ProcessDefinition.process_id, ProcessDefinition.name)
        .where(
            ProcessDefinition.id.in_(
                select(Instance.definition_id).join(OpenTask, OpenTask.instance_id == Instance.id).where(doable)
            )
        )
        .distinct()
        .order_by(ProcessDefinition.name)
    ).all()
    return {"schools": list(schools), "processes": [tuple(p) for p in processes]}


@dataclass(frozen=True)
class TaskFate:
    """What became of a task that is no longer open, from the child's history."""

    name: str
    child_id: str
    outcome: str  # "completed" or "withdrawn"
    at: datetime
    by: str | None  # who completed it
    because: str | None  # what withdrew it: "timer" (its name), "message", "completed" (another step), "cancelled"
    detail: str | None  # the timer's or message's name, or the other step's name


_CAUSES = {
    "timer_fired": "timer",
    "message_received": "message",
    "task_completed": "completed",
    "instance_cancelled": "cancelled",
    "instance_migrated": "migrated",
}


def task_fate(session: Session, child_id: str, task_id: str) -> TaskFate | None:
    """How a task of this child ended (completed by whom, or withdrawn by what), or None if its history
    holds no such task, or it is open."""
    events = session.scalars(
        select(Event).where(Event.child_id == child_id, Event.task_id == task_id).order_by(Event.seq)
    ).all()
    ended = next((e for e in reversed(events) if e.kind in ("task_completed", "task_withdrawn")), None)
    if ended is None:
        return None
    name = ended.data.get("name") or ended.data.get("task") or "The task"
    if ended.kind == "task_completed":
        return TaskFate(name, child_id, "completed", ended.at, ended.actor, None, None)
    cause = session.scalars(
        select(Event)
        .where(
            Event.child_id == child_id,
            Event.instance_id == ended.instance_id,
            Event.seq < ended.seq,
            Event.at == ended.at,
            Event.kind.in_(list(_CAUSES)),
        )
        .order_by(Event.seq.desc())
        .limit(1)
    ).first()
    because = _CAUSES.get(cause.kind) if cause else None
    detail = None
    if cause is not None:
        detail = cause.data.get("name") or cause.data.get("timer") or cause.data.get("message")
    return TaskFate(name, child_id, "withdrawn", ended.at, cause.actor if cause else None, because, detail)


@dataclass(frozen=True)
class NextTask:
    """A task a step opened, as the person who took the step is told of it."""

    task_id: str
    spec_id: str
    name: str
    role_label: str
    assignee_id: int | None
    assignee_name: str | None
    pooled: bool
    due_at: datetime | None
    sent_back: str | None


def opened_since(session: Session, instance_id: int, since: datetime) -> tuple[str, list[NextTask]]:
    """What a step of the instance taken at `since` led to: the instance's status now, and the tasks it
    opened (still open), in the order of their deadlines."""
    status = session.scalar(select(Instance.status).where(Instance.id == instance_id))
    rows = session.execute(
        select(
            OpenTask.id,
            OpenTask.spec_id,
            OpenTask.name,
            Role.label,
            OpenTask.assignee_id,
            User.name,
            OpenTask.pooled,
            OpenTask.due_at,
            OpenTask.sent_back,
        )
        .join(Role, Role.key == OpenTask.role_key)
        .outerjoin(User, User.id == OpenTask.assignee_id)
        .where(OpenTask.instance_id == instance_id, OpenTask.ready_at >= since)
        .order_by(OpenTask.due_at.is_(None), OpenTask.due_at, OpenTask.name)
    ).all()
    return status or "", [NextTask(*row) for row in rows]


@dataclass(frozen=True)
class WaitingTask:
    """A task that nobody can take: the child's case team names nobody for its role, which has no pool
    and no fallback that finds anyone (engine.roles.RoleDirectory.assignment)."""

    task_id: str
    name: str
    child_id: str
    child_name: str
    process_name: str
    role_key: str
    role_label: str
    due_at: datetime | None
    ready_at: datetime


def needs_a_person(session: Session, limit: int = 500) -> list[WaitingTask]:
    """The VS administrator's "needs a person" list: open tasks with no assignee and no pool, oldest first."""
    rows = session.execute(
        select(
            OpenTask.id,
            OpenTask.name,
            Child.id,
            Child.name,
            ProcessDefinition.name,
            Role.key,
            Role.label,
            OpenTask.due_at,
            OpenTask.ready_at,
        )
        .join(Child, Child.id == OpenTask.child_id)
        .join(Instance, Instance.id == OpenTask.instance_id)
        .join(ProcessDefinition, ProcessDefinition.id == Instance.definition_id)
        .join(Role, Role.key == OpenTask.role_key)
        .where(OpenTask.assignee_id.is_(None), OpenTask.pooled.is_(False))
        .order_by(OpenTask.ready_at, OpenTask.id)
        .limit(limit)
    ).all()
    return [WaitingTask(*row) for row in rows]
