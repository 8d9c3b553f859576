"""The role vocabulary: lane names → roles. Called by deploy (lane checks) and the runtime (assignment)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Role

DEFAULT_ROLES_FILE = Path(__file__).resolve().parent.parent / "config" / "roles.yaml"


@dataclass(frozen=True)
class RoleInfo:
    key: str
    label: str
    pooled: bool
    sees_all_children: bool = False

    @property
    def casework(self) -> bool:
        """Whether holders of the role may be given a child's work or news: they are in a child's case
        team (a role that is not pooled) or see every child. A pooled role that sees no child (process
        owner, auditor) may not: they never see a child's data through a task or a notification."""
        return self.sees_all_children or not self.pooled


class RoleDirectory:
    """Resolve a lane name to a role by key, label or alias, case-insensitively."""

    def __init__(self, roles: list[Role]):
        self._by_name: dict[str, RoleInfo] = {}
        for role in roles:
            info = RoleInfo(role.key, role.label, role.pooled, role.sees_all_children)
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
            )
        )
        added += 1
    session.flush()
    return added
