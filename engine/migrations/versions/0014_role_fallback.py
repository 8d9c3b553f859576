"""role fallback: the role that takes a role's tasks when a child's case team names nobody for it

A Designated Teacher's task for a child with no school place went to nobody and the PEP waited for
ever. A role may now name a fallback (config/roles.yaml): the Designated Teacher's is the VS Education
Adviser's pool, the Personal Adviser's the child's Social Worker. Databases seeded before this get the
shipped fallbacks for those roles; every other role has none (NULL).

Revision ID: 0014
Revises: 0013
Create Date: 2027-01-11 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

SHIPPED = {"designated_teacher": "vs_education_adviser", "personal_adviser": "social_worker"}


def upgrade() -> None:
    op.add_column("role", sa.Column("fallback", sa.String(length=64), nullable=True))
    role = sa.table("role", sa.column("key", sa.String), sa.column("fallback", sa.String))
    for key, fallback in SHIPPED.items():
        present = sa.select(role.c.key).where(role.c.key == fallback).exists()
        op.execute(role.update().where(role.c.key == key, present).values(fallback=fallback))


def downgrade() -> None:
    with op.batch_alter_table("role") as batch:
        batch.drop_column("fallback")
