"""The `pep` commands that deploy and run processes: deploy (with lanes that may have nobody),
start, tasks, complete, claim, message, cancel, migrate and show.
"""

from __future__ import annotations

import json
import sys

import click
from sqlalchemy import select

from . import deployments, migration
from .cli_common import Context, fails_cleanly, json_object
from .deploy import Bundle, deploy, lane_warnings
from .errors import EngineError
from .inbox import doable_by
from .models import Instance, OpenTask, User
from .people import PeopleError, find_user
from .roles import RoleDirectory
from .runtime import Engine


@click.command("deploy")
@click.argument("dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--as", "actor", default="cli", help="Who deploys (recorded with the version).")
@click.option("--note", help="What changed.")
@click.option(
    "--retire",
    "retire",
    multiple=True,
    metavar="PROCESS_ID",
    help="Retire this process: new PEPs no longer start it (repeatable).",
)
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


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
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


@click.command("migrate")
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
            click.echo(
                f"instance {c.instance.id} (child {c.instance.child_id}, version "
                f"{c.instance.definition.deployment.version}) {verdict}"
            )
        movable = [c.instance.id for c in checks if c.safe or instance_id is not None]
    if dry_run:
        return
    for moving in movable:  # one transaction each: a refusal leaves the others moved
        with obj.sessions.begin() as session:
            migration.migrate(engine, session, moving, target, actor)
        click.echo(f"moved instance {moving} to version {version}")


@click.command()
@click.argument("instance_id", type=int)
@click.pass_obj
def show(obj: Context, instance_id):
    """Show one instance: status, version, next timer, waiting messages."""
    with obj.sessions() as session:
        instance = session.get(Instance, instance_id)
        if instance is None:
            click.echo(f"error: no instance {instance_id}", err=True)
            sys.exit(1)
        click.echo(
            json.dumps(
                {
                    "id": instance.id,
                    "child": instance.child_id,
                    "process": instance.definition.process_id,
                    "deployment_version": instance.definition.deployment.version,
                    "status": instance.status,
                    "version": instance.version,
                    "next_timer_at": instance.next_timer_at.isoformat() if instance.next_timer_at else None,
                    "waiting_messages": instance.waiting_messages,
                },
                indent=2,
            )
        )
