"""access grants: auditors' read access to one child or to every child of the council

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import engine.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(length=254), nullable=False),
        sa.Column("granted_at", engine.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", engine.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", engine.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=254), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["child.id"],
        ),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_grant_child_id"), ["child_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_grant_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("access_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_grant_user_id"))
        batch_op.drop_index(batch_op.f("ix_access_grant_child_id"))

    op.drop_table("access_grant")
