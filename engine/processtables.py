"""Tables of processes and their work: deployments (files, process definitions), instances, the
projection of open tasks, each child's history (events), incidents, notifications, drafts,
single-use links and attachments.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .modelbase import Base, OrderedJSON


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
    # the sections of a long form (`x-sections`, by number from 1) the person has finished: "Completed"
    # on its task list. The answers are checked again, all together, when the task is submitted.
    sections_done: Mapped[list] = mapped_column(default=list, server_default="[]")


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
