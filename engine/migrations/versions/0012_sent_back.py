"""sent back: an open task that a diagram sent back to its person says why

A user task may declare `sentBack`, an expression over the process data; when it gives text as the
task opens, the task is one sent back (a Red QA rating, a meeting moved into the holidays) and the
inbox and the task page say so, with the reason. Tasks opened before have none.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 15:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("open_task", sa.Column("sent_back", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("open_task") as batch:
        batch.drop_column("sent_back")
