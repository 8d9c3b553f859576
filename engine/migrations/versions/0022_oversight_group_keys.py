"""oversight: the keys the breakdowns group by, kept where the figures are counted

Each child's row keeps the holders of the three roles a breakdown names (social worker, designated
teacher, education adviser; indexed, for a person's children), and each PEP's row (`pep_projection`)
keeps its child's school, whether placed in area and those three people, as they are now: a breakdown
reads one table, with no join to the children or their case teams for each view. The writers that
change them keep them from now on (engine/groupkeys.py); here they are filled in from the children's
records and case teams, as `groupkeys.refile` (and `pep oversight-rebuild`) would.

Revision ID: 0022
Revises: 0021
Create Date: 2027-01-24 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

TEAM = {
    "social_worker_id": "social_worker",
    "designated_teacher_id": "designated_teacher",
    "education_adviser_id": "vs_education_adviser",
}


def upgrade() -> None:
    for column in TEAM:
        op.add_column("child", sa.Column(column, sa.Integer(), nullable=True))
        op.create_index(f"ix_child_{column}", "child", [column])
    op.add_column("pep_projection", sa.Column("school", sa.String(length=200), nullable=True))
    op.add_column("pep_projection", sa.Column("in_area", sa.Boolean(), nullable=True))
    for column in TEAM:
        op.add_column("pep_projection", sa.Column(column, sa.Integer(), nullable=True))
    holders = ", ".join(
        f"{column} = (SELECT m.user_id FROM case_team_member m WHERE m.child_id = child.id AND m.role_key = '{role}')"
        for column, role in TEAM.items()
    )
    op.execute(f"UPDATE child SET {holders}")  # noqa: S608 - the names above, no input
    kept = ", ".join(
        f"{column} = (SELECT c.{column} FROM child c WHERE c.id = pep_projection.child_id)"
        for column in ("school", "in_area", *TEAM)
    )
    op.execute(f"UPDATE pep_projection SET {kept}")  # noqa: S608 - the names above, no input


def downgrade() -> None:
    for column in ("school", "in_area", *TEAM):
        op.drop_column("pep_projection", column)
    for column in TEAM:
        op.drop_index(f"ix_child_{column}", table_name="child")
        op.drop_column("child", column)
