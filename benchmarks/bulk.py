"""Grow the database to a national service's size by copying real instances, not by running the engine
100,000 times: each copy is a running instance of the simulated council (its state, open tasks and
timer) given fresh task ids and a new synthetic child, so the engine can go on running it."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from engine.models import CaseTeamMember, Child, Instance, OpenTask, Role, User

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BATCH = 500
CHILDREN_PER_PERSON = 6  # children each copied case-team member holds a role for
# state and waiting_messages go in as the JSON text the engine writes; times through the model's type
INSERT_INSTANCE = text(
    "INSERT INTO instance (id, child_id, definition_id, status, state, version, next_timer_at, waiting_messages, "
    "started_at, started_by, updated_at) VALUES (:id, :child_id, :definition_id, :status, :state, :version, "
    ":next_timer_at, :waiting_messages, :started_at, :started_by, :updated_at)"
).bindparams(
    *(bindparam(name, type_=Instance.__table__.c[name].type) for name in ("next_timer_at", "started_at", "updated_at"))
)


class Template:
    """A running instance with its open tasks, split so that copies get fresh task ids cheaply."""

    def __init__(self, instance: Instance, tasks: list[OpenTask]):
        self.instance, self.tasks = instance, tasks
        self.parts = UUID_TEXT.split(json.dumps(instance.state))
        self.ids = UUID_TEXT.findall(json.dumps(instance.state))

    def state_copy(self) -> tuple[str, dict[str, str]]:
        fresh = {old: str(uuid.uuid4()) for old in set(self.ids)}
        pieces = [self.parts[0]]
        for old, part in zip(self.ids, self.parts[1:], strict=True):
            pieces += [fresh[old], part]
        return "".join(pieces), fresh


def templates(session: Session, with_timer: bool) -> list[Template]:
    """Running instances of the simulated council: the ones whose timers fall due soonest (the sweep
    moves the clock past its copies' timers only, not months ahead through every timer of the council),
    or ones with open tasks and no timer (for the inbox)."""
    if with_timer:
        waiting, order = Instance.next_timer_at.is_not(None), Instance.next_timer_at
    else:
        waiting, order = Instance.next_timer_at.is_(None) & Instance.id.in_(select(OpenTask.instance_id)), Instance.id
    instances = session.scalars(
        select(Instance).where(Instance.status == "running", waiting).order_by(order, Instance.id).limit(200)
    ).all()
    return [Template(i, list(session.scalars(select(OpenTask).where(OpenTask.instance_id == i.id)))) for i in instances]


def copy_instances(sessions: sessionmaker[Session], count: int, with_timer: bool, prefix: str, progress=None) -> int:
    """Insert `count` copies of running instances, each for a new child with a copy of its case team."""
    if count <= 0:
        return 0
    with sessions() as session:
        sources = templates(session, with_timer) or templates(session, not with_timer)
        teams = {
            t.instance.child_id: list(
                session.execute(
                    select(CaseTeamMember.role_key, CaseTeamMember.user_id).where(
                        CaseTeamMember.child_id == t.instance.child_id
                    )
                )
            )
            for t in sources
        }
        next_id = (session.scalar(select(func.max(Instance.id))) or 0) + 1
    if not sources:
        return 0
    now = datetime.now(UTC)
    staff = _staff(sessions, count, prefix, {role for team in teams.values() for role, _ in team})
    made = 0
    while made < count:
        rows = {"child": [], "team": [], "instance": [], "task": []}
        for _ in range(min(BATCH, count - made)):
            source = sources[made % len(sources)]
            child_id = f"{prefix}{made + 1:07d}"
            rows["child"].append(
                {
                    "id": child_id,
                    "name": f"Bulk child {made + 1}",
                    "date_of_birth": None,
                    "school": None,
                    "created_at": now,
                    "history_seq": 0,
                    "history_head": "",
                }
            )
            team = {
                role: staff[role][made // CHILDREN_PER_PERSON] if role in staff else user
                for role, user in teams[source.instance.child_id]
            }
            rows["team"] += [{"child_id": child_id, "role_key": r, "user_id": u} for r, u in team.items()]
            state, fresh = source.state_copy()
            i = source.instance
            rows["instance"].append(
                {
                    "id": next_id,
                    "child_id": child_id,
                    "definition_id": i.definition_id,
                    "status": "running",
                    "state": state,
                    "version": 1,
                    "next_timer_at": i.next_timer_at,
                    "waiting_messages": json.dumps(i.waiting_messages or []),
                    "started_at": i.started_at,
                    "started_by": i.started_by,
                    "updated_at": i.updated_at,
                }
            )
            for task in source.tasks:
                rows["task"].append(
                    {
                        "id": fresh.get(task.id, str(uuid.uuid4())),
                        "instance_id": next_id,
                        "child_id": child_id,
                        "spec_id": task.spec_id,
                        "name": task.name,
                        "lane": task.lane,
                        "role_key": task.role_key,
                        "form": task.form,
                        "assignee_id": team.get(task.role_key) if task.assignee_id else None,
                        "pooled": task.pooled,
                        "due_at": task.due_at,
                        "ready_at": task.ready_at,
                    }
                )
            next_id += 1
            made += 1
        with sessions.begin() as session:
            session.execute(insert(Child), rows["child"])
            if rows["team"]:
                session.execute(insert(CaseTeamMember), rows["team"])
            # state and waiting_messages go in as the JSON text the engine would write
            session.execute(INSERT_INSTANCE, rows["instance"])
            if rows["task"]:  # instances that wait on a timer may have none
                session.execute(insert(OpenTask), rows["task"])
        if progress:
            progress(made)
    with sessions.begin() as session:
        if session.bind.dialect.name == "postgresql":
            session.execute(text("SELECT setval('instance_id_seq', (SELECT max(id) FROM instance))"))
    return made


def _staff(sessions, count: int, prefix: str, roles: set[str]) -> dict[str, list[int]]:
    """New case-team members for the copies: each person holds a role for a few children, as in a
    council; council-wide (pooled) roles are not in case teams and stay as they are."""
    people = -(-count // CHILDREN_PER_PERSON)
    with sessions.begin() as session:
        pooled = set(session.scalars(select(Role.key).where(Role.pooled)))
        roles = sorted(roles - pooled)
        session.execute(
            insert(User),
            [
                {"email": f"{role}.{n}@{prefix.lower()}.bulk.test", "name": f"{role} {n}", "active": True}
                for role in roles
                for n in range(people)
            ],
        )
        ids = dict(
            session.execute(select(User.email, User.id).where(User.email.like(f"%@{prefix.lower()}.bulk.test"))).all()
        )
    return {role: [ids[f"{role}.{n}@{prefix.lower()}.bulk.test"] for n in range(people)] for role in roles}


def busiest(session: Session, role_key: str) -> User:
    """The case-team member of this role with the most open tasks."""
    user_id = session.scalar(
        select(OpenTask.assignee_id)
        .where(OpenTask.role_key == role_key, OpenTask.assignee_id.is_not(None))
        .group_by(OpenTask.assignee_id)
        .order_by(func.count().desc())
        .limit(1)
    )
    return session.get(User, user_id)
