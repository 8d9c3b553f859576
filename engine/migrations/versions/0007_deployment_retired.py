"""deployment.retired: the processes a version retired on purpose

A deployment carries over the processes of the version before that its bundle does not replace; a
process leaves only when its owner retires it, and the version records which ones it retired.
Versions deployed before this keep NULL: nothing was retired on purpose.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "deployment",
        sa.Column(
            "retired", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_column("retired")
