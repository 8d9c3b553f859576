"""oversight: the termly reviews of a term, read from an index alone (kind, term, on time, child), for the
timeliness pages' count of children reviewed in each term and the drill-down's test child by child

Revision ID: 0021
Revises: 0020
Create Date: 2027-01-10 10:00:00.000000
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_pep_projection_kind_term", "pep_projection", ["kind", "term", "on_time", "child_id"])


def downgrade() -> None:
    op.drop_index("ix_pep_projection_kind_term", table_name="pep_projection")
