"""Users, children and case teams; the rules for a person's password and the token of their sessions.
Called by the CLI, the web app's administration and account pages, and tests."""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from . import clock, groupkeys, history
from .mail import one_line
from .models import CaseTeamMember, Child, Notification, OpenTask, SchoolTeacher, User, UserRole
from .roles import RoleDirectory

SYSTEM = "system"
INCIDENT_ROLE = "vs_administrator"  # who is told when a step could not run, or a task finds nobody
READ_ONLY_ROLES = frozenset({"auditor"})  # accounts that see only what they are granted, and change nothing


class PeopleError(ValueError):
    """Bad input about a person, a child or a role; the message says which."""


def add_user(
    session: Session,
    email: str,
    name: str,
    roles: Sequence[str] = (),
    organisation: str | None = None,
    password_hash: str | None = None,
) -> User:
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


def add_child(
    session: Session, child_id: str, name: str, date_of_birth: date | None = None, school: str | None = None
) -> Child:
    """Register a child in care."""
    if session.get(Child, child_id) is not None:
        raise PeopleError(f"a child {child_id} already exists")
    child = Child(id=child_id, name=name, date_of_birth=date_of_birth, school=school, created_at=clock.now())
    session.add(child)
    session.flush()
    return child


def set_case_team(
    session: Session, child_id: str, team: dict[str, str | None], actor: str = SYSTEM, why: dict | None = None
) -> list[dict]:
    """Set who holds each role for a child: {role name: user email, or None for nobody}. Each change is
    written to the child's history (with `why`, when something other than a person's choice made it:
    the school whose designated teacher it follows, an import), and the open tasks the previous holder
    had for that role go to the new holder (or back to the role's pool, or to nobody). Returns the
    changes made."""
    if session.get(Child, child_id) is None:
        raise PeopleError(f"no child {child_id}")
    directory = RoleDirectory.load(session)
    changes = []
    for role, email in team.items():
        key = _role_key(directory, role)
        info = directory.resolve(role)
        if info is None:
            raise PeopleError(f'"{role}" is not a role')
        if not info.casework:
            raise PeopleError(f"the {info.label} sees no child's record, so cannot be in a case team")
        user = None
        if email:
            user = find_user(session, email)
            if user is None:
                raise PeopleError(f"no user {email}")
            if READ_ONLY_ROLES & set(user.role_keys):
                raise PeopleError(
                    f"{user.email} is an auditor: auditors see a child only through a grant, not as part of a case team"
                )
        member = session.get(CaseTeamMember, (child_id, key))
        before = member.user_id if member else None
        after = user.id if user else None
        if before == after:
            continue
        if member is None:
            session.add(CaseTeamMember(child_id=child_id, role_key=key, user_id=after))
        elif after is None:
            session.delete(member)
        else:
            member.user_id = after
        moved, waiting = _move_open_tasks(session, directory, child_id, info, before, after)
        change = {
            "role": key,
            "from": _email(session, before),
            "to": user.email if user else None,
            "tasks": moved,
            **(why or {}),
        }
        changes.append({**change, "needs_person": waiting} if waiting else change)
    session.flush()
    if changes:
        groupkeys.refile(session, [child_id])  # the holders the oversight breakdowns group by
        history.append(
            session,
            child_id,
            [{"kind": "case_team_changed", "actor": actor, "data": change} for change in changes],
            clock.now(),
        )
    return changes


