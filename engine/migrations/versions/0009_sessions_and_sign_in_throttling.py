"""sessions that can be ended, sign-in failures counted per address, uploads counted per person

- app_user.session_token: every session of a person carries it; a new token (sign-out, a password
  change, an administrator's reset) ends every session of that person. Existing people have none,
  so everyone signs in once more after this migration.
- sign_in_failure: indexed by address and by time as well as by email (slowing down by account and
  address, and by address; old rows are deleted by time).
- attachment: indexed by uploader and time (a person's daily upload allowance).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(sa.Column("session_token", sa.String(length=64), nullable=True))
    op.create_index("ix_sign_in_failure_remote_addr_at", "sign_in_failure", ["remote_addr", "at"])
    op.create_index("ix_sign_in_failure_at", "sign_in_failure", ["at"])
    op.create_index("ix_attachment_uploaded_by_at", "attachment", ["uploaded_by", "uploaded_at"])


def downgrade() -> None:
    op.drop_index("ix_attachment_uploaded_by_at", table_name="attachment")
    op.drop_index("ix_sign_in_failure_at", table_name="sign_in_failure")
    op.drop_index("ix_sign_in_failure_remote_addr_at", table_name="sign_in_failure")
    with op.batch_alter_table("app_user") as batch:
        batch.drop_column("session_token")
