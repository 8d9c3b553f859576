"""Starting a council: its children, their case teams, its schools and people, from the CSV a case
system extracts (one row per child in care). Called by `pep import`, the web app's import page and
benchmarks/importing.py.

`read` turns the file into rows (or says, row by row, what is wrong); `plan` compares them with what
the database holds: what would be added, changed and left alone, and which children entering care
would start their initial PEP; `apply` does it, in the caller's transaction. Importing the same file
again changes nothing: the import is idempotent. Children the file does not name are left alone (a
child leaving care is reported on their page, never inferred from an absent row).

New children are written in bulk, each with the first event of their history (`child_imported`: the
row as read). A child already known whose row differs is changed through `caselife.change_details`
and `people.set_case_team`, as a person's edit would be, each change in their history. A child who
entered care within the last 20 working days (the first care-plan review's deadline) and has had no
PEP here is reported as coming into care through the diagrams' own message
(`child_becomes_looked_after`, `Engine.send_message`): whatever the council's diagrams start by it.

Reading the file (`read`, `decode`: its columns, each row's values, what is wrong with them) is in
`importrows`; `ImportRefused` and `read` are re-exported.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from . import caselife, groupkeys, history
from .calendar import working_days_dt
from .importrows import DT, SW, ImportRefused, Row, decode, read  # noqa: F401 - ImportRefused: re-exported
from .models import CaseTeamMember, Child, Instance, School, SchoolTeacher, User, UserRole
from .people import READ_ONLY_ROLES, case_team, set_case_team

CHUNK = 500  # ids per IN (...) list: within every database's limit on bound parameters
IMPORTED = "child_imported"


@dataclass
class ChildPlan:
    row: Row
    action: str  # "add", "change" or "same"
    changes: list[str] = field(default_factory=list)  # what would change, in words
    starts_pep: bool = False


@dataclass
class Plan:
    digest: str  # of the file: what the history records an import by
    children: list[ChildPlan] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    people_added: dict[str, str] = field(default_factory=dict)  # email: name
    roles_added: list[tuple[str, str]] = field(default_factory=list)  # (email, role key) for people known
    schools_added: dict[str, str] = field(default_factory=dict)  # urn: name
    schools_renamed: dict[str, str] = field(default_factory=dict)  # urn: new name
    teachers_added: list[tuple[str, str]] = field(default_factory=list)  # (urn, email)
    not_in_file: int = 0  # children the database holds that the file does not name: left alone

    def count(self, action: str) -> int:
        return sum(1 for c in self.children if c.action == action)

    @property
    def starts(self) -> list[ChildPlan]:
        return [c for c in self.children if c.starts_pep]

    def summary(self, done: bool = False) -> str:
        """What the import would do (or did), in a sentence."""
        add, change, start = ("added", "changed", "started") if done else ("to add", "to change", "to start")
        return (
            f"{self.count('add')} children {add}, {self.count('change')} {change}, {self.count('same')} left "
            f"alone as they are ({self.not_in_file} more not in the file, left alone); "
            f"{len(self.people_added)} people and {len(self.schools_added)} schools {add}; "
            f"{len(self.starts)} initial PEPs {start}"
        )


# ---- what it would do --------------------------------------------------------------------------------


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def plan(session: Session, rows: list[Row], errors: list[str], digest: str, now: datetime) -> Plan:
    """What importing the rows would do to the database as it is; nothing is written."""
    result = Plan(digest=digest, errors=list(errors))
    ids = [row.child_id for row in rows]
    known: dict[str, Child] = {}
    team: dict[tuple[str, str], int] = {}
    had_pep: set[str] = set()
    for chunk in _chunks(ids):
        known.update({c.id: c for c in session.scalars(select(Child).where(Child.id.in_(chunk)))})
        team.update(
            {
                (c, r): u
                for c, r, u in session.execute(
                    select(CaseTeamMember.child_id, CaseTeamMember.role_key, CaseTeamMember.user_id).where(
                        CaseTeamMember.child_id.in_(chunk), CaseTeamMember.role_key.in_((SW, DT))
                    )
                )
            }
        )
        had_pep.update(session.scalars(select(Instance.child_id).where(Instance.child_id.in_(chunk)).distinct()))
    result.not_in_file = session.execute(select(func.count()).select_from(Child)).scalar_one() - len(known)
    people = {email: (uid, active) for email, uid, active in session.execute(select(User.email, User.id, User.active))}
    emails = {uid: email for email, (uid, _active) in people.items()}
    held = {(uid, key) for uid, key in session.execute(select(UserRole.user_id, UserRole.role_key))}
    auditors = {uid for uid, key in held if key in READ_ONLY_ROLES}
    schools = dict(session.execute(select(School.urn, School.name)).all())
    teachers: dict[str, list[str]] = {}  # school → its designated teachers' emails
    for urn, uid in session.execute(
        select(SchoolTeacher.school_urn, SchoolTeacher.user_id).order_by(
            SchoolTeacher.school_urn, SchoolTeacher.position
        )
    ):
        teachers.setdefault(urn, []).append(emails[uid])
    today = now.date()
    for row in rows:
        problems = _people_problems(row, people, auditors)
        if row.school_urn:
            problems += _school(result, row, schools, teachers)
        if problems:
            result.errors.extend(f"Row {row.number}: {problem}" for problem in problems)
            continue
        for role in (SW, DT):
            email = getattr(row, f"{role}_email")
            if email is None:
                continue
            if email not in people and email not in result.people_added:
                result.people_added[email] = getattr(row, f"{role}_name") or _name_from(email)
            if email in people and (people[email][0], role) not in held and (email, role) not in result.roles_added:
                result.roles_added.append((email, role))
        result.children.append(
            _child_plan(row, known.get(row.child_id), team, emails, teachers, schools, had_pep, today)
        )
    return result


def _people_problems(row: Row, people: dict, auditors: set[int]) -> list[str]:
    problems = []
    for role in (SW, DT):
        email = getattr(row, f"{role}_email")
        if email in people:
            uid, active = people[email]
            if uid in auditors:
                problems.append(
                    f"{email} is an auditor: auditors see a child only through a grant, never in a case team"
                )
            elif not active:
                problems.append(f"{email}'s account is closed: open it on the People page, or give someone else")
    return problems


def _school(result: Plan, row: Row, schools: dict[str, str], teachers: dict[str, list]) -> list[str]:
    """Note the school the row names (new, renamed, a teacher more); what is wrong with it."""
    urn = row.school_urn
    assert urn is not None  # noted only for a row that names a school (plan)
    name = row.school_name
    if urn not in schools and urn not in result.schools_added:
        result.schools_added[urn] = name or f"School {urn}"
    elif name:
        current = result.schools_added.get(urn) or result.schools_renamed.get(urn) or schools.get(urn)
        if urn in result.schools_added and current != name:
            return [f"the school {urn} is “{current}” on an earlier row and “{name}” here: give it one name"]
        if current != name:
            result.schools_renamed[urn] = name
    if row.designated_teacher_email and row.designated_teacher_email not in teachers.get(urn, []):
        teachers.setdefault(urn, []).append(row.designated_teacher_email)
        result.teachers_added.append((urn, row.designated_teacher_email))
    return []


def _child_plan(
    row: Row,
    child: Child | None,
    team: dict,
    emails: dict[int, str],
    teachers: dict,
    schools: dict,
    had_pep: set[str],
    today: date,
) -> ChildPlan:
    recent = row.entered_care is not None and working_days_dt(20, row.entered_care).date() >= today
    if child is None:
        return ChildPlan(row, "add", starts_pep=recent)
    wanted = _details(row, schools)
    before = caselife.details_of(child)
    changes = [caselife.DETAIL_TITLES[name] for name, value in wanted.items() if before[name] != value]
    if not child.in_care:
        changes.append("In care")
    for role, label in ((SW, "Social worker"), (DT, "Designated teacher")):
        uid = team.get((child.id, role))
        current = emails.get(uid) if uid is not None else None
        email = _team_email(row, role, teachers, current)
        if email is not None and current != email:
            changes.append(label)
    starts = recent and (child.id not in had_pep or not child.in_care)
    return ChildPlan(row, "change" if changes else "same", changes, starts)


def _details(row: Row, schools: dict[str, str]) -> dict:
    """The child's details as the row gives them (what it leaves blank is left as it is)."""
    values = {"name": row.name}
    if row.date_of_birth:
        values["date_of_birth"] = row.date_of_birth.isoformat()
    if row.upn:
        values["upn"] = row.upn
    if row.school_urn:
        values["school_urn"] = row.school_urn
        values["school"] = row.school_name or schools.get(row.school_urn) or f"School {row.school_urn}"
    elif row.school_name:
        values["school"] = row.school_name
    if row.legal_status:
        values["legal_status"] = row.legal_status
    if row.entered_care:
        values["entered_care"] = row.entered_care.isoformat()
    return values


