"""The council's overdue policy: every open task whose due date passes is recorded overdue, its holder
reminded, and one working day later (if it is still open) a declared role told.

Called by the runtime (`plan`: as a task opens, what the policy will do with it, kept on its row) and
by the timer sweep (`sweep`, after the timers: each task whose moment has come, one transaction each).
The policy is configuration (config/overdue.yaml, or the file PEP_OVERDUE_POLICY names); a diagram
changes it for one task with `overdueEscalateTo` or `overdue: none`, and a task whose diagram draws a
timer at or after its due date is left to that timer (never escalated twice).

What finds work is the indexed `open_task.overdue_at`, never a workflow: the sweep reads only the
rows whose moment has passed. Each action moves the row on (`overdue_stage`, a later or no
`overdue_at`) in the transaction that records it, so each reminder and escalation happens once. The
instance is locked first (as every step takes it, then the child's history), and one held by a step
or another sweeper is passed by until the next sweep.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from . import CONFIG, calendar, history
from .db import DatabaseUnavailable, retrying
from .mail import one_line
from .models import CaseTeamMember, Child, Instance, Notification, OpenTask
from .roles import RoleDirectory, RoleInfo
from .vocabulary import ESCALATE_PROPERTY, OVERDUE_PROPERTY, SYSTEM  # noqa: F401 - spelled once

log = logging.getLogger(__name__)

DEFAULT_POLICY_FILE = CONFIG / "overdue.yaml"
NONE = "none"


@dataclass(frozen=True)
class Policy:
    """What happens when a task's due date passes (config/overdue.yaml)."""

    remind: bool = True
    escalate_after_working_days: int = 1
    escalate_to: str | None = "VS Education Adviser"
    escalate_to_by_role: dict[str, str | None] = field(default_factory=dict)  # None: not escalated

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Policy:
        """The policy in `path`, else the file PEP_OVERDUE_POLICY names, else the shipped one."""
        path = path or os.environ.get("PEP_OVERDUE_POLICY") or DEFAULT_POLICY_FILE
        values = yaml.safe_load(Path(path).read_text()) or {}
        return cls(
            remind=bool(values.get("remind", True)),
            escalate_after_working_days=int(values.get("escalate_after_working_days", 1)),
            escalate_to=_named(values.get("escalate_to")),
            escalate_to_by_role={str(k): _named(v) for k, v in (values.get("escalate_to_by_role") or {}).items()},
        )

    def problems(self, roles: RoleDirectory) -> list[str]:
        """The role names the policy uses that the vocabulary does not know."""
        names = [self.escalate_to, *self.escalate_to_by_role, *self.escalate_to_by_role.values()]
        return [
            f'overdue policy: "{name}" is not a known role'
            for name in names
            if name is not None and roles.resolve(name) is None
        ]

    def escalation_for(self, role: RoleInfo, resolve: Callable[[str], RoleInfo | None]) -> str | None:
        """The role a task of `role` escalates to (by name), or None."""
        for name, to in self.escalate_to_by_role.items():
            held = resolve(name)
            if held is not None and held.key == role.key:
                return to
        return self.escalate_to


def _named(value) -> str | None:
    return None if value is None or str(value).strip().lower() in ("", NONE) else str(value).strip()


def plan(
    policy: Policy,
    properties: dict,
    role: RoleInfo,
    due_at: datetime | None,
    own_timers: list[datetime],
    resolve: Callable[[str], RoleInfo | None],
) -> dict:
    """An opening task's overdue columns: recorded overdue at its due date; reminded and escalated by
    the policy unless the diagram says otherwise or draws a timer at or after the due date."""
    if due_at is None:
        return dict(overdue_at=None, overdue_stage=None, overdue_remind=False, overdue_escalate_to=None)
    if properties.get(OVERDUE_PROPERTY) == NONE or any(at >= due_at for at in own_timers):
        return dict(overdue_at=due_at, overdue_stage=None, overdue_remind=False, overdue_escalate_to=None)
    name = (
        _named(properties[ESCALATE_PROPERTY])
        if ESCALATE_PROPERTY in properties
        else policy.escalation_for(role, resolve)
    )
    escalate = resolve(name) if name else None
    if name and escalate is None:
        raise LookupError(f'the overdue escalation "{name}" is not a known role')
    return dict(
        overdue_at=due_at,
        overdue_stage=None,
        overdue_remind=policy.remind,
        overdue_escalate_to=escalate.key if escalate else None,
    )


@dataclass
class OverdueResult:
    overdue: int = 0
    reminded: int = 0
    escalated: int = 0
    passed: int = 0  # held by a step or another sweeper: the next sweep takes them


