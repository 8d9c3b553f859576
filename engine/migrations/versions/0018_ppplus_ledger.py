"""PP+ ledger: one row per request, decision and release a child's history records (engine/ppplus.py)

Histories written before this have their lines added by `pep ppplus-backfill`.

Revision ID: 0018
Revises: 0017
Create Date: 2027-01-10 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import engine.models

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ppplus_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step_seq", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("at", engine.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("financial_year", sa.String(length=7), nullable=False),
        sa.Column("term", sa.String(length=40), nullable=False),
        sa.Column("school", sa.String(length=200), nullable=True),
        sa.Column("entry", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("amount_pence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.ForeignKeyConstraint(["child_id"], ["child.id"]),
        sa.ForeignKeyConstraint(["instance_id"], ["instance.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("child_id", "seq"),
    )
    op.create_index("ix_ppplus_entry_instance_id", "ppplus_entry", ["instance_id"])
    op.create_index("ix_ppplus_entry_year_school", "ppplus_entry", ["financial_year", "school"])


def downgrade() -> None:
    op.drop_index("ix_ppplus_entry_year_school", table_name="ppplus_entry")
    op.drop_index("ix_ppplus_entry_instance_id", table_name="ppplus_entry")
    op.drop_table("ppplus_entry")
