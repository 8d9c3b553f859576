"""The `pep` commands of people and children: users add; children add, and team (a child's case team)."""

from __future__ import annotations

import click

from .cli_common import Context, fails_cleanly, iso_date
from .people import PeopleError, add_child, add_user, set_case_team


@click.group()
def users():
    """Manage users."""


@users.command("add")
@click.argument("email")
@click.option("--name", required=True)
@click.option("--role", "roles", multiple=True, help="A council-wide role (repeatable).")
@click.option("--org", "organisation")
@click.pass_obj
@fails_cleanly
def users_add(obj: Context, email, name, roles, organisation):
    """Add a user."""
    with obj.sessions.begin() as session:
        user = add_user(session, email, name, list(roles), organisation)
        click.echo(f"added {user.email}")


@click.group()
def children():
    """Manage children and their case teams."""


@children.command("add")
@click.argument("child_id")
@click.option("--name", required=True)
@click.option("--dob", callback=lambda _c, _p, v: iso_date(v), help="Date of birth, YYYY-MM-DD.")
@click.option("--school")
@click.pass_obj
@fails_cleanly
def children_add(obj: Context, child_id, name, dob, school):
    """Add a child."""
    with obj.sessions.begin() as session:
        add_child(session, child_id, name, dob, school)
    click.echo(f"added child {child_id}")


@children.command("team")
@click.argument("child_id")
@click.argument("assignments", nargs=-1, required=True)
@click.option("--as", "actor", default="cli", help="Who makes the change (written to the child's history).")
@click.pass_obj
@fails_cleanly
def children_team(obj: Context, child_id, assignments, actor):
    """Set case-team members: ROLE=EMAIL ... (e.g. "Social Worker=sw@council.test"; "Carer=" for nobody).
    Open tasks move to the new holder, and each change is written to the child's history."""
    team = {}
    for item in assignments:
        role, sep, email = item.partition("=")
        if not sep:
            raise PeopleError(f'"{item}" should be ROLE=EMAIL')
        team[role.strip()] = email.strip() or None
    with obj.sessions.begin() as session:
        changes = set_case_team(session, child_id, team, actor=actor)
    moved = sum(len(change["tasks"]) for change in changes)
    click.echo(f"case team of {child_id} updated ({len(changes)} change(s), {moved} open task(s) moved)")