def _team_email(row: Row, role: str, teachers: dict, current: str | None = None) -> str | None:
    """Who the row makes the child's social worker or designated teacher: as it names them, or (a
    teacher) the school's designated teacher (the one they have, if one of the school's, else its
    first; engine/schools.py); None: left as it is."""
    email = getattr(row, f"{role}_email")
    if email is None and role == DT and row.school_urn and teachers.get(row.school_urn):
        return current if current in teachers[row.school_urn] else teachers[row.school_urn][0]
    return email


def _name_from(email: str) -> str:
    return " ".join(part.capitalize() for part in re.split(r"[._-]+", email.split("@")[0]) if part) or email


# ---- doing it ----------------------------------------------------------------------------------------


def apply(session: Session, result: Plan, engine, actor: str, progress: Callable[[int], None] | None = None) -> Plan:
    """Do what the plan says, in the caller's transaction; refused while the plan has errors."""
    if result.errors:
        raise ImportRefused(
            f"The file has {len(result.errors)} problem(s): fix them and import it again; nothing was changed"
        )
    now = engine.now()
    _people(session, result)
    uid = dict(session.execute(select(User.email, User.id)).all())
    _schools(session, result, uid)
    schools = dict(session.execute(select(School.urn, School.name)).all())
    teacher_ids: dict[str, list[int]] = {}
    for urn, user_id in session.execute(
        select(SchoolTeacher.school_urn, SchoolTeacher.user_id).order_by(
            SchoolTeacher.school_urn, SchoolTeacher.position
        )
    ):
        teacher_ids.setdefault(urn, []).append(user_id)
    emails = {v: k for k, v in uid.items()}
    teachers = {urn: [emails[i] for i in ids] for urn, ids in teacher_ids.items()}
    new = [c for c in result.children if c.action == "add"]
    for chunk in _chunks(new, 1000):
        _add_children(session, chunk, result.digest, actor, now, uid, teachers, schools)
        if progress:
            progress(len(chunk))
    for plan_ in result.children:
        if plan_.action == "change":
            _change_child(session, plan_.row, result.digest, actor, now, teachers, schools)
        if plan_.action != "add" and progress:
            progress(1)
    for plan_ in result.starts:
        row = plan_.row
        assert row.entered_care is not None  # a PEP starts only for a recent entry into care (_child_plan)
        engine.send_message(
            session,
            caselife.COMING_INTO_CARE,
            row.child_id,
            {
                "entry": "planned",
                "entered_care": row.entered_care.isoformat(),
                "education_setting": "school" if row.school_urn or row.school_name else "none",
                **({"school": _details(row, schools)["school"]} if row.school_urn or row.school_name else {}),
            },
            actor=actor,
        )
    return result


