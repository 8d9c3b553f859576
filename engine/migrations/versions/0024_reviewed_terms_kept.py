"""oversight: the terms each child was reviewed in, kept on the child's row

The termly figures (children in care in a term, and those with a PEP review completed in it) tested
each child against each term's reviews, looked up from the PEPs' rows: at national size most of a
page's time. Each child's row now keeps the terms in which a termly PEP of theirs was signed off in
time ("|2025-26 autumn|2025-26 spring|"); the steps add to it from now on (engine/groupkeys.py), and
here it is filled in from the PEPs' rows, as `groupkeys.rereview` (and `pep oversight-rebuild`) would.

Revision ID: 0024
Revises: 0023
Create Date: 2027-02-08 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("child", sa.Column("reviewed_terms", sa.Text(), nullable=True))
    connection = op.get_bind()
    terms: dict[str, set] = {}
    for child_id, term in connection.execute(
        sa.text("SELECT child_id, term FROM pep_projection WHERE kind = 'termly' AND term IS NOT NULL AND on_time")
    ):
        terms.setdefault(child_id, set()).add(term)
    if terms:
        connection.execute(
            sa.text("UPDATE child SET reviewed_terms = :terms WHERE id = :child"),
            [{"child": child, "terms": "|" + "|".join(sorted(kept)) + "|"} for child, kept in terms.items()],
        )


def downgrade() -> None:
    op.drop_column("child", "reviewed_terms")
