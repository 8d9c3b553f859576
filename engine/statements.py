"""The engine's SQL: the hand-tuned statements a step reads and writes with, and the locks it takes.

Built once (SQLAlchemy caches their compiled form). Locks are always taken instance first, then the
child's history head, so two writers never deadlock; where the database has row locks (PostgreSQL) a
person's step reads its instance and child `FOR UPDATE`, and the sweep takes each due instance `FOR
UPDATE SKIP LOCKED`. SQLite locks the whole database at a step's first write instead (`locks_rows`).
"""

from __future__ import annotations

from typing import NamedTuple, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session, defer, joinedload, lazyload

from .db import json_rows
from .errors import NotAllowed, TaskNotReady
from .models import (
    CaseTeamMember,
    Child,
    Deployment,
    Instance,
    Notification,
    OpenTask,
    PpplusEntry,
    ProcessDefinition,
    User,
    UserRole,
)
from .vocabulary import Status

# Load an instance without its definition's spec (the engine caches specs) and without every file
# and spec of its deployment: reading those on each step cost more than running the step.
LEAN_DEFINITION = (
    joinedload(ProcessDefinition.deployment).options(lazyload(Deployment.files), lazyload(Deployment.definitions)),
)
LEAN_INSTANCE = (joinedload(Instance.definition).options(defer(ProcessDefinition.spec), *LEAN_DEFINITION),)
# A step's reads and writes of the projections, built once (their compiled form is cached by SQLAlchemy)
_OPEN, _TEAM, _CHILD, _INSTANCE, _NOTICE, _LEDGER = (
    cast(Table, model.__table__) for model in (OpenTask, CaseTeamMember, Child, Instance, Notification, PpplusEntry)
)
# the columns set are the parameters' other keys; it lands only on the version the step loaded
WRITE_INSTANCE = _INSTANCE.update().where(
    _INSTANCE.c.id == bindparam("instance_id"), _INSTANCE.c.version == bindparam("loaded_version")
)
OPEN_TASKS_OF = select(_OPEN.c.id, _OPEN.c.spec_id, _OPEN.c.name).where(_OPEN.c.instance_id == bindparam("instance_id"))
CLOSE_TASK = _OPEN.delete().where(_OPEN.c.id == bindparam("task_id"))
INSERT_ROWS = {OpenTask: _OPEN.insert().inline(), Notification: _NOTICE.insert().inline()}  # no id read back
CASE_TEAM = select(_TEAM.c.role_key, _TEAM.c.user_id).where(_TEAM.c.child_id == bindparam("child_id"))
CHILD_SCHOOL = select(_CHILD.c.school).where(_CHILD.c.id == bindparam("child_id"))
INSERT_LEDGER = _LEDGER.insert().inline()
LEDGER_OF = select(
    PpplusEntry.child_id,
    PpplusEntry.instance_id,
    PpplusEntry.entry,
    PpplusEntry.source,
    PpplusEntry.step_seq,
    PpplusEntry.amount_pence,
).where(PpplusEntry.instance_id == bindparam("instance_id"))
CHILD_FOR_STEP = (
    select(_CHILD.c.name, _CHILD.c.history_seq, _CHILD.c.history_head)
    .where(_CHILD.c.id == bindparam("child_id"))
    .with_for_update()
)