def _move_open_tasks(session, directory, child_id, role, before, after) -> tuple[list[str], list[str]]:
    """Give the open tasks the previous holder had for the role (or that waited for a person to hold
    it) to the new holder; with no new holder, to whoever the role's fallback finds (its pool, the
    fallback role's holder or pool), else to the "needs a person" list, telling the VS administrator.
    Returns the tasks moved, and those of them that now need a person."""
    if before is None:
        tasks = session.scalars(
            select(OpenTask).where(
                OpenTask.child_id == child_id,
                OpenTask.role_key == role.key,
                OpenTask.assignee_id.is_(None),
                OpenTask.pooled.is_(False),
            )
        )
    else:
        tasks = session.scalars(
            select(OpenTask).where(
                OpenTask.child_id == child_id, OpenTask.role_key == role.key, OpenTask.assignee_id == before
            )
        )
    team = {
        key: user_id
        for key, user_id in session.execute(
            select(CaseTeamMember.role_key, CaseTeamMember.user_id).where(CaseTeamMember.child_id == child_id)
        )
    }
    taken = directory.assignment(role, team)
    moved, waiting = [], []
    child = session.get(Child, child_id)
    for task in tasks.all():
        task.role_key, task.assignee_id, task.pooled = taken.role.key, taken.assignee, taken.pooled
        moved.append(task.id)
        if taken.needs_person:
            waiting.append(task.id)
            session.add(
                Notification(**needs_person_notice(child_id, task.id, task.name, role.label, child.name, clock.now()))
            )
        elif before is None and taken.assignee is not None:  # it waited for a person: tell them it is theirs
            session.add(
                Notification(
                    user_id=taken.assignee,
                    role_key=None,
                    child_id=child_id,
                    task_id=task.id,
                    kind="task_assigned",
                    subject=one_line(f"{task.name} for {child.name}"),
                    body=f"{task.name} ({taken.role.label}) for {child.name} is yours now.",
                    created_at=clock.now(),
                    sent_at=None,
                )
            )
    return moved, waiting


def needs_person_notice(child_id: str, task_id: str, task_name: str, role_label: str, child_name: str, at) -> dict:
    """The notice to the VS administrators of a task that nobody can take: the child's case team names
    nobody for its role, which has no pool and no fallback that finds anyone."""
    return dict(
        user_id=None,
        role_key=INCIDENT_ROLE,
        child_id=child_id,
        task_id=task_id,
        kind="task_needs_person",
        subject=one_line(f"{task_name} for {child_name} needs a person: nobody is their {role_label}"),
        body=(
            f"{task_name} for {child_name} is waiting for a {role_label}, and {child_name}'s case team names "
            f"nobody for that role. Set the case team, or see the list of tasks that need a person."
        ),
        created_at=at,
        sent_at=None,
    )


def _email(session, user_id: int | None) -> str | None:
    return session.get(User, user_id).email if user_id is not None else None


def holds_role_for(session: Session, user: User, child_id: str, role_names) -> bool:
    """Whether the user holds one of the named roles for the child: in the case team, or council-wide.
    A case-team role (a social worker's, a teacher's) held council-wide says only what the person is
    (whom a case team may name: `case_team_choices`); for a child it counts only in their case team."""
    directory = RoleDirectory.load(session)
    infos = [info for info in map(directory.resolve, role_names) if info is not None]
    keys = {info.key for info in infos}
    if {info.key for info in infos if info.pooled or info.sees_all_children} & set(user.role_keys):
        return True
    return (
        session.scalar(
            select(func.count())
            .select_from(CaseTeamMember)
            .where(
                CaseTeamMember.child_id == child_id,
                CaseTeamMember.user_id == user.id,
                CaseTeamMember.role_key.in_(keys),
            )
        )
        or 0
    ) > 0


def case_team(session: Session, child_id: str) -> dict[str, User]:
    rows = session.execute(
        select(CaseTeamMember.role_key, User)
        .join(User, User.id == CaseTeamMember.user_id)
        .where(CaseTeamMember.child_id == child_id)
    )
    return {role_key: user for role_key, user in rows}


# roles a person holds for one child only: another child's young person is never offered
ONE_CHILD_ROLES = frozenset({"young_person"})