def _people(session: Session, result: Plan) -> None:
    if result.people_added:
        session.execute(
            insert(User),
            [{"email": email, "name": name, "active": True} for email, name in result.people_added.items()],
        )
    roles = list(result.roles_added)
    for row in (c.row for c in result.children):
        for role in (SW, DT):
            email = getattr(row, f"{role}_email")
            if email in result.people_added and (email, role) not in roles:
                roles.append((email, role))
    if roles:
        uid = dict(session.execute(select(User.email, User.id).where(User.email.in_({e for e, _ in roles}))).all())
        session.execute(insert(UserRole), [{"user_id": uid[email], "role_key": role} for email, role in roles])
    session.expire_all()  # people the session holds see their new roles


def _schools(session: Session, result: Plan, uid: dict[str, int]) -> None:
    if result.schools_added:
        session.execute(insert(School), [{"urn": urn, "name": name} for urn, name in result.schools_added.items()])
    for urn, name in result.schools_renamed.items():
        school = session.get(School, urn)
        assert school is not None  # renamed: a school the database holds (none is ever deleted)
        school.name = name
    if result.teachers_added:
        positions = dict(
            session.execute(select(SchoolTeacher.school_urn, func.count()).group_by(SchoolTeacher.school_urn)).all()
        )
        rows = []
        for urn, email in result.teachers_added:
            rows.append({"school_urn": urn, "user_id": uid[email], "position": positions.get(urn, 0)})
            positions[urn] = positions.get(urn, 0) + 1
        session.execute(insert(SchoolTeacher), rows)
    session.flush()


