"""The `pep` command line: drive the engine from a shell. Database from PEP_DATABASE_URL (SQLite file by default).

Each command is one transaction; a failure prints one clear line (plus the detail lines of a rejected
deployment or an invalid form) to stderr and exits non-zero.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
from datetime import date
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from . import checkpoints, deployments, history, history_keys, importer, migration, oversight, ppplus
from .calendar import CalendarError
from .clock import FrozenClock, SystemClock
from .db import DatabaseUnavailable, connection_lost, database_url, describe, make_db, session_factory
from .deploy import Bundle, DeploymentRejected, deploy, lane_warnings
from .inbox import doable_by
from .models import Child, Incident, Instance, OpenTask, User
from .people import PeopleError, add_child, add_user, find_user, set_case_team
from .replay import replay_child
from .roles import RoleDirectory, seed_roles
from .runtime import Engine, EngineError, FormInvalid, ProcessFault
from .schema import upgrade
from .timers import fire_due_timers


class Context:
    def __init__(self, url: str | None, name: str = "pep"):
        self.url = database_url(url)
        self.name = name  # of the connections, as pg_stat_activity shows them (e.g. "pep scheduler")
        self._sessions = None

    @property
    def sessions(self):
        if self._sessions is None:
            self._sessions = session_factory(make_db(self.url, name=self.name))
        return self._sessions


def fails_cleanly(command):
    """Turn the engine's refusals into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DeploymentRejected as exc:
            click.echo(f"error: deployment rejected, {len(exc.errors)} problem(s); nothing was stored", err=True)
            for error in exc.errors:
                click.echo(f"  {error}", err=True)
        except ProcessFault as fault:
            with click.get_current_context().obj.sessions.begin() as session:
                incident = Engine().record_fault(session, fault, "cli")
            click.echo(f"error: this step could not run and nothing of it was applied ({fault}); "
                       f"recorded as incident {incident.id}", err=True)
        except FormInvalid as exc:
            click.echo("error: the form has errors; nothing was saved", err=True)
            for field, message in exc.errors.items():
                click.echo(f"  {field}: {message}", err=True)
        except (EngineError, PeopleError, CalendarError, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
        except (DatabaseUnavailable, SQLAlchemyError) as exc:
            url = shown(click.get_current_context().obj.url)
            if connection_lost(exc):  # a failover, a restart, a dropped connection: nothing to fix but to retry
                click.echo(f"error: the connection to the database at {url} was lost ({describe(exc)}); "
                           "run the command again", err=True)
            elif isinstance(exc, (OperationalError, ProgrammingError)):
                click.echo(f'error: the database at {url} is not ready ({describe(exc)}); run "pep init"', err=True)
            else:
                raise
        sys.exit(1)

    return wrapper


def shown(url: str) -> str:
    """The database URL as an error message may show it: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can read: say it as given
        return url


def json_object(_ctx, _param, value):
    """Parse a --data option: a JSON object."""
    if value is None:
        return {}
    try:
        data = json.loads(value, parse_constant=_not_a_number)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise click.BadParameter('must be a JSON object, e.g. {"venue": "Oak Primary"}')
    return data


def _not_a_number(constant: str):
    raise click.BadParameter(f"{constant} is not a number JSON allows: enter a number")


def iso_datetime(_ctx, _param, value):
    if value is None:
        return None
    try:
        return FrozenClock(value).now()
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO date-time with a zone, e.g. 2026-03-10T09:00:00+00:00") from exc


def _iso_date(value):
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date in the form YYYY-MM-DD") from exc


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


@main.command("ppplus-backfill")
@click.option("--check", is_flag=True, help="only say where the ledger and the histories disagree")
@click.pass_obj
@fails_cleanly
def ppplus_backfill(obj: Context, check: bool):
    """Rebuild the PP+ ledger from the children's histories (or, with --check, reconcile the two)."""
    with obj.sessions.begin() as session:
        if check:
            found = ppplus.differences(session)
            for line in found:
                click.echo(line)
            click.echo("the ledger reconciles with the histories" if not found else f"{len(found)} differences")
            if found:
                raise SystemExit(1)
            return
        count = ppplus.backfill(session)
    click.echo(f"PP+ ledger rebuilt from the histories: {count} lines")


@main.command("deploy")
@click.argument("dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--as", "actor", default="cli", help="Who deploys (recorded with the version).")
@click.option("--note", help="What changed.")
@click.option("--retire", "retire", multiple=True, metavar="PROCESS_ID",
              help="Retire this process: new PEPs no longer start it (repeatable).")
@click.pass_obj
@fails_cleanly
def deploy_command(obj: Context, dirs, actor, note, retire):
    """Validate and deploy processes/*.bpmn and forms/*.json under DIRS (default: .).

    The newest version's other files are kept: deploying one process leaves every other one as it
    was. A process leaves only with --retire.
    """
    bundle = Bundle.from_dirs(*(dirs or (".",)))
    with obj.sessions.begin() as session:
        deployment, created = deploy(session, bundle, actor=actor, note=note, retire=retire)
        processes = ", ".join(sorted(d.process_id for d in deployment.definitions))
        verb = "deployed" if created else "unchanged, already"
        click.echo(f"{verb} version {deployment.version} ({deployment.bundle_hash[:12]}): {processes}")
        kept = [f.path for f in deployment.files if f.path not in bundle.files]
        if created and kept:  # carried over from the version before, which the bundle did not hold
            diagrams = [path.removeprefix("processes/") for path in kept if path.endswith(".bpmn")]
            forms = len(kept) - len(diagrams)
            what = [", ".join(diagrams)] if diagrams else []
            what += [f"{forms} form(s)"] if forms else []
            click.echo(f"  kept from version {deployment.version - 1}: {' and '.join(what)}")
        if created and deployment.retired:
            click.echo(f"  retired: {', '.join(deployment.retired)}")
        for warning in lane_warnings(bundle, RoleDirectory.load(session)) if created else ():
            click.echo(f"warning: {warning}", err=True)  # deployed all the same


@main.command()
@click.argument("process")
@click.option("--child", "child_id", required=True, help="The child's id.")
@click.option("--as", "actor", default="cli", help="Who starts it.")
@click.option("--data", callback=json_object, help="Initial data as a JSON object.")
@click.pass_obj
@fails_cleanly
def start(obj: Context, process, child_id, actor, data):
    """Start PROCESS for a child."""
    with obj.sessions.begin() as session:
        instance = Engine().start(session, process, child_id, actor=actor, data=data)
        click.echo(f"started instance {instance.id} of {process} for {child_id}")
        _print_tasks(session, select(OpenTask).where(OpenTask.instance_id == instance.id))


@main.command()
@click.option("--user", "email", help="Only the tasks this user may do.")
@click.option("--child", "child_id", help="Only this child's tasks.")
@click.pass_obj
@fails_cleanly
def tasks(obj: Context, email, child_id):
    """List open tasks, most urgent first."""
    query = select(OpenTask)
    with obj.sessions() as session:
        if email:
            user = find_user(session, email)
            if user is None:
                raise PeopleError(f"no user {email}")
            query = query.where(doable_by(user.id, user.role_keys))
        if child_id:
            query = query.where(OpenTask.child_id == child_id)
        _print_tasks(session, query)


def _print_tasks(session, query) -> None:
    rows = session.scalars(query.order_by(OpenTask.due_at.is_(None), OpenTask.due_at, OpenTask.ready_at)).all()
    if not rows:
        click.echo("no open tasks")
    users = {u.id: u.email for u in session.scalars(select(User))} if rows else {}
    for t in rows:
        who = users.get(t.assignee_id) or (f"pool: {t.lane}" if t.pooled else f"unassigned: {t.lane}")
        due = t.due_at.strftime("%Y-%m-%d %H:%M") if t.due_at else "-"
        click.echo(f"{t.id}  {t.child_id}  {t.name}  [{who}]  due {due}")


@main.command()
@click.argument("task_id")
@click.option("--as", "actor", required=True, help="Email of the person completing it.")
@click.option("--data", callback=json_object, required=True, help="The form's data as a JSON object.")
@click.pass_obj
@fails_cleanly
def complete(obj: Context, task_id, actor, data):
    """Complete TASK_ID with form data."""
    with obj.sessions.begin() as session:
        instance = Engine().complete_task(session, task_id, actor, data)
        click.echo(f"completed; instance {instance.id} is {instance.status}")
        _print_tasks(session, select(OpenTask).where(OpenTask.instance_id == instance.id))


@main.command()
@click.argument("task_id")
@click.option("--as", "actor", required=True)
@click.option("--release", is_flag=True, help="Give the task back to the pool.")
@click.pass_obj
@fails_cleanly
def claim(obj: Context, task_id, actor, release):
    """Claim a pooled task (or --release it)."""
    with obj.sessions.begin() as session:
        engine = Engine()
        task = engine.release(session, task_id, actor) if release else engine.claim(session, task_id, actor)
        click.echo(f"{'released' if release else 'claimed'} {task.name}")


@main.command()
@click.argument("name")
@click.option("--child", "child_id", required=True)
@click.option("--data", callback=json_object, help="The message's data as a JSON object.")
@click.option("--as", "actor", default="cli")
@click.pass_obj
@fails_cleanly
def message(obj: Context, name, child_id, data, actor):
    """Send message NAME (e.g. child_leaves_care) to the child's waiting instances."""
    with obj.sessions.begin() as session:
        caught = Engine().send_message(session, name, child_id, data, actor=actor)
    if not caught:
        raise EngineError(f'no instance of child {child_id} is waiting for "{name}"')
    click.echo(f"delivered to instance(s) {', '.join(str(i.id) for i in caught)}")


@main.command("import")
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


@main.command()
@click.argument("instance_id", type=int)
@click.option("--as", "actor", required=True)
@click.option("--reason", default="")
@click.pass_obj
@fails_cleanly
def cancel(obj: Context, instance_id, actor, reason):
    """Cancel a running instance."""
    with obj.sessions.begin() as session:
        Engine().cancel(session, instance_id, actor, reason)
    click.echo(f"cancelled instance {instance_id}")


@main.command("migrate")
@click.argument("process")
@click.option("--instance", "instance_id", type=int, help="Move only this instance.")
@click.option("--as", "actor", required=True, help="Who moves them (recorded in each child's history).")
@click.option("--dry-run", is_flag=True, help="Only say which instances can move, and why the others cannot.")
@click.pass_obj
@fails_cleanly
def migrate_command(obj: Context, process, instance_id, actor, dry_run):
    """Move running instances of PROCESS on older versions to its newest version, when that is safe."""
    engine = Engine()
    with obj.sessions() as session:
        newest = deployments.latest_definition(session, process)
        target, version = newest.id, newest.deployment.version
        checks = [c for c in migration.candidates(engine, session, newest) if instance_id in (None, c.instance.id)]
        for c in checks:
            verdict = "can move" if c.safe else "cannot move: " + "; ".join(c.reasons)
            click.echo(f"instance {c.instance.id} (child {c.instance.child_id}, version "
                       f"{c.instance.definition.deployment.version}) {verdict}")
        movable = [c.instance.id for c in checks if c.safe or instance_id is not None]
    if dry_run:
        return
    for moving in movable:  # one transaction each: a refusal leaves the others moved
        with obj.sessions.begin() as session:
            migration.migrate(engine, session, moving, target, actor)
        click.echo(f"moved instance {moving} to version {version}")


@main.command()
@click.option("--now", callback=iso_datetime, help="Fire as if it were this time (ISO, with zone).")
@click.pass_obj
@fails_cleanly
def timers(obj: Context, now):
    """Fire every due timer once."""
    engine = Engine(FrozenClock(now) if now else None)
    result = fire_due_timers(engine, obj.sessions)
    click.echo(f"{result.timers_fired} timer(s) fired in {result.instances} instance(s); "
               f"{len(result.incidents)} incident(s)")
    if result.incidents:
        sys.exit(2)


@main.command("oversight-rebuild")
@click.pass_obj
@fails_cleanly
def oversight_rebuild(obj: Context):
    """Recompute the Virtual School's PEP projection from every history (after config/statutory.yaml
    changes; migration 0017 does it once)."""
    with obj.sessions.begin() as session:
        count = oversight.rebuild(session)
    click.echo(f"{count} PEP(s) projected from their histories")


CHECKPOINT_FILE = click.Path(dir_okay=False, path_type=Path)


def _checkpoints(path: Path | None) -> checkpoints.Checkpoints:
    """The checkpoints to hold histories to: the file named (which must exist), else PEP_CHECKPOINTS or
    instance/checkpoints.jsonl (a warning, not a failure, when there is none: a new installation)."""
    found = checkpoints.load(path)
    if not found.exists and path is not None:
        raise ValueError(f"no checkpoint file at {path}")
    return found


def _warn_if_none(pinned: checkpoints.Checkpoints) -> None:
    if not pinned.exists:
        click.echo(f"warning: no checkpoints at {pinned.path}: events deleted from the end of a history, or a "
                   "whole history, cannot be detected without them (run: pep checkpoint)", err=True)


def _agrees_with(checkpoint_count: int) -> str:
    if not checkpoint_count:
        return ""
    return f", as its checkpoint{'s' if checkpoint_count > 1 else ''} recorded"


@main.command("history")
@click.argument("child_id")
@click.option("--verify", is_flag=True,
              help="Check the signed hash chain, and hold it to the checkpoints; exit 1 if it was tampered with.")
@click.option("--checkpoints", "checkpoint_file", type=CHECKPOINT_FILE,
              help="The checkpoint file (default: PEP_CHECKPOINTS, else instance/checkpoints.jsonl).")
@click.pass_obj
@fails_cleanly
def history_command(obj: Context, child_id, verify, checkpoint_file):
    """Show a child's history."""
    with obj.sessions() as session:
        pinned = _checkpoints(checkpoint_file) if verify else None
        if session.get(Child, child_id) is None and not (pinned and pinned.of(child_id)):
            raise PeopleError(f"no child {child_id}")
        if verify:
            result = history.verify(session, child_id, pinned)
            problems = [f"checkpoint file {pinned.path}, {p}" for p in pinned.problems] + result.problems
            if problems:
                click.echo(f"error: history of {child_id} FAILED verification:", err=True)
                for problem in problems:
                    click.echo(f"  {problem}", err=True)
                _warn_if_none(pinned)
                sys.exit(1)
            click.echo(f"history of {child_id} verified: {result.events} events, chain intact"
                       f"{_agrees_with(result.checkpoints)}")
            _warn_if_none(pinned)
            return
        for event in history.events(session, child_id):
            detail = event.data.get("name") or event.data.get("message") or event.data.get("process_id") or ""
            click.echo(f"#{event.seq:<4} {event.at:%Y-%m-%d %H:%M}  {event.kind:<18} {event.actor:<24} {detail}")


@main.command("verify")
@click.argument("child_ids", nargs=-1)
@click.option("--checkpoints", "checkpoint_file", type=CHECKPOINT_FILE,
              help="The checkpoint file (default: PEP_CHECKPOINTS, else instance/checkpoints.jsonl).")
@click.pass_obj
@fails_cleanly
def verify_command(obj: Context, child_ids, checkpoint_file):
    """Re-execute every child's history (or the named children's) and check it, signed chain and
    checkpoints included; exit 1 on any problem."""
    engine, failed, checked = Engine(), 0, 0
    pinned = _checkpoints(checkpoint_file)
    with obj.sessions() as session:
        ids = list(child_ids) or sorted(set(session.scalars(select(Child.id))) | set(pinned.by_child))
        for child_id in ids:
            if session.get(Child, child_id) is None and not pinned.of(child_id):
                raise PeopleError(f"no child {child_id}")
            result = replay_child(session, engine, child_id, pinned)
            checked += 1
            if result.ok:
                click.echo(f"{child_id}: ok, {len(result.frames)} events, {result.steps_checked} steps re-executed")
                continue
            failed += 1
            click.echo(f"{child_id}: FAILED", err=True)
            for problem in result.problems:
                click.echo(f"  {problem}", err=True)
    if pinned.problems:
        click.echo(f"checkpoint file {pinned.path}: FAILED", err=True)
        for problem in pinned.problems:
            click.echo(f"  {problem}", err=True)
    if failed or pinned.problems:
        if failed:
            click.echo(f"error: {failed} of {_children(checked)} failed verification", err=True)
        if pinned.problems:
            click.echo(f"error: the checkpoint file {pinned.path} failed verification", err=True)
        _warn_if_none(pinned)
        sys.exit(1)
    click.echo(f"{_children(checked)} verified: every step re-executed to the stored state, every chain intact")
    _warn_if_none(pinned)


@main.command("checkpoint")
@click.option("--file", "path", type=CHECKPOINT_FILE,
              help="The checkpoint file to append to (default: PEP_CHECKPOINTS, else instance/checkpoints.jsonl).")
@click.pass_obj
@fails_cleanly
def checkpoint_command(obj: Context, path):
    """Sign the head of every child's history that moved since its last checkpoint, and append it to
    the checkpoint file (kept outside the database); a history that does not verify is not signed."""
    run = checkpoints.write(obj.sessions, SystemClock().now(), path)
    for child_id, problems in run.refused.items():
        click.echo(f"{child_id}: FAILED verification, not checkpointed", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
    for child_id in run.missing:
        click.echo(f"{child_id}: checkpointed before, but not in the database: their history was deleted", err=True)
    for problem in run.file_problems:
        click.echo(f"checkpoint file {run.path}, {problem}", err=True)
    click.echo(f"{_children(len(run.written))} checkpointed, {run.unchanged} unchanged since their last "
               f"checkpoint, in {run.path}")
    if not run.ok:
        sys.exit(1)


def _children(count: int) -> str:
    return f"{count} child" if count == 1 else f"{count} children"


@main.group("history-key")
def history_key():
    """The keys that sign children's histories (PEP_HISTORY_KEY, else instance/history_key)."""


@history_key.command("show")
@click.pass_obj
@fails_cleanly
def history_key_show(_obj: Context):
    """Say where the keys come from and their ids (never the keys): the first signs, the others verify."""
    ring = history_keys.ring()
    if not ring.keys:
        raise ValueError(f"no history key ({ring.source}): one is made when the first event is written")
    click.echo(f"history keys from {ring.source}")
    for index, key in enumerate(ring.keys):
        click.echo(f"  {key.id}  {'signs new events and checkpoints' if index == 0 else 'verifies what it signed'}")


@history_key.command("rotate")
@click.pass_obj
@fails_cleanly
def history_key_rotate(_obj: Context):
    """Make a new key that signs from now on; the old ones stay in the file to verify what they signed."""
    key = history_keys.rotate()
    click.echo(f"new history key {key.id} in {history_keys.key_file()}: it signs from now on (the older keys "
               "stay, to verify what they signed); copy the file to where its backups are kept")


@main.command()
@click.option("--interval", default=30.0, show_default=True, help="Seconds between sweeps.")
@click.option("--processes", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default="one per CPU",
              help="Processes that share each sweep (a fired timer is mostly CPU work in Python).")
@click.option("--checkpoints", "checkpoint_file", type=CHECKPOINT_FILE,
              help="Where the daily checkpoints go (default: PEP_CHECKPOINTS, else instance/checkpoints.jsonl).")
@click.option("--now", callback=iso_datetime,
              help="Sweep as if it were this time (ISO, with zone): a frozen clock, for tests and simulations.")
@click.option("--once", is_flag=True, help="Run one sweep, print what it did and exit (2 if it recorded incidents).")
@click.pass_obj
def scheduler(obj: Context, interval, processes, checkpoint_file, now, once):
    """Run the timer sweep (and e-mail of notifications, with PEP_SMTP_HOST) until stopped; checkpoint
    the children's histories when it starts and daily.

    Each sweep logs one health line: timers fired, instances each sweeper handled, how many are still
    due. A sweeper process that dies is replaced and its share swept again; if they keep dying, the
    scheduler exits with status 1 for its service manager to restart it."""
    from .mail import settings_from_env
    from .scheduler import health, make_scheduler, sweep_job
    from .timers import SweeperPool, SweepersFailed

    engine = Engine(FrozenClock(now) if now else None)
    if not once:
        click.echo(f"scheduler sweeping every {interval:g}s on {shown(obj.url)} with {processes} process(es)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a service manager's stop: close the pool first
    failure, result = None, None
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.suppress(KeyboardInterrupt, SystemExit))
        sweepers = stack.enter_context(SweeperPool(obj.url, processes, engine.clock)) if processes > 1 else None
        if once:
            at = engine.now()
            try:
                result = sweep_job(engine, obj.sessions, sweepers, at)
            except SweepersFailed as exc:
                failure = exc
            else:
                failure = None if result else "the sweep could not reach the database (see the log)"
        else:
            scheduler = make_scheduler(engine, obj.sessions, interval, sweepers=sweepers,
                                       mail_settings=settings_from_env(),
                                       checkpoint_file=checkpoint_file or checkpoints.default_path())
            scheduler.start()
            if scheduler.stopping is not None:  # it stopped itself: let the jobs still running finish first
                scheduler.stopping.join(timeout=120)
            failure = scheduler.failure
    if failure is not None:
        click.echo(f"error: {failure}", err=True)
        sys.exit(1)
    if result is not None:
        click.echo(f"sweep at {at.isoformat()}: {health(result)}")
        if result.incidents:
            sys.exit(2)


@main.command()
@click.pass_obj
def incidents(obj: Context):
    """List unresolved incidents."""
    with obj.sessions() as session:
        rows = session.scalars(select(Incident).where(Incident.resolved_at.is_(None)).order_by(Incident.at)).all()
        for i in rows:
            instance = f"instance {i.instance_id}" if i.instance_id else "no instance (a start)"
            click.echo(f"{i.id}  {i.at:%Y-%m-%d %H:%M}  {instance}  child {i.child_id}  {i.source}: {i.message}")
        if not rows:
            click.echo("no open incidents")


@main.group()
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


@main.group()
def children():
    """Manage children and their case teams."""


@children.command("add")
@click.argument("child_id")
@click.option("--name", required=True)
@click.option("--dob", callback=lambda _c, _p, v: _iso_date(v), help="Date of birth, YYYY-MM-DD.")
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


@main.command()
@click.argument("instance_id", type=int)
@click.pass_obj
def show(obj: Context, instance_id):
    """Show one instance: status, version, next timer, waiting messages."""
    with obj.sessions() as session:
        instance = session.get(Instance, instance_id)
        if instance is None:
            click.echo(f"error: no instance {instance_id}", err=True)
            sys.exit(1)
        click.echo(json.dumps({
            "id": instance.id, "child": instance.child_id, "process": instance.definition.process_id,
            "deployment_version": instance.definition.deployment.version, "status": instance.status,
            "version": instance.version,
            "next_timer_at": instance.next_timer_at.isoformat() if instance.next_timer_at else None,
            "waiting_messages": instance.waiting_messages,
        }, indent=2))


if __name__ == "__main__":  # python -m engine.cli, as the `pep` script
    main()
