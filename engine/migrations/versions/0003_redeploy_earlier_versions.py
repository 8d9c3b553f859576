"""deployments: the same files may be deployed again, so that a process owner can go back to an earlier version

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:00:00.000000
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# SQLite's copy of the unique constraint has no name: batch mode names it by this convention to drop it
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("deployment", naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint("uq_deployment_bundle_hash", type_="unique")
            batch_op.create_index("ix_deployment_bundle_hash", ["bundle_hash"], unique=False)
    else:
        op.drop_constraint("deployment_bundle_hash_key", "deployment", type_="unique")
        op.create_index("ix_deployment_bundle_hash", "deployment", ["bundle_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deployment") as batch_op:
        batch_op.drop_index("ix_deployment_bundle_hash")
        batch_op.create_unique_constraint("deployment_bundle_hash_key", ["bundle_hash"])
