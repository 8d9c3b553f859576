"""Database tables of the engine: deployments, people, children, instances, open tasks, history.

Everything that finds work (inboxes, due timers, message routing) reads the indexed projection
tables here, never the serialized workflow state.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given where UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONData = JSON().with_variant(JSONB(), "postgresql")
# SpiffWorkflow restores a workflow in the order its serialized keys were written; JSONB reorders
# keys, so workflow state and specs are kept as order-preserving JSON text on every database.
OrderedJSON = JSON()


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSONData, list: JSONData, date: Date}


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
    teachers: Mapped[list[SchoolTeacher]] = relationship(cascade="all, delete-orphan", lazy="selectin",
                                                         order_by="SchoolTeacher.position")


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


class Deployment(Base):
    """An immutable bundle of diagrams and forms, identified by the hash of its files."""

    __tablename__ = "deployment"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    # the digest of its files; salted with its version when the same files were deployed before
    bundle_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(254))
    note: Mapped[str | None] = mapped_column(Text)
    # the processes its owner retired in this version (they were in the version before, and are not here)
    retired: Mapped[list | None]
    files: Mapped[list[DeploymentFile]] = relationship(
        cascade="all, delete-orphan", order_by="DeploymentFile.path", lazy="selectin"
    )
    definitions: Mapped[list[ProcessDefinition]] = relationship(
        back_populates="deployment", cascade="all, delete-orphan", lazy="selectin"
    )

    def file(self, path: str) -> DeploymentFile | None:
        return next((f for f in self.files if f.path == path), None)


class DeploymentFile(Base):
    __tablename__ = "deployment_file"
    __table_args__ = (UniqueConstraint("deployment_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)


class ProcessDefinition(Base):
    """One executable process of a deployment, with its parsed spec stored once."""

    __tablename__ = "process_definition"
    __table_args__ = (UniqueConstraint("deployment_id", "process_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id", ondelete="CASCADE"))
    process_id: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(300))
    file_path: Mapped[str] = mapped_column(String(300))
    spec: Mapped[dict] = mapped_column(OrderedJSON)
    start_messages: Mapped[list] = mapped_column(default=list)
    deployment: Mapped[Deployment] = relationship(back_populates="definitions", lazy="joined")


class Instance(Base):
    """One run of a process for one child; `version` is the optimistic lock of every step."""

    __tablename__ = "instance"
    __table_args__ = (Index("ix_instance_due_timer", "status", "next_timer_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("child.id"), index=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"))
    previous_instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id"))
    status: Mapped[str] = mapped_column(String(16), default="running")
    state: Mapped[dict] = mapped_column(OrderedJSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    next_timer_at: Mapped[datetime | None]
    waiting_messages: Mapped[list] = mapped_column(default=list)
    started_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(254))
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    definition: Mapped[ProcessDefinition] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}


class OpenTask(Base):
    """A READY user task, projected out of the workflow so that inboxes are plain queries."""

    __tablename__ = "open_task"
    __table_args__ = (
        # in the inbox's order (deadline, then age), so that an inbox reads its first page and stops
        Index("ix_open_task_assignee_order", "assignee_id", "due_at", "ready_at"),
        Index("ix_open_task_pool_order", "role_key", "assignee_id", "due_at", "ready_at"),
        # what the overdue sweep acts on next (engine/overdue.py): only tasks with something left to do
        Index("ix_open_task_overdue_at", "overdue_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("child.id"), index=True)
    spec_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    lane: Mapped[str] = mapped_column(String(200))
    role_key: Mapped[str] = mapped_column(ForeignKey("role.key"))
    form: Mapped[str | None] = mapped_column(String(300))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    pooled: Mapped[bool] = mapped_column(Boolean, default=False)
    due_at: Mapped[datetime | None]
    ready_at: Mapped[datetime]
    sent_back: Mapped[str | None] = mapped_column(Text)  # why the diagram sent it back to be done again
    # The overdue policy (engine/overdue.py), decided as the task opens: when the sweep next acts on it
    # (its due date, then the escalation; None: nothing left to do), what it has done so far (None,
    # "overdue", "escalated"), whether it reminds the holder and the role it escalates to (None: none).
    overdue_at: Mapped[datetime | None]
    overdue_stage: Mapped[str | None] = mapped_column(String(16))
    overdue_remind: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    overdue_escalate_to: Mapped[str | None] = mapped_column(String(64))
    # who the sweep told when it escalated (None with `escalated_at`: the role's pool) and when; the
    # last reminder (the sweep's on the due date, or a Virtual School's from the overdue list)
    escalated_at: Mapped[datetime | None]
    escalated_to_user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    reminded_at: Mapped[datetime | None]


class PepProjection(Base):
    """One PEP (one instance) as the Virtual School's oversight reads it, kept by the step that writes
    its history (engine/oversight.py): what it answers (kind, term or deadline), when it was due, held
    and signed off, and whether on time. A recomputation from the history gives the same row."""

    __tablename__ = "pep_projection"
    __table_args__ = (
        # the PEPs due in a period (a term, a year) and those overdue now
        Index("ix_pep_projection_due_at", "due_at"),
        Index("ix_pep_projection_status_due_at", "status", "due_at"),
        # the children reviewed in a term (the termly figures, from the index alone)
        Index("ix_pep_projection_kind_term", "kind", "term", "on_time", "child_id"),
    )

    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), primary_key=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("child.id"), index=True)
    process_id: Mapped[str] = mapped_column(String(200))
    process_name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str | None] = mapped_column(String(16))  # what it answers: initial, termly, ... (None: no PEP)
    term: Mapped[str | None] = mapped_column(String(24))  # a termly PEP's term, "2026-27 spring"
    due_at: Mapped[datetime | None]  # the deadline answered, or the end of the term answered
    age_band: Mapped[str | None] = mapped_column(String(40))  # at the due date (config/statutory.yaml)
    started_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))  # running, completed, cancelled, withdrawn
    ended_at: Mapped[datetime | None]
    held_on: Mapped[date | None]  # the first meeting_held
    signed_off_at: Mapped[datetime | None]  # the first pep_signed_off
    on_time: Mapped[bool | None] = mapped_column(Boolean)  # signed off by due_at (None: not signed off)
    late_steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # an initial PEP: the day the child entered care, and the statutory limits from it
    entered_care: Mapped[date | None]
    start_by: Mapped[datetime | None]
    ready_by: Mapped[datetime | None]


class Event(Base):
    """One entry of a child's append-only, hash-chained history. `hash` is an HMAC under the history
    key `key_id` names (engine/history_keys.py); no key id: a plain SHA-256, from before keying."""

    __tablename__ = "event"
    __table_args__ = (UniqueConstraint("child_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("child.id"))  # indexed by (child_id, seq)
    seq: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(254))
    task_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[dict] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(16))


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


class Incident(Base):
    """A step that a process's own diagram could not run (its code failed or went past a limit), or a
    failure while running an instance unattended (timer, message). No instance when a start failed."""

    __tablename__ = "incident"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id"), index=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("child.id"))
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]


class Notification(Base):
    """A message to a person (task assigned, reminder, overdue), queued in the step's transaction."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    role_key: Mapped[str | None] = mapped_column(ForeignKey("role.key"))
    child_id: Mapped[str | None] = mapped_column(ForeignKey("child.id"))
    task_id: Mapped[str | None] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class TaskDraft(Base):
    """A half-filled task form saved by one person to come back to."""

    __tablename__ = "task_draft"

    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[dict] = mapped_column(default=dict)
    saved_at: Mapped[datetime]


