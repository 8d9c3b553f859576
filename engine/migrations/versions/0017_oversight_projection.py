"""oversight: the PEP projection the Virtual School's timeliness pages read, kept by each step; who an
overdue task was escalated to and when, and its last reminder; the day a child left care; which roles
see the oversight pages

The projection of PEPs that ran before is recomputed from their histories here (the same function as
`pep oversight-rebuild`, engine/oversight.py). Tasks escalated before have no `escalated_at`: the list
shows the role they were escalated to, without whom or when. Children who left care before have no
`left_care_on`: the pages count them in care only in the periods their record still says.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-20 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import engine.models

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

OVERSIGHT_ROLES = ("vs_head", "vs_administrator", "vs_education_adviser")


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("role", sa.Column("oversight", sa.Boolean(), server_default=sa.false(), nullable=False))
    role = sa.table("role", sa.column("key", sa.String), sa.column("oversight", sa.Boolean))
    op.execute(role.update().where(role.c.key.in_(OVERSIGHT_ROLES)).values(oversight=True))
    op.add_column("child", sa.Column("left_care_on", sa.Date(), nullable=True))
    op.add_column("open_task", sa.Column("escalated_at", engine.models.UTCDateTime(timezone=True), nullable=True))
    if bind.dialect.name == "sqlite":  # a column with its reference, in place (as 0016)
        op.execute("ALTER TABLE open_task ADD COLUMN escalated_to_user_id INTEGER REFERENCES app_user (id)")
    else:
        op.add_column("open_task", sa.Column("escalated_to_user_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_open_task_escalated_to_user_id", "open_task", "app_user", ["escalated_to_user_id"], ["id"]
        )
    op.add_column("open_task", sa.Column("reminded_at", engine.models.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "pep_projection",
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=64), nullable=False),
        sa.Column("process_id", sa.String(length=200), nullable=False),
        sa.Column("process_name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("term", sa.String(length=24), nullable=True),
        sa.Column("due_at", engine.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("age_band", sa.String(length=40), nullable=True),
        sa.Column("started_at", engine.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ended_at", engine.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("held_on", sa.Date(), nullable=True),
        sa.Column("signed_off_at", engine.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("on_time", sa.Boolean(), nullable=True),
        sa.Column("late_steps", sa.Integer(), server_default="0", nullable=False),
        sa.Column("entered_care", sa.Date(), nullable=True),
        sa.Column("start_by", engine.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ready_by", engine.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["instance_id"], ["instance.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("instance_id"),
    )
    op.create_index("ix_pep_projection_child_id", "pep_projection", ["child_id"])
    op.create_index("ix_pep_projection_due_at", "pep_projection", ["due_at"])
    op.create_index("ix_pep_projection_status_due_at", "pep_projection", ["status", "due_at"])
    from sqlalchemy.orm import Session

    from engine import projection

    with Session(bind=bind) as session:
        projection.rebuild(session, keys=False)  # the breakdowns' keys: filled in by 0022
        session.flush()


def downgrade() -> None:
    op.drop_index("ix_pep_projection_status_due_at", table_name="pep_projection")
    op.drop_index("ix_pep_projection_due_at", table_name="pep_projection")
    op.drop_index("ix_pep_projection_child_id", table_name="pep_projection")
    op.drop_table("pep_projection")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_open_task_escalated_to_user_id", "open_task", type_="foreignkey")
    with op.batch_alter_table("open_task") as batch:
        batch.drop_column("reminded_at")
        batch.drop_column("escalated_to_user_id")
        batch.drop_column("escalated_at")
    op.drop_column("child", "left_care_on")  # in place: rebuilding `child` or `role` would break what refers to them
    op.drop_column("role", "oversight")
