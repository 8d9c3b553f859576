"""Users, children and case teams. Called by the CLI, the web app's administration pages and tests."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import clock
from .models import CaseTeamMember, Child, User, UserRole
from .roles import RoleDirectory


class PeopleError(ValueError):
    """Bad input about a person, a child or a role; the message says which."""


def add_user(session: Session, email: str, name: str, roles: list[str] = (), organisation: str | None = None,
             password_hash: str | None = None) -> User:
    """Create a user holding the given council-wide roles (names or aliases)."""
    if find_user(session, email) is not None:
        raise PeopleError(f"a user {email} already exists")
    user = User(email=email.strip().lower(), name=name, organisation=organisation, password_hash=password_hash)
    directory = RoleDirectory.load(session)
    for role in roles:
        user.roles.append(UserRole(role_key=_role_key(directory, role)))
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def add_child(session: Session, child_id: str, name: str, date_of_birth: date | None = None,
              school: str | None = None) -> Child:
    """Register a child in care."""
    if session.get(Child, child_id) is not None:
        raise PeopleError(f"a child {child_id} already exists")
    child = Child(id=child_id, name=name, date_of_birth=date_of_birth, school=school, created_at=clock.now())
    session.add(child)
    session.flush()
    return child


def set_case_team(session: Session, child_id: str, team: dict[str, str]) -> None:
    """Set who holds each role for a child: {role name: user email}."""
    if session.get(Child, child_id) is None:
        raise PeopleError(f"no child {child_id}")
    directory = RoleDirectory.load(session)
    for role, email in team.items():
        user = find_user(session, email)
        if user is None:
            raise PeopleError(f"no user {email}")
        key = _role_key(directory, role)
        member = session.get(CaseTeamMember, (child_id, key))
        if member is None:
            session.add(CaseTeamMember(child_id=child_id, role_key=key, user_id=user.id))
        else:
            member.user_id = user.id
    session.flush()


def case_team(session: Session, child_id: str) -> dict[str, User]:
    rows = session.execute(
        select(CaseTeamMember.role_key, User).join(User, User.id == CaseTeamMember.user_id)
        .where(CaseTeamMember.child_id == child_id)
    )
    return {role_key: user for role_key, user in rows}


def _role_key(directory: RoleDirectory, name: str) -> str:
    info = directory.resolve(name)
    if info is None:
        raise PeopleError(f'unknown role "{name}" (known: {", ".join(directory.labels())})')
    return info.key