def sweep(
    sessions: sessionmaker[Session], policy: Policy, now: datetime, batch: int = 500, share: tuple[int, int] = (0, 1)
) -> OverdueResult:
    """Act on every open task whose overdue moment is before `now`, each in its own transaction."""
    result, passed = OverdueResult(), set[str]()
    part, parts = share
    query = select(OpenTask.id, OpenTask.instance_id).where(OpenTask.overdue_at < now)
    if parts > 1:
        query = query.where(OpenTask.instance_id % parts == part)
    query = query.order_by(OpenTask.overdue_at)

    def due_now():
        with sessions() as session:
            return [row for row in session.execute(query.limit(batch + len(passed))) if row.id not in passed][:batch]

    while due := retrying(due_now, "overdue sweep"):
        for task_id, instance_id in due:
            try:
                done = retrying(
                    partial(_act, sessions, policy, task_id, instance_id, now, result), f"overdue sweep, task {task_id}"
                )
            except DatabaseUnavailable:
                raise  # the database, not this task: the sweep stops, and the next one carries on
            except Exception:  # noqa: BLE001 - one task that cannot be recorded must not stop the sweep
                log.exception(
                    "overdue sweep: task %s of instance %s failed; the next sweep tries again", task_id, instance_id
                )
                done = False
            if not done:
                passed.add(task_id)
                result.passed += 1
    return result


def _act(sessions, policy: Policy, task_id: str, instance_id: int, now: datetime, result: OverdueResult) -> bool:
    """Record what is due for one task (overdue and reminded, or escalated); False if its instance is held."""
    with sessions() as session, session.begin():
        held = session.scalar(
            select(Instance.id).where(Instance.id == instance_id).with_for_update(skip_locked=True)
        )  # instance first, as every step locks
        if held is None:
            return False
        task = session.scalar(select(OpenTask).where(OpenTask.id == task_id, OpenTask.overdue_at < now))
        if task is None:
            return True  # completed or withdrawn meanwhile
        child = session.get(Child, task.child_id)
        if task.overdue_stage is None:
            entries = _overdue(session, policy, task, child, now, result)
        else:
            entries = _escalate(session, task, child, now, result)
        history.append(session, task.child_id, entries, now)
        session.flush()
    return True


def _overdue(session, policy: Policy, task: OpenTask, child: Child, now: datetime, result: OverdueResult) -> list[dict]:
    assert task.due_at is not None  # only a task with a due date has a time to be found overdue (`plan`)
    base = {"task": task.spec_id, "name": task.name, "role": task.role_key, "due_at": task.due_at.isoformat()}
    entries = [_entry(task, "task_overdue", **base, assignee_id=task.assignee_id)]
    result.overdue += 1
    if task.overdue_remind:
        session.add(
            _notice(
                task,
                child,
                now,
                "task_reminder",
                task.assignee_id,
                None if task.assignee_id else task.role_key,
                f"Overdue: {task.name} for {child.name} was due {_day(task.due_at)}",
                f"{task.name} for {child.name} was due {_day(task.due_at)} and is not done yet. "
                "Please complete it as soon as you can.",
            )
        )
        entries.append(
            _entry(
                task,
                "task_reminded",
                **base,
                user_id=task.assignee_id,
                pool=None if task.assignee_id else task.role_key,
            )
        )
        task.reminded_at = now
        result.reminded += 1
    task.overdue_stage = "overdue"
    # the escalation: the policy's working days after the due date, at the same time of day
    task.overdue_at = (
        calendar.working_days_dt(policy.escalate_after_working_days, task.due_at) if task.overdue_escalate_to else None
    )
    return entries


def _escalate(session, task: OpenTask, child: Child, now: datetime, result: OverdueResult) -> list[dict]:
    assert task.due_at is not None  # escalated only after it was found overdue
    role = task.overdue_escalate_to
    member = session.scalar(
        select(CaseTeamMember.user_id).where(CaseTeamMember.child_id == task.child_id, CaseTeamMember.role_key == role)
    )
    info = RoleDirectory.load(session).resolve(role)
    pooled = member is None and info is not None and info.pooled and info.casework  # never every holder of a team role
    if member is not None or pooled:
        session.add(
            _notice(
                task,
                child,
                now,
                "task_escalated",
                member,
                None if member else role,
                f"Escalated: {task.name} for {child.name} is overdue (due {_day(task.due_at)})",
                f"{task.name} for {child.name} was due {_day(task.due_at)} and is still not done. "
                "Its holder was reminded on the due date. Please follow it up.",
            )
        )
    task.overdue_stage, task.overdue_at = "escalated", None
    task.escalated_at, task.escalated_to_user_id = now, member  # the overdue list says whom, and when
    result.escalated += 1
    return [
        _entry(
            task,
            "task_escalated",
            task=task.spec_id,
            name=task.name,
            role=task.role_key,
            due_at=task.due_at.isoformat(),
            to_role=role,
            to_user_id=member,
            to_pool=pooled,
            nobody_in=None if member is not None or pooled else role,
            assignee_id=task.assignee_id,
        )
    ]


def _entry(open_task: OpenTask, kind: str, **data) -> dict:
    return {"kind": kind, "actor": SYSTEM, "instance_id": open_task.instance_id, "task_id": open_task.id, "data": data}


def _notice(task, child, now, kind, user_id, role_key, subject, body) -> Notification:
    return Notification(
        user_id=user_id,
        role_key=role_key,
        child_id=task.child_id,
        task_id=task.id,
        kind=kind,
        subject=one_line(subject),
        body=body,
        created_at=now,
        sent_at=None,
    )


def _day(moment: datetime) -> str:
    return calendar.long_date(moment)
