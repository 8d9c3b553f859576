"""Tables of people and children: roles, users and the roles they hold, schools and their designated
teachers, children and their case teams, access grants, and failed sign-ins.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .modelbase import Base


class Role(Base):
    """A professional role; lanes are matched to roles by label or alias, without regard to case."""

    __tablename__ = "role"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(120))
    pooled: Mapped[bool] = mapped_column(Boolean, default=False)
    sees_all_children: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    aliases: Mapped[list] = mapped_column(default=list)
    # the role whose holder or pool takes this role's tasks when a child's case team names nobody for it
    fallback: Mapped[str | None] = mapped_column(String(64))
    # holders see the Virtual School's oversight pages (timeliness, overdue work: webui/oversight.py)
    oversight: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    organisation: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    # Every signed-in session of this person carries this token; a new one (sign-out, a password change
    # or reset) ends them all. None: no session is valid until the person signs in (people.session_token).
    session_token: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    roles: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def role_keys(self) -> set[str]:
        return {r.role_key for r in self.roles}


class UserRole(Base):
    """A role a user holds across the council (e.g. VS Education Adviser, to claim pooled tasks)."""

    __tablename__ = "user_role"

    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    role_key: Mapped[str] = mapped_column(ForeignKey("role.key"), primary_key=True, index=True)


class School(Base):
    """A school or setting of the council's directory (engine/schools.py), known by its URN (the DfE's
    unique reference number), with its designated teacher(s)."""

    __tablename__ = "school"

    urn: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    teachers: Mapped[list[SchoolTeacher]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="SchoolTeacher.position"
    )


class SchoolTeacher(Base):
    """A designated teacher of a school; the first (`position` 0) is given the school's children."""

    __tablename__ = "school_teacher"

    school_urn: Mapped[str] = mapped_column(ForeignKey("school.urn", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Child(Base):
    """A child in care (or who was: `in_care` is cleared when they leave, set when they come back).
    `history_seq` and `history_head` are the tip of the child's hash chain. Their details are changed
    by engine/caselife.py, which writes each change to the history. `school` is the school's name as
    shown; `school_urn` the directory's school it is, when it is one (which sets the designated teacher)."""

    __tablename__ = "child"
    __table_args__ = (
        # the children list's filters and order (webui/cases.py): by school, by whether in care, by name
        Index("ix_child_school_urn_name", "school_urn", "name"),
        Index("ix_child_in_care_name", "in_care", "name"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    date_of_birth: Mapped[date | None]
    school: Mapped[str | None] = mapped_column(String(200))
    school_urn: Mapped[str | None] = mapped_column(ForeignKey("school.urn"))
    upn: Mapped[str | None] = mapped_column(String(13))  # the unique pupil number, as the case system holds it
    entered_care: Mapped[date | None]  # the date they last became looked after, as the case system holds it
    in_care: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    left_care_on: Mapped[date | None]  # the day they last left care (a report's date); None while in care since
    legal_status: Mapped[str | None] = mapped_column(String(80))  # a key of caselife.LEGAL_STATUSES
    in_area: Mapped[bool | None] = mapped_column(Boolean)  # placed in the council's own area; None: not recorded
    created_at: Mapped[datetime]
    history_seq: Mapped[int] = mapped_column(Integer, default=0)
    history_head: Mapped[str] = mapped_column(String(64), default="")
    # the holders of the roles an oversight breakdown names, kept from the case team (engine/groupkeys.py)
    social_worker_id: Mapped[int | None] = mapped_column(Integer, index=True)
    designated_teacher_id: Mapped[int | None] = mapped_column(Integer, index=True)
    education_adviser_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # the terms in which a PEP review of the child was completed on time, "|2025-26 autumn|2025-26 spring|",
    # kept as the steps sign them off (engine/groupkeys.py): the termly figures test each child without
    # looking up every term's reviews
    reviewed_terms: Mapped[str | None] = mapped_column(Text)


class CaseTeamMember(Base):
    """Who holds a role for one child: the child's social worker, designated teacher, ..."""

    __tablename__ = "case_team_member"

    __table_args__ = (
        # the children of one social worker (the children list's filter), the holders of a role
        Index("ix_case_team_member_role_user", "role_key", "user_id"),
    )

    child_id: Mapped[str] = mapped_column(ForeignKey("child.id", ondelete="CASCADE"), primary_key=True)
    role_key: Mapped[str] = mapped_column(ForeignKey("role.key"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)


class AccessGrant(Base):
    """Read access to one child (or, without a child, to every child of the council) given to an auditor.

    The VS administrator grants and revokes it with a reason; it lapses at `expires_at`.
    """

    __tablename__ = "access_grant"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[str | None] = mapped_column(ForeignKey("child.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(254))
    granted_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(254))
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class SignInFailure(Base):
    """A failed sign-in (or password check), kept briefly so that repeated failures are slowed down, per
    account and address and per address (engine/signin.py). A check in progress has its row already."""

    __tablename__ = "sign_in_failure"
    __table_args__ = (
        Index("ix_sign_in_failure_email_at", "email", "at"),
        Index("ix_sign_in_failure_remote_addr_at", "remote_addr", "at"),
        Index("ix_sign_in_failure_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