class TaskLink(Base):
    """A single-use, expiring link that lets a young person or carer give their part without an account."""

    __tablename__ = "task_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    task_id: Mapped[str] = mapped_column(String(36), index=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("child.id"))
    acting_user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Attachment(Base):
    """A file given with a form (e.g. an EHCP), kept with the child's record."""

    __tablename__ = "attachment"
    # what one person uploaded lately (their daily upload allowance)
    __table_args__ = (Index("ix_attachment_uploaded_by_at", "uploaded_by", "uploaded_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("child.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(254))
    uploaded_at: Mapped[datetime]
    # taken off a draft before any answer submitted it: content emptied, row kept for the allowance
    removed_at: Mapped[datetime | None]


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


class PpplusEntry(Base):
    """One line of the PP+ ledger (engine/ppplus.py): a request, decision or release a child's history
    records (its `ppplus_recorded` event, `seq`), written in the same transaction as the step that made
    it (`step_seq`: the step's first event) and rebuilt from the histories by `pep ppplus-backfill`.
    Amounts are whole pence; `school` is the child's school when the line was written."""

    __tablename__ = "ppplus_entry"
    __table_args__ = (
        UniqueConstraint("child_id", "seq"),
        Index("ix_ppplus_entry_year_school", "financial_year", "school"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("child.id"))
    seq: Mapped[int] = mapped_column(Integer)
    step_seq: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instance.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(36))
    at: Mapped[datetime]
    financial_year: Mapped[str] = mapped_column(String(7))  # "2025-26": April to March
    term: Mapped[str] = mapped_column(String(40))  # "2025-26 spring"
    school: Mapped[str | None] = mapped_column(String(200))
    entry: Mapped[str] = mapped_column(String(16))  # requested, decided, released
    decision: Mapped[str | None] = mapped_column(String(16))  # approved, part, refused (decided only)
    amount_pence: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    source: Mapped[str] = mapped_column(String(300))  # the declaring question or element
    category: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(254))