def _add_children(
    session: Session,
    plans: list[ChildPlan],
    digest: str,
    actor: str,
    now: datetime,
    uid: dict[str, int],
    teachers: dict,
    schools: dict,
) -> None:
    """Insert new children in bulk, each with the first event of their history and their case team."""
    children, events = [], []
    members: list[dict[str, object]] = []
    for plan_ in plans:
        row = plan_.row
        details = _details(row, schools)
        named = {role: _team_email(row, role, teachers) for role in (SW, DT)}
        team = {role: email for role, email in named.items() if email}
        rows, seq, head = history.signed_rows(
            row.child_id,
            [
                {
                    "kind": IMPORTED,
                    "actor": actor,
                    "data": {"row": row.number, "file": digest, "details": details, "case_team": team},
                }
            ],
            now,
        )
        events.extend(rows)
        children.append(
            {
                "id": row.child_id,
                "name": row.name,
                "date_of_birth": row.date_of_birth,
                "school": details.get("school"),
                "school_urn": row.school_urn,
                "upn": row.upn,
                "legal_status": row.legal_status,
                "entered_care": row.entered_care,
                "in_care": True,
                "created_at": now,
                "history_seq": seq,
                "history_head": head,
            }
        )
        members.extend(
            {"child_id": row.child_id, "role_key": role, "user_id": uid[email]} for role, email in team.items()
        )
    session.execute(insert(Child), children)
    session.execute(history.EVENTS, events)
    if members:
        session.execute(insert(CaseTeamMember), members)
        groupkeys.refile(session, {str(member["child_id"]) for member in members})  # their holders, for the breakdowns


def _change_child(
    session: Session, row: Row, digest: str, actor: str, now: datetime, teachers: dict, schools: dict
) -> None:
    """Change a known child as their row says, each change in their history, as a person's edit would."""
    child = session.get(Child, row.child_id)
    assert child is not None  # planned as a change: a child the database holds (none is ever deleted)
    why = {"imported": digest, "row": row.number}
    current = {role: user.email for role, user in case_team(session, child.id).items()}
    team = {role: _team_email(row, role, teachers, current.get(role)) for role in (SW, DT)}
    set_case_team(session, child.id, {role: email for role, email in team.items() if email}, actor=actor, why=why)
    values = _details(row, schools)
    if not child.in_care and not (row.entered_care and working_days_dt(20, row.entered_care).date() >= now.date()):
        values["in_care"] = True  # back in care long enough ago that no initial PEP is due: the record says so
    caselife.change_details(session, child, values, actor, now, **why)


def import_file(session: Session, content: bytes, now: datetime) -> Plan:
    """Read an extract and plan its import (nothing is written); the plan names every problem."""
    digest = hashlib.sha256(content).hexdigest()
    rows, errors = read(decode(content))
    return plan(session, rows, errors, digest, now)
