"""quality: the quality page's rows (QA ratings, criteria assessed, tasks sent back, sign-offs), kept by
each step so the page counts a year with aggregate SQL instead of reading the year's history

The rows of histories written before this are recomputed from them here (the same function as
`pep quality-rebuild`, engine/qualityrows.py), with each child's school as it is now.

Revision ID: 0023
Revises: 0022
Create Date: 2027-01-31 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import engine.models

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", engine.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("term", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("rating", sa.String(length=16), nullable=True),
        sa.Column("criterion", sa.String(length=300), nullable=True),
        sa.Column("failed", sa.Boolean(), nullable=True),
        sa.Column("school", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["instance_id"], ["instance.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quality_entry_child_id", "quality_entry", ["child_id"])
    op.create_index("ix_quality_entry_kind_at", "quality_entry", ["kind", "at"])
    from sqlalchemy.orm import Session

    from engine import qualityrows

    with Session(bind=op.get_bind()) as session:
        qualityrows.rebuild(session)
        session.flush()


def downgrade() -> None:
    op.drop_index("ix_quality_entry_kind_at", table_name="quality_entry")
    op.drop_index("ix_quality_entry_child_id", table_name="quality_entry")
    op.drop_table("quality_entry")
