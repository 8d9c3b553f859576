"""The people and children lists at a council's size: search, filters and pages of 50, each an indexed
query (names by `ix_app_user_name` / `ix_child_name`, a school's children by `ix_child_school_urn_name`,
a social worker's by `ix_case_team_member_role_user`). Called by the web app's lists and their CSV
exports; who may see which child is the caller's WHERE clause (webui/access.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from .models import CaseTeamMember, Child, User, UserRole

PAGE_SIZE = 50


@dataclass
class Page:
    rows: list
    total: int
    number: int  # from 1
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first(self) -> int:
        return (self.number - 1) * self.size + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.total, self.number * self.size)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def children_query(
    visible: ColumnElement,
    search: str = "",
    school_urn: str | None = None,
    in_care: bool | None = None,
    social_worker_id: int | None = None,
) -> Select:
    """The children the person may see (`visible`), found by name, case number or UPN, at a school, in
    care or not, of a social worker; by name."""
    query = select(Child).where(visible)
    if search:
        query = query.where(
            or_(
                func.lower(Child.name).like(_like(search), escape="\\"), Child.id == search, Child.upn == search.upper()
            )
        )
    if school_urn:
        query = query.where(Child.school_urn == school_urn)
    if in_care is not None:
        query = query.where(Child.in_care.is_(in_care))
    if social_worker_id is not None:
        query = query.where(
            Child.id.in_(
                select(CaseTeamMember.child_id).where(
                    CaseTeamMember.role_key == "social_worker", CaseTeamMember.user_id == social_worker_id
                )
            )
        )
    return query.order_by(Child.name, Child.id)


def people_query(search: str = "", role_key: str | None = None, active: bool | None = None) -> Select:
    """People found by name or email, holding a role council-wide, able to sign in or not; by name."""
    query = select(User)
    if search:
        query = query.where(
            or_(
                func.lower(User.name).like(_like(search), escape="\\"),
                func.lower(User.email).like(_like(search), escape="\\"),
            )
        )
    if role_key:
        query = query.where(User.id.in_(select(UserRole.user_id).where(UserRole.role_key == role_key)))
    if active is not None:
        query = query.where(User.active.is_(active))
    return query.order_by(User.name, User.id)


def page_of(session: Session, query: Select, number: int, size: int = PAGE_SIZE) -> Page:
    """One page of the query's rows (a page past the end: the last), and how many there are in all."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    last = max(1, -(-total // size))
    number = min(max(1, number), last)
    rows = list(session.scalars(query.limit(size).offset((number - 1) * size)))
    return Page(rows, total, number, size)
