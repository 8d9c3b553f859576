"""PP+ ledger: a year's lines in the order its figures are counted in, from the index alone

A year's figures take, of each request and decision, the lines of the latest step to answer its
question or element in its PEP (engine/ppplusledger.py); this index gives the year's lines in that
order, with what they add, so the oversight page counts them in one pass without a sort.

Revision ID: 0025
Revises: 0024
Create Date: 2027-02-01 10:00:00.000000
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

COLUMNS = ["financial_year", "child_id", "instance_id", "entry", "source", "school", "term", "step_seq", "amount_pence"]


def upgrade() -> None:
    op.create_index("ix_ppplus_entry_standing", "ppplus_entry", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_ppplus_entry_standing", table_name="ppplus_entry")
