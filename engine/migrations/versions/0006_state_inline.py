"""the workflow state kept in the instance row on PostgreSQL (compressed), not in the TOAST table

A state is ten to fifty kilobytes of JSON that lz4 compresses to two or three. Stored as EXTENDED
(the default) anything over two kilobytes goes out of line, so every step wrote its state as new
TOAST chunks (and their index entries), left the old ones for vacuum, and every read fetched them
back through the TOAST index. MAIN storage compresses the same way but keeps the value in the row
unless the row would not fit in a page. Rows already written move when next rewritten.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:40:00.000000
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE instance ALTER COLUMN state SET STORAGE MAIN")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE instance ALTER COLUMN state SET STORAGE EXTENDED")
