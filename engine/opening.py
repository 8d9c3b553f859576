"""A task opening in a step: who takes it (the holder of its lane's role for the child, else that role's
pool, else along its fallbacks; else nobody, and the VS administrator is told), its deadline (its
`dueDate`, else its interrupting boundary timer), why the diagram sent it back if it did, its overdue
plan, its row in the task projection, its `task_ready` event and its notice."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from . import overdue, tree
from .errors import EngineError
from .models import Notification, OpenTask
from .people import needs_person_notice
from .scripting import ScriptError
from .vocabulary import FALLBACK_PROPERTY, SENT_BACK_PROPERTY

if TYPE_CHECKING:
    from .step import Step


def open_task(self: Step, task_id: str, task) -> None:
    """Queue the row of a newly ready task and the notice of it: to the holder of its lane's role for
    the child, else that role's pool, else its fallback's (`RoleDirectory.assignment`); a task that
    finds nobody waits on the VS administrator's "needs a person" list, and they are told."""
    instance, spec, now = self.instance, task.task_spec, self.engine.now()
    lane_role = self.role(spec.lane)
    if lane_role is None:
        raise EngineError(f'lane "{spec.lane}" of {spec.bpmn_id} is not a known role')
    properties = spec.extensions.get("properties", {})
    taken = self.engine.roles(self.session).assignment(lane_role, self.team(), properties.get(FALLBACK_PROPERTY))
    role, assignee, pooled = taken.role, taken.assignee, taken.pooled
    name, due_at, sent_back = spec.bpmn_name or spec.bpmn_id, deadline(self, task), sent_back_reason(self, task)
    try:
        lateness = overdue.plan(
            self.engine.overdue_policy,
            properties,
            role,
            due_at,
            [at for at, _ends in tree.boundary_timers(task)],
            self.role,
        )
    except LookupError as exc:
        raise EngineError(f"{spec.bpmn_id}: {exc}") from exc
    self.rows[OpenTask].append(
        dict(
            id=task_id,
            instance_id=instance.id,
            child_id=instance.child_id,
            spec_id=spec.bpmn_id,
            name=name,
            lane=spec.lane,
            role_key=role.key,
            form=properties.get("formJsonSchemaFilename"),
            assignee_id=assignee,
            pooled=pooled,
            due_at=due_at,
            ready_at=now,
            sent_back=sent_back,
            **lateness,
        )
    )
    self.log(
        "task_ready",
        task_id=task_id,
        task=spec.bpmn_id,
        name=name,
        role=role.key,
        lane=spec.lane,
        assignee_id=assignee,
        pooled=pooled,
        due_at=due_at.isoformat() if due_at else None,
        **({"sent_back": sent_back} if sent_back else {}),
        **({"fallback_from": taken.fallback_from} if taken.fallback_from else {}),
        **({"needs_person": True} if taken.needs_person else {}),
    )
    child = self.child()
    due = f" by {due_at:%d %b %Y}" if due_at else ""
    if taken.needs_person:
        self.rows[Notification].append(
            needs_person_notice(instance.child_id, task_id, name, role.label, child.name, now)
        )
        return
    self.rows[Notification].append(
        dict(
            user_id=assignee,
            role_key=None if assignee else role.key,
            child_id=instance.child_id,
            task_id=task_id,
            kind="task_assigned" if assignee else "task_pooled",
            subject=f"{name} for {child.name}{due}",
            body=f"{name} ({role.label}) for {child.name} is ready{due}.",
            created_at=now,
            sent_at=None,
        )
    )


def sent_back_reason(self: Step, task) -> str | None:
    """Why the diagram sent this task back to be done again (its `sentBack` expression), if it did."""
    expression = task.task_spec.extensions.get("properties", {}).get(SENT_BACK_PROPERTY)
    if not expression:
        return None
    try:
        reason = self.engine.script_engine.environment.evaluate(expression, task.data)
    except ScriptError as exc:
        if isinstance(exc.__cause__, NameError):
            return None  # what would say why (a rating, feedback) is not in the data yet: opened the first time
        raise self.failure(exc, task.task_spec.bpmn_id) from exc
    reason = " ".join(str(reason).split()) if reason else ""
    return reason[:2000] or None


def deadline(self: Step, task) -> datetime | None:
    """The task's deadline: its dueDate expression, else its interrupting boundary timer."""
    expression = task.task_spec.extensions.get("properties", {}).get("dueDate")
    value = None
    if expression:
        try:
            value = self.workflow.script_engine.evaluate(task, expression)
        except Exception as exc:  # the diagram's due date expression failed
            raise self.failure(exc, task.task_spec.bpmn_id) from exc
    else:
        value = min((at for at, ends in tree.boundary_timers(task) if ends), default=None)
    return tree.as_datetime(value) if value else None
