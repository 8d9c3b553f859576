"""school directory and council import: schools by URN with their designated teachers; a child's
school URN, UPN and date of entering care; indexes for the people and children lists at council size

Children recorded before this have no school URN (their school is the name as typed), no UPN and no
date of entering care: NULL, until an import or an edit of their details gives them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-16 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "school",
        sa.Column("urn", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("urn"),
    )
    op.create_index("ix_school_name", "school", ["name"])
    op.create_table(
        "school_teacher",
        sa.Column("school_urn", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["school_urn"], ["school.urn"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("school_urn", "user_id"),
    )
    op.create_index("ix_school_teacher_user_id", "school_teacher", ["user_id"])
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its reference in place (rebuilding `child` would break the tables
        # that refer to it)
        op.execute("ALTER TABLE child ADD COLUMN school_urn VARCHAR(16) REFERENCES school (urn)")
    else:
        op.add_column("child", sa.Column("school_urn", sa.String(length=16), nullable=True))
        op.create_foreign_key("fk_child_school_urn", "child", "school", ["school_urn"], ["urn"])
    op.add_column("child", sa.Column("upn", sa.String(length=13), nullable=True))
    op.add_column("child", sa.Column("entered_care", sa.Date(), nullable=True))
    op.create_index("ix_child_name", "child", ["name"])
    op.create_index("ix_child_school_urn_name", "child", ["school_urn", "name"])
    op.create_index("ix_child_in_care_name", "child", ["in_care", "name"])
    op.create_index("ix_app_user_name", "app_user", ["name"])
    op.create_index("ix_user_role_role_key", "user_role", ["role_key"])
    op.create_index("ix_case_team_member_role_user", "case_team_member", ["role_key", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_case_team_member_role_user", table_name="case_team_member")
    op.drop_index("ix_user_role_role_key", table_name="user_role")
    op.drop_index("ix_app_user_name", table_name="app_user")
    op.drop_index("ix_child_in_care_name", table_name="child")
    op.drop_index("ix_child_school_urn_name", table_name="child")
    op.drop_index("ix_child_name", table_name="child")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_child_school_urn", "child", type_="foreignkey")
    op.drop_column("child", "entered_care")
    op.drop_column("child", "upn")
    op.drop_column("child", "school_urn")
    op.drop_index("ix_school_teacher_user_id", table_name="school_teacher")
    op.drop_table("school_teacher")
    op.drop_index("ix_school_name", table_name="school")
    op.drop_table("school")
