"""incidents without an instance: a process that fails while starting has no instance to name

A start (a person's, or a message's) whose diagram code fails or goes past its limits is rolled back
whole, so no instance row exists; its incident names the process and element in its message.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 12:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident") as batch:
        batch.alter_column("instance_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM incident WHERE instance_id IS NULL")
    with op.batch_alter_table("incident") as batch:
        batch.alter_column("instance_id", existing_type=sa.Integer(), nullable=False)