def case_team_choices(session: Session, child_id: str, role_keys) -> dict[str, list[User]]:
    """Whom the child's case team may name for each role: active people, never an auditor, who hold the
    role council-wide, hold it in any case team, or (designated teachers) are a school's in the
    directory; for a young person, only one who is no other child's. The current holder is always
    among them. One query per role, on indexed columns."""
    current = {
        key: user_id
        for key, user_id in session.execute(
            select(CaseTeamMember.role_key, CaseTeamMember.user_id).where(CaseTeamMember.child_id == child_id)
        )
    }
    auditors = select(UserRole.user_id).where(UserRole.role_key.in_(READ_ONLY_ROLES))
    choices = {}
    for key in role_keys:
        holders = [
            select(UserRole.user_id).where(UserRole.role_key == key),
            select(CaseTeamMember.user_id).where(CaseTeamMember.role_key == key),
        ]
        if key == "designated_teacher":
            holders.append(select(SchoolTeacher.user_id))
        query = select(User).where(User.active, or_(*(User.id.in_(h) for h in holders)), User.id.not_in(auditors))
        if key in ONE_CHILD_ROLES:
            query = query.where(
                User.id.not_in(
                    select(CaseTeamMember.user_id).where(
                        CaseTeamMember.role_key == key, CaseTeamMember.child_id != child_id
                    )
                )
            )
        people = list(session.scalars(query.order_by(User.name)))
        held = session.get(User, current[key]) if key in current and all(p.id != current[key] for p in people) else None
        if held is not None:
            people.insert(0, held)
        choices[key] = people
    return choices


def _role_key(directory: RoleDirectory, name: str) -> str:
    info = directory.resolve(name)
    if info is None:
        raise PeopleError(f'unknown role "{name}" (known: {", ".join(directory.labels())})')
    return info.key


# ---- passwords and sessions ----------------------------------------------------------------------

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
# How hard to guess a new password must be: zxcvbn's score 3 (about 10^8 guesses or more, "safely
# unguessable" with a slow hash and throttled sign-in). It scores common passwords (its list of
# 30,000), keyboard patterns, repeats, sequences, dates, words with digits on the end, and the person's
# own name and email, low; a few unrelated words score 4.
MIN_PASSWORD_SCORE = 3
_ZXCVBN_LENGTH = 72  # zxcvbn refuses longer input; the first 72 characters are scored
_zxcvbn_lock = threading.Lock()  # zxcvbn keeps the person's own words in a module-level dictionary
_SERVICE_WORDS = ["pep", "personal education plan", "virtual school", "children in care", "looked after"]


def password_problem(password: str, email: str = "", name: str = "", current: str | None = None) -> str | None:
    """What is wrong with `password` as a person's new password, in words for them; None if it will do.

    The NCSC's advice (Password administration for system owners): a minimum length and no
    maximum worth speaking of, no rules about kinds of character, and no password that is common,
    a simple pattern or built from the person's own name or email address.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Your new password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Your new password must be {MAX_PASSWORD_LENGTH} characters or fewer"
    if not password.strip():
        return "Your new password must not be only spaces"
    if current is not None and password == current:
        return "Your new password must be different from your current password"
    squashed = _squash(password)
    own = [_squash(email.split("@")[0]), _squash(email), _squash(name)]
    if any(len(word) >= 4 and word in squashed for word in own):
        return "Your new password must not contain your name or email address"
    from zxcvbn import zxcvbn  # here, not at import: its lists take 11 MB that only this page needs

    words = [email, email.split("@")[0], name, *re.split(r"[\W_]+", f"{email} {name}"), *_SERVICE_WORDS]
    with _zxcvbn_lock:
        score = zxcvbn(password[:_ZXCVBN_LENGTH], user_inputs=[w for w in words if w])["score"]
    if score < MIN_PASSWORD_SCORE:
        return "Your new password is too easy to guess. Try 3 or more unrelated words"
    return None


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def session_token(user: User) -> str:
    """The token every signed-in session of the person carries, made at their first sign-in."""
    if not user.session_token:
        user.session_token = secrets.token_hex(32)
    return user.session_token


def end_sessions(user: User) -> None:
    """End every signed-in session of the person, on every device: their sessions' token is replaced.
    Called at sign-out, a password change, an administrator's reset and when an account is closed."""
    user.session_token = secrets.token_hex(32)
