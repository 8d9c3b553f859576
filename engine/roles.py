"""The role vocabulary: lane names → roles, and who takes a task when the child's case team names nobody
for its role (`RoleDirectory.assignment`). Called by deploy (lane checks), the runtime (assignment) and
engine/people.py (a case-team change)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import CONFIG
from .models import Role

DEFAULT_ROLES_FILE = CONFIG / "roles.yaml"


@dataclass(frozen=True)
class RoleInfo:
    key: str
    label: str
    pooled: bool
    sees_all_children: bool = False
    fallback: str | None = None  # the role (key) that takes this role's tasks when the child has nobody in it

    @property
    def casework(self) -> bool:
        """Whether holders of the role may be given a child's work or news: they are in a child's case
        team (a role that is not pooled) or see every child. A pooled role that sees no child (process
        owner, auditor) may not: they never see a child's data through a task or a notification."""
        return self.sees_all_children or not self.pooled


@dataclass(frozen=True)
class Assignment:
    """Who takes a task: a holder of `role` for the child (`assignee`), or its pool (`pooled`), or
    nobody: the task needs a person, and the VS administrator is told. `fallback_from` is the lane's
    role when another role (its fallback) takes the task."""

    role: RoleInfo
    assignee: int | None
    pooled: bool
    fallback_from: str | None = None

    @property
    def needs_person(self) -> bool:
        return self.assignee is None and not self.pooled


class RoleDirectory:
    """Resolve a lane name to a role by key, label or alias, case-insensitively."""

    def __init__(self, roles: list[Role]):
        self._by_name: dict[str, RoleInfo] = {}
        for role in roles:
            info = RoleInfo(role.key, role.label, role.pooled, role.sees_all_children, role.fallback)
            for name in [role.key, role.label, *role.aliases]:
                self._by_name[_norm(name)] = info

    @classmethod
    def load(cls, session: Session) -> RoleDirectory:
        return cls(list(session.scalars(select(Role))))

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def resolve(self, lane: str | None) -> RoleInfo | None:
        return self._by_name.get(_norm(lane or ""))

    def labels(self) -> list[str]:
        return sorted({info.label for info in self._by_name.values()})

    def fallbacks(self, role: RoleInfo, fallback: str | None = None) -> list[RoleInfo]:
        """The roles tried, in order, for a task of `role`: the role, then its fallback (the task's own
        `fallback` first, else the role's from config/roles.yaml), then that role's, and so on; a role
        that sees no child's record, or one tried already, ends the list."""
        tried: list[RoleInfo] = []
        current: RoleInfo | None = role
        override = fallback
        while current is not None and current.casework and current not in tried:
            tried.append(current)
            name, override = override or current.fallback, None
            current = self.resolve(name) if name else None
        return tried

    def assignment(self, role: RoleInfo, team: dict[str, int], fallback: str | None = None) -> Assignment:
        """Who takes a task of `role` for a child whose case team is `team` (role key → user id): along
        `fallbacks`, the first role that the case team names someone for, or that has a pool; else nobody."""
        for current in self.fallbacks(role, fallback):
            fallback_from = role.key if current is not role else None
            if current.key in team:
                return Assignment(current, team[current.key], False, fallback_from)
            if current.pooled:
                return Assignment(current, None, True, fallback_from)
        return Assignment(role, None, False)

    def may_have_nobody(self, role: RoleInfo, fallback: str | None = None) -> bool:
        """Whether a task of `role` can find nobody: no role along its fallbacks has a pool."""
        return not any(current.pooled for current in self.fallbacks(role, fallback))


def _norm(name: str) -> str:
    return " ".join(name.replace("-", " ").split()).casefold()


def seed_roles(session: Session, path: Path = DEFAULT_ROLES_FILE) -> int:
    """Add the roles of the seed file that the database does not have yet; return how many."""
    existing = set(session.scalars(select(Role.key)))
    added = 0
    for entry in yaml.safe_load(path.read_text())["roles"]:
        if entry["key"] in existing:
            continue
        session.add(
            Role(
                key=entry["key"],
                label=entry["label"],
                pooled=bool(entry.get("pooled", False)),
                sees_all_children=bool(entry.get("sees_all_children", False)),
                aliases=list(entry.get("aliases") or []),
                fallback=entry.get("fallback"),
                oversight=bool(entry.get("oversight", False)),
            )
        )
        added += 1
    session.flush()
    directory = RoleDirectory.load(session)
    for key, fallback in session.execute(select(Role.key, Role.fallback).where(Role.fallback.is_not(None))):
        target = directory.resolve(fallback)
        if target is None or not target.casework:
            raise ValueError(
                f'the fallback of role "{key}", "{fallback}", is not a role that may be given a child\'s work'
            )
    return added
