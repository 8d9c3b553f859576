"""Tables of the Virtual School's oversight: the PEP projection (one row per PEP, folded from history)
and the PP+ ledger's lines.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .modelbase import Base


class PepProjection(Base):
    """One PEP (one instance) as the Virtual School's oversight reads it, kept by the step that writes
    its history (engine/projection.py): what it answers (kind, term or deadline), when it was due, held
    and signed off, and whether on time. A recomputation from the history gives the same row; the
    child's keys for the breakdowns are kept beside it by engine/groupkeys.py."""

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
    # the child's, as they are now, for the breakdowns (engine/groupkeys.py keeps them)
    school: Mapped[str | None] = mapped_column(String(200))
    in_area: Mapped[bool | None] = mapped_column(Boolean)
    social_worker_id: Mapped[int | None] = mapped_column(Integer)
    designated_teacher_id: Mapped[int | None] = mapped_column(Integer)
    education_adviser_id: Mapped[int | None] = mapped_column(Integer)


class PpplusEntry(Base):
    """One line of the PP+ ledger (engine/ppplus.py): a request, decision or release a child's history
    records (its `ppplus_recorded` event, `seq`), written in the same transaction as the step that made
    it (`step_seq`: the step's first event) and rebuilt from the histories by `pep ppplus-backfill`.
    Amounts are whole pence; `school` is the child's school when the line was written."""

    __tablename__ = "ppplus_entry"
    __table_args__ = (
        UniqueConstraint("child_id", "seq"),
        Index("ix_ppplus_entry_year_school", "financial_year", "school"),
        # a year's figures in one ordered pass, from the index alone (engine/ppplusledger.py)
        Index(
            "ix_ppplus_entry_standing",
            "financial_year",
            *("child_id", "instance_id", "entry", "source", "school", "term", "step_seq", "amount_pence"),
        ),
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


class QualityEntry(Base):
    """One fact of a PEP's quality (engine/qualityrows.py): a QA rating given, a QA criterion assessed
    (`failed`: answered no), a task sent back to be done again, or a sign-off; its history event
    (`seq`), written in the same transaction as the step that made it and rebuilt from the histories
    by `pep quality-rebuild`. The rating and criteria are read from the form's declared fields
    (`x-qa-rating`, `x-qa-criterion`); `actor` is who gave the rating (the adviser, as it happened).
    `school` is the child's as it is now, refiled with the PEPs' keys (engine/groupkeys.py): the
    quality page counts each child's ratings under their current school, as the timeliness pages do."""

    __tablename__ = "quality_entry"
    __table_args__ = (
        # a period's facts of one kind (a year's ratings, sign-offs), counted from the index's range
        Index("ix_quality_entry_kind_at", "kind", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("child.id"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # the history event's
    at: Mapped[datetime]
    term: Mapped[str] = mapped_column(String(40))  # "2025-26 spring"
    kind: Mapped[str] = mapped_column(String(16))  # rating, criterion, sent_back, signed_off
    actor: Mapped[str] = mapped_column(String(254))
    rating: Mapped[str | None] = mapped_column(String(16))  # Gold, Green, Amber, Red (rating only)
    criterion: Mapped[str | None] = mapped_column(String(300))  # its title (criterion only)
    failed: Mapped[bool | None] = mapped_column(Boolean)  # answered no (criterion only)
    school: Mapped[str | None] = mapped_column(String(200))
