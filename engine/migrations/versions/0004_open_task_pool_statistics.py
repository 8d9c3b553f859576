"""open tasks: PostgreSQL statistics on role, assignee and "pooled" together, so that it sees how big a pool is

A pooled task has no assignee and a pooled role: the three go together, but PostgreSQL multiplies their
selectivities and expects a VS adviser's pool of thousands of tasks to hold a few dozen. For so few it
would rather sort the whole pool than read the inbox index in order and stop at the first page. The
statistics (most common combinations) give it the true size. SQLite has nothing to add.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 23:00:00.000000
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE STATISTICS st_open_task_pool (mcv) ON role_key, assignee_id, pooled FROM open_task")
        op.execute("ANALYZE open_task")  # to use them at once, not after the next automatic analyse


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_open_task_pool")
