"""The `pep` command line: drive the engine from a shell. Database from PEP_DATABASE_URL (SQLite file by default).

Each command is one transaction; a failure prints one clear line (plus the detail lines of a rejected
deployment or an invalid form) to stderr and exits non-zero.

Here are the entry point (`main`, the `pep` script) and `pep init`; the commands are in a module per
group: `cli_processes` (deploy, start, tasks, complete, claim, message, cancel, migrate, show),
`cli_people` (users, children), `cli_history` (history, verify, checkpoint, history-key),
`cli_scheduler` (scheduler, timers, incidents) and `cli_import` (import, oversight-rebuild,
ppplus-backfill, quality-rebuild); what they share (the context, `fails_cleanly`, option parsers) in `cli_common`.
"""

from __future__ import annotations

import logging

import click

from . import cli_history, cli_import, cli_people, cli_processes, cli_scheduler
from .cli_common import Context, fails_cleanly
from .roles import seed_roles
from .schema import upgrade


@click.group()
@click.option("--database", envvar="PEP_DATABASE_URL", help="Database URL (default: SQLite file instance/pep.sqlite).")
@click.pass_context
def main(ctx, database):
    """Run Personal Education Plan processes."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("engine").setLevel(logging.INFO)
    ctx.obj = Context(database, " ".join(filter(None, ("pep", ctx.invoked_subcommand))))


@main.command()
@click.pass_obj
@fails_cleanly
def init(obj: Context):
    """Create or upgrade the database schema and seed the role vocabulary."""
    upgrade(obj.url)
    with obj.sessions.begin() as session:
        added = seed_roles(session)
    click.echo(f"database ready at {obj.url} ({added} roles added)")


for command in (
    cli_processes.deploy_command,
    cli_processes.start,
    cli_processes.tasks,
    cli_processes.complete,
    cli_processes.claim,
    cli_processes.message,
    cli_processes.cancel,
    cli_processes.migrate_command,
    cli_processes.show,
    cli_people.users,
    cli_people.children,
    cli_history.history_command,
    cli_history.verify_command,
    cli_history.checkpoint_command,
    cli_history.history_key,
    cli_scheduler.scheduler,
    cli_scheduler.timers,
    cli_scheduler.incidents,
    cli_import.import_command,
    cli_import.oversight_rebuild,
    cli_import.ppplus_backfill,
    cli_import.quality_rebuild,
):
    main.add_command(command)


if __name__ == "__main__":  # python -m engine.cli, as the `pep` script
    main()
