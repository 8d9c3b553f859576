"""open tasks: inbox indexes in the inbox's order (deadline, then age), found by the benchmark

With 100,000 open instances a VS adviser's pool holds about 10,000 tasks; the old indexes ended at the
deadline, so the database sorted every task sharing a deadline before it could return the first page.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:15:00.000000
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("open_task", schema=None) as batch_op:
        batch_op.drop_index("ix_open_task_assignee_due")
        batch_op.drop_index("ix_open_task_pool_due")
        batch_op.create_index("ix_open_task_assignee_order", ["assignee_id", "due_at", "ready_at"], unique=False)
        batch_op.create_index(
            "ix_open_task_pool_order", ["role_key", "assignee_id", "due_at", "ready_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("open_task", schema=None) as batch_op:
        batch_op.drop_index("ix_open_task_pool_order")
        batch_op.drop_index("ix_open_task_assignee_order")
        batch_op.create_index("ix_open_task_pool_due", ["role_key", "assignee_id", "due_at"], unique=False)
        batch_op.create_index("ix_open_task_assignee_due", ["assignee_id", "due_at"], unique=False)
