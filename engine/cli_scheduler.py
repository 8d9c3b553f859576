"""The `pep` commands of unattended work: scheduler (the timer sweep in its processes, e-mail of
notifications, daily checkpoints; `--once`), timers (one sweep now) and incidents.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import click
from sqlalchemy import select

from . import checkpoints
from .cli_common import CHECKPOINT_FILE, Context, fails_cleanly, iso_datetime, shown
from .clock import FrozenClock
from .models import Incident
from .runtime import Engine
from .timers import fire_due_timers


@click.command()
@click.option("--now", callback=iso_datetime, help="Fire as if it were this time (ISO, with zone).")
@click.pass_obj
@fails_cleanly
def timers(obj: Context, now):
    """Fire every due timer once."""
    engine = Engine(FrozenClock(now) if now else None)
    result = fire_due_timers(engine, obj.sessions)
    click.echo(
        f"{result.timers_fired} timer(s) fired in {result.instances} instance(s); {len(result.incidents)} incident(s)"
    )
    if result.incidents:
        sys.exit(2)


@click.command()
@click.option("--interval", default=30.0, show_default=True, help="Seconds between sweeps.")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="one per CPU",
    help="Processes that share each sweep (a fired timer is mostly CPU work in Python).",
)
@click.option(
    "--checkpoints",
    "checkpoint_file",
    type=CHECKPOINT_FILE,
    help="Where the daily checkpoints go (default: PEP_CHECKPOINTS, else instance/checkpoints.jsonl).",
)
@click.option(
    "--now",
    callback=iso_datetime,
    help="Sweep as if it were this time (ISO, with zone): a frozen clock, for tests and simulations.",
)
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
    failure: SweepersFailed | str | None = None  # what stopped it, said on exit
    result = None
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
            scheduler = make_scheduler(
                engine,
                obj.sessions,
                interval,
                sweepers=sweepers,
                mail_settings=settings_from_env(),
                checkpoint_file=checkpoint_file or checkpoints.default_path(),
            )
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


@click.command()
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
