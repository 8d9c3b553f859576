"""overdue policy: what the sweep does when an open task's due date passes

Each open task says, from when it opens, when the overdue sweep next acts on it (`overdue_at`: its due
date, then one working day later for the escalation), what it has done (`overdue_stage`), whether it
reminds the holder and to which role it escalates. Tasks opened before have none of this: their due
dates pass as before, without a reminder or an escalation from the policy.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import engine.models

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("open_task", sa.Column("overdue_at", engine.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column("open_task", sa.Column("overdue_stage", sa.String(length=16), nullable=True))
    op.add_column("open_task", sa.Column("overdue_remind", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("open_task", sa.Column("overdue_escalate_to", sa.String(length=64), nullable=True))
    op.create_index("ix_open_task_overdue_at", "open_task", ["overdue_at"])


def downgrade() -> None:
    op.drop_index("ix_open_task_overdue_at", table_name="open_task")
    with op.batch_alter_table("open_task") as batch:
        batch.drop_column("overdue_escalate_to")
        batch.drop_column("overdue_remind")
        batch.drop_column("overdue_stage")
        batch.drop_column("overdue_at")
