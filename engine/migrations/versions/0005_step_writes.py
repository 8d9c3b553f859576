"""cheaper step writes: the workflow state compressed with lz4 on PostgreSQL; no second index on event.child_id

Every step rewrites its instance's state (tens of kilobytes of JSON), which PostgreSQL compresses
out of line; lz4 does it several times faster than the default pglz (PostgreSQL 14 and newer, when
built with it; otherwise nothing changes). Rows already written keep their compression until
rewritten. Events are found by child through the unique (child_id, seq) index, so the plain index
on child_id only cost an extra write per event.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _has_lz4(bind):
        op.execute("ALTER TABLE instance ALTER COLUMN state SET COMPRESSION lz4")
    op.drop_index("ix_event_child_id", table_name="event")


def downgrade() -> None:
    op.create_index("ix_event_child_id", "event", ["child_id"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _has_lz4(bind):
        op.execute("ALTER TABLE instance ALTER COLUMN state SET COMPRESSION default")


def _has_lz4(bind) -> bool:
    return bool(
        bind.scalar(
            sa.text("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
        )
    )
