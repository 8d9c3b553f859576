"""Drafts of long forms: the sections the person has finished (their task list's "Completed")

Revision ID: 0019
Revises: 0018
Create Date: 2027-01-12 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_draft", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "sections_done",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                server_default="[]",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("task_draft", schema=None) as batch_op:
        batch_op.drop_column("sections_done")
