"""child details: whether the child is in care, their legal status, in or out of the council's area

A child who leaves care keeps their record and history; `in_care` says whether they are looked after
now (every child recorded before this was: true). Legal status and area are not known for children
recorded before this: NULL, "not recorded", until someone allowed edits the child's details.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("child", sa.Column("in_care", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column("child", sa.Column("legal_status", sa.String(length=80), nullable=True))
    op.add_column("child", sa.Column("in_area", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("child") as batch:
        batch.drop_column("in_area")
        batch.drop_column("legal_status")
        batch.drop_column("in_care")
