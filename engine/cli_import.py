"""The `pep` commands that load and rebuild records: import (children, case teams, schools and people),
oversight-rebuild (the PEP projection from histories), ppplus-backfill (the PP+ ledger) and
quality-rebuild (the quality page's rows).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import importer, ppplus, projection, qualityrows
from .cli_common import Context, fails_cleanly
from .runtime import Engine


@click.command("ppplus-backfill")
@click.option("--check", is_flag=True, help="only say where the ledger and the histories disagree")
@click.pass_obj
@fails_cleanly
def ppplus_backfill(obj: Context, check: bool):
    """Rebuild the PP+ ledger from the children's histories (or, with --check, reconcile the two)."""
    agreed, rebuilt = "the ledger reconciles with the histories", "PP+ ledger rebuilt from the histories: {} lines"
    _rebuild_or_check(obj, check, ppplus.differences, ppplus.backfill, agreed, rebuilt)


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Say what would be added, changed and left alone; change nothing.")
@click.option("--as", "actor", default="import", help="Who imports (recorded in each child's history).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
@fails_cleanly
def import_command(obj: Context, path, dry_run, actor, quiet):
    """Import children, case teams, schools and people from a case system's CSV extract (one row per
    child: child id, name, date of birth, UPN, school URN, legal status, date entered care, social
    worker's and designated teacher's email). Importing the same file again changes nothing."""
    engine = Engine()
    with obj.sessions.begin() as session:
        result = importer.import_file(session, Path(path).read_bytes(), engine.now())
        for error in result.errors:
            click.echo(f"  {error}", err=True)
        if result.errors:
            click.echo(f"error: {len(result.errors)} problem(s) in {path}; nothing was imported", err=True)
            sys.exit(1)
        for child in result.children:
            if child.action == "change" and dry_run:
                click.echo(f"  row {child.row.number}: {child.row.child_id} would change: {', '.join(child.changes)}")
        if dry_run:
            session.rollback()
            click.echo(f"dry run, nothing changed: {result.summary()}")
            return
        with click.progressbar(length=len(result.children), label="importing", hidden=quiet) as bar:
            importer.apply(session, result, engine, actor, progress=bar.update)
    click.echo(f"imported: {result.summary(done=True)}")


@click.command("oversight-rebuild")
@click.pass_obj
@fails_cleanly
def oversight_rebuild(obj: Context):
    """Recompute the Virtual School's PEP projection from every history (after config/statutory.yaml
    changes; migration 0017 does it once)."""
    with obj.sessions.begin() as session:
        count = projection.rebuild(session)
    click.echo(f"{count} PEP(s) projected from their histories")


@click.command("quality-rebuild")
@click.option("--check", is_flag=True, help="only say where the quality rows and the histories disagree")
@click.pass_obj
@fails_cleanly
def quality_rebuild(obj: Context, check: bool):
    """Rebuild the quality page's rows from the children's histories (or, with --check, reconcile the
    two; migration 0023 rebuilt them once)."""
    agreed, rebuilt = (
        "the quality rows reconcile with the histories",
        "quality rows rebuilt from the histories: {} rows",
    )
    _rebuild_or_check(obj, check, qualityrows.differences, qualityrows.rebuild, agreed, rebuilt)


def _rebuild_or_check(obj: Context, check: bool, differences, rebuild, agreed: str, rebuilt: str) -> None:
    """Rebuild rows kept beside the histories from them (saying `rebuilt` with how many), or (`check`)
    say each place the two disagree and exit 1 if any does (`agreed` if none)."""
    with obj.sessions.begin() as session:
        if check:
            found = differences(session)
            for line in found:
                click.echo(line)
            click.echo(agreed if not found else f"{len(found)} differences")
            if found:
                raise SystemExit(1)
            return
        count = rebuild(session)
    click.echo(rebuilt.format(count))
