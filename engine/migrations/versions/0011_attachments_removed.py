"""attachments removed from a draft: attachment.removed_at

A file taken off a draft before it was submitted, and named by no submitted answer, has its content
emptied and `removed_at` set; the row stays, so that the uploader's daily allowance still counts it.
Existing files are all kept as they are.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import engine.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attachment") as batch:
        batch.add_column(sa.Column("removed_at", engine.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # a removed file's content is gone either way: after this it shows as an empty file
    with op.batch_alter_table("attachment") as batch:
        batch.drop_column("removed_at")
