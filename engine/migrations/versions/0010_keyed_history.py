"""keyed history: each event records the id of the history key its hash was made with

A child's events are now chained with HMAC-SHA256 under a key kept outside the database
(engine/history_keys.py). The events written before keep their plain SHA-256 hashes and verify as
they are: their key id is NULL. Nothing is rewritten.

(Numbered 0009 and revising 0007: another branch may add 0008; renumber at merge.)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("event", sa.Column("key_id", sa.String(length=16), nullable=True))


def downgrade() -> None:
    # the keyed events' hashes stay: without their key id, the old code cannot verify them
    with op.batch_alter_table("event") as batch:
        batch.drop_column("key_id")
