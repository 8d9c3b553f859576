"""oversight: the termly reviews of a term, read from an index alone (kind, term, on time, child), for the
timeliness pages' count of children reviewed in each term and the drill-down's test child by child

Revision ID: 0019
Revises: 0018
Create Date: 2027-01-10 10:00:00.000000
"""

from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_pep_projection_kind_term', 'pep_projection', ['kind', 'term', 'on_time', 'child_id'])


def downgrade() -> None:
    op.drop_index('ix_pep_projection_kind_term', table_name='pep_projection')
