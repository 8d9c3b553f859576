"""The council's school directory: each school by its URN, with its designated teacher(s), and the
rule that a child's school sets the child's designated teacher.

Called by engine/caselife.py (a child's school set or changed), engine/importer.py, the web app's
school pages and the tests. The designated teacher in a child's case team is changed only through
`people.set_case_team`, so each change is written to the child's history, with the school that made it.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import CaseTeamMember, Child, School, SchoolTeacher, User, UserRole
from .people import READ_ONLY_ROLES, PeopleError, find_user, set_case_team

DT = "designated_teacher"
URN = re.compile(r"^\d{6,7}$")  # the DfE's unique reference number of a school or setting
MAX_NAME = 200


def urn_problem(urn: str) -> str | None:
    """What is wrong with a URN as typed, in words for the person who typed it; None if it will do."""
    if not urn:
        return "Enter the school's URN"
    if not URN.match(urn):
        return "The URN must be 6 or 7 digits, like 100000 (find it on Get Information about Schools)"
    return None


def find_school(session: Session, urn_or_name: str | None) -> School | None:
    """The directory's school with this URN, or else with exactly this name (any case); None if none or
    several schools have the name."""
    text = (urn_or_name or "").strip()
    if not text:
        return None
    if URN.match(text):
        return session.get(School, text)
    found = session.scalars(select(School).where(func.lower(School.name) == text.lower()).limit(2)).all()
    return found[0] if len(found) == 1 else None


def save_school(session: Session, urn: str, name: str, teacher_emails: list[str], actor: str) -> School:
    """Add or change a school and its designated teachers (the first is given the school's children).
    Each teacher becomes a holder of the Designated Teacher role; the school's children in care whose
    designated teacher is not one of the school's are given its first (`follow_school`)."""
    problem = urn_problem(urn) or (None if name.strip() else "Enter the school's name")
    if problem is None and len(name.strip()) > MAX_NAME:
        problem = f"The school's name must be {MAX_NAME} characters or fewer"
    if problem:
        raise PeopleError(problem)
    teachers = [
        _teacher(session, email) for email in dict.fromkeys(e.strip().lower() for e in teacher_emails if e.strip())
    ]
    school = session.get(School, urn)
    if school is None:
        school = School(urn=urn, name=name.strip())
        session.add(school)
    school.name = name.strip()
    school.teachers = [SchoolTeacher(school_urn=urn, user_id=user.id, position=n) for n, user in enumerate(teachers)]
    session.flush()
    for child in session.scalars(select(Child).where(Child.school_urn == urn, Child.in_care)):
        follow_school(session, child, actor, previous_urn=urn)
    return school


def _teacher(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise PeopleError(f"There is no one with the email address {email}: add them on the People page first")
    if READ_ONLY_ROLES & user.role_keys:
        raise PeopleError(f"{email} is an auditor, and cannot be a school's designated teacher")
    if DT not in user.role_keys:
        user.roles.append(UserRole(role_key=DT))
    return user


def teacher_ids(session: Session, urn: str | None) -> list[int]:
    """The school's designated teachers, first first."""
    if urn is None:
        return []
    return list(
        session.scalars(
            select(SchoolTeacher.user_id).where(SchoolTeacher.school_urn == urn).order_by(SchoolTeacher.position)
        )
    )


def follow_school(session: Session, child: Child, actor: str, previous_urn: str | None) -> list[dict]:
    """Make the child's designated teacher the one their school's directory entry names: kept if already
    one of the school's, else the school's first. A school with none (or no school in the directory)
    leaves the case team as it is, unless its teacher was the previous school's: they have no part in
    the child's education now, so nobody holds the role until one is set. Returns the changes made."""
    current = session.scalar(
        select(CaseTeamMember.user_id).where(CaseTeamMember.child_id == child.id, CaseTeamMember.role_key == DT)
    )
    teachers = teacher_ids(session, child.school_urn)
    if teachers:
        wanted = current if current in teachers else teachers[0]
    elif current is not None and current in teacher_ids(session, previous_urn) and previous_urn != child.school_urn:
        wanted = None
    else:
        return []
    if wanted == current:
        return []
    teacher = session.get(User, wanted) if wanted is not None else None
    email = teacher.email if teacher is not None else None
    return set_case_team(
        session, child.id, {DT: email}, actor=actor, why={"school_urn": child.school_urn, "school": child.school}
    )