# A task with its instance, and in the same statement what deciding who may act and running the step
# need: the acting user (e-mails are stored lower-case, so the unique index finds them) and their
# roles, the child's case team, the instance's open tasks, the child's name and history tip.
_SIBLING = _OPEN.alias("sibling")
_ACTOR = select(User.id).where(User.email == bindparam("email"), User.active)
TASK_FOR_ACTOR = (
    select(
        OpenTask,
        Instance,
        _ACTOR.scalar_subquery().label("actor_id"),
        select(json_rows(UserRole.role_key))
        .where(UserRole.user_id == _ACTOR.scalar_subquery())
        .scalar_subquery()
        .label("actor_roles"),
        select(json_rows(_TEAM.c.role_key, _TEAM.c.user_id))
        .where(_TEAM.c.child_id == _OPEN.c.child_id)
        .scalar_subquery()
        .label("team"),
        select(json_rows(_SIBLING.c.id, _SIBLING.c.spec_id, _SIBLING.c.name))
        .where(_SIBLING.c.instance_id == _OPEN.c.instance_id)
        .scalar_subquery()
        .label("open_tasks"),
        _CHILD.c.name.label("child_name"),
        _CHILD.c.history_seq,
        _CHILD.c.history_head,
    )
    .join(Instance, Instance.id == OpenTask.instance_id)
    .join(_CHILD, _CHILD.c.id == OpenTask.child_id)
    .where(OpenTask.id == bindparam("task_id"))
    # the definition without its spec or deployment: forms are cached by deployment id (_form_source)
    .options(
        joinedload(Instance.definition).options(defer(ProcessDefinition.spec), lazyload(ProcessDefinition.deployment))
    )
)
# ...to complete it: the instance and the child are locked (in that order, as every step takes them)
# where the database has row locks, so that the step's writes need not read anything back
TASK_FOR_STEP = TASK_FOR_ACTOR.with_for_update(of=[Instance, _CHILD])


def due_for_sweep(instance_id: int, now):
    """The sweep's read of one instance whose timer is due: locked, and passed over while another
    sweeper (or a person's step) holds it; nothing when it is no longer running or due."""
    return (
        select(Instance)
        .where(Instance.id == instance_id, Instance.status == Status.RUNNING, Instance.next_timer_at < now)
        .with_for_update(skip_locked=True, of=Instance)
        .options(*LEAN_INSTANCE)
    )


def locks_rows(session: Session) -> bool:
    """Whether the database locks rows (PostgreSQL); SQLite locks the whole database at the first write."""
    return session.get_bind().dialect.name != "sqlite"


class ChildTip(NamedTuple):
    """The child's name and the end of its history chain, as a step reads them."""

    name: str
    history_seq: int
    history_head: str


class Known(NamedTuple):
    """What a step's first read already found, so the step does not read it again."""

    team: dict[str, int]
    open_tasks: dict[str, tuple[str, str]]  # task id → (spec id, name)
    child: ChildTip | None  # only when read under the child's row lock


def task_for_actor(session: Session, task_id: str, actor_email: str, lock: bool = False, fresh: bool = False):
    """The open task, its instance, the acting user's id and what the step will need, if the user
    may act on the task; `lock` (to complete it) holds the instance and the child until commit;
    `fresh` reads the task and instance again over what the session holds of them."""
    statement = TASK_FOR_STEP if lock else TASK_FOR_ACTOR
    if fresh:
        statement = statement.execution_options(populate_existing=True)
    row = session.execute(statement, {"task_id": task_id, "email": actor_email.strip().lower()}).first()
    if row is None:
        raise TaskNotReady(f"task {task_id} is not open (it may have been completed or withdrawn)")
    open_task, instance = row.OpenTask, row.Instance
    if row.actor_id is None:
        raise NotAllowed(f"no active user {actor_email}")
    team = {role_key: user_id for role_key, user_id in row.team or ()}
    if not may_act(row.actor_id, {key for (key,) in row.actor_roles or ()}, team, open_task):
        raise NotAllowed(f"{actor_email} does not hold the role {open_task.lane} for child {open_task.child_id}")
    locked = lock and locks_rows(session)  # SQLite's is read again under its write lock
    known = Known(
        team,
        {task: (spec_id, name) for task, spec_id, name in row.open_tasks or ()},
        ChildTip(row.child_name, row.history_seq, row.history_head) if locked else None,
    )
    return open_task, instance, row.actor_id, known


def may_act(user_id: int, role_keys: set[str], team: dict[str, int], open_task: OpenTask) -> bool:
    """Whether the user holds the task's lane role for this child (case team, pool, or claim)."""
    if open_task.assignee_id is not None:
        return open_task.assignee_id == user_id
    if open_task.pooled and open_task.role_key in role_keys:
        return True
    return team.get(open_task.role_key) == user_id
