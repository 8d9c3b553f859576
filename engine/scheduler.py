"""APScheduler wiring for the timer sweep, e-mail and the daily checkpoint of histories. Called by
`pep scheduler` and by the web app's run command.

APScheduler only says *when* to sweep; what is due lives in the database, so a restart loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from . import checkpoints, mail
from .db import DatabaseUnavailable, connection_lost, describe, retrying
from .timers import SweeperPool, SweepersFailed, SweepResult, fire_due_timers, still_due

log = logging.getLogger(__name__)


def sweep_job(engine, sessions, sweepers: SweeperPool | None = None, now: datetime | None = None) -> SweepResult | None:
    """Run one sweep at `now` (default: the engine's clock), shared between the pool's processes if there
    is one, and log its health line: what it did, how many instances each sweeper handled and how many
    are still due. A database out of reach is logged in one line and left to the next sweep (None);
    sweeper processes that keep dying raise `SweepersFailed`."""
    now = now or engine.now()
    try:
        result = sweepers.sweep(now) if sweepers else fire_due_timers(engine, sessions, now=now)
        due = retrying(lambda: still_due(sessions, now), "timer sweep, what is still due")
    except DatabaseUnavailable as exc:
        log.warning("timers: sweep at %s stopped, the next sweep carries on: %s", now.isoformat(), exc)
        return None
    except Exception as exc:
        if not connection_lost(exc):
            raise
        log.warning(
            "timers: sweep at %s stopped, the next sweep carries on: the database connection was lost (%s)",
            now.isoformat(),
            describe(exc),
        )
        return None
    result.still_due = due
    log.info("timers: sweep at %s: %s", now.isoformat(), health(result))
    return result


def health(result: SweepResult) -> str:
    """The sweep in one line, as the scheduler logs it."""
    sweepers = len(result.by_sweeper)
    handled = (
        f"{result.by_sweeper[0]} instances handled"
        if sweepers == 1
        else f"instances handled by sweeper {', '.join(f'{k + 1}: {n}' for k, n in enumerate(result.by_sweeper))}"
    )
    return (
        f"{result.timers_fired} timers fired; {handled}; {result.still_due} still due; {len(result.incidents)} incidents, "
        f"{result.conflicts} conflicts, {result.lost_connections} lost connections tried again, "
        f"{result.replaced} sweeper processes replaced; {result.overdue} tasks overdue, {result.reminded} reminded, "
        f"{result.escalated} escalated"
    )


def checkpoint_job(engine, sessions, path: Path) -> None:
    """Checkpoint every history that moved (engine/checkpoints.py); say loudly what could not be."""
    run = checkpoints.write(sessions, engine.now(), path)
    log.info("checkpoints: %d written, %d unchanged, in %s", len(run.written), run.unchanged, path)
    for child_id, problems in run.refused.items():
        log.error("the history of %s does not verify, so it was not checkpointed: %s", child_id, "; ".join(problems))
    for child_id in run.missing:
        log.error("%s was checkpointed before but is no longer in the database: their history was deleted", child_id)
    for problem in run.file_problems:
        log.error("checkpoint file %s: %s", path, problem)


def make_scheduler(
    engine,
    sessions,
    interval_seconds: float = 30,
    background: bool = False,
    sweepers: SweeperPool | None = None,
    mail_settings: Mapping | None = None,
    checkpoint_file: Path | None = None,
):
    """A scheduler that sweeps due timers now and every `interval_seconds`, never overlapping itself;
    with `sweepers`, each sweep is shared between their processes (the caller closes the pool); with
    `mail_settings` (`engine.mail`), it also sends the notifications by e-mail every minute; with
    `checkpoint_file`, it checkpoints the children's histories there now and every day.

    The cadence is real time; what is due is decided by the engine's clock inside each sweep. If the
    sweeper processes cannot be kept running, the scheduler stops itself and keeps the error in
    `scheduler.failure` (`pep scheduler` then exits non-zero, for its service manager to restart it).
    """
    scheduler = (BackgroundScheduler if background else BlockingScheduler)(timezone="UTC")
    scheduler.failure = None
    scheduler.stopping = None  # the thread stopping it after a failure: join it before closing the database

    def sweep() -> None:
        try:
            sweep_job(engine, sessions, sweepers)
        except SweepersFailed as exc:
            log.error("timers: %s; stopping the scheduler", exc)
            scheduler.failure = exc
            # stopped from another thread, so that it waits for the jobs still running (this one, a
            # checkpoint, an e-mail run) before `start()` returns and the command closes the database
            scheduler.stopping = threading.Thread(target=scheduler.shutdown, name="scheduler stop", daemon=True)
            scheduler.stopping.start()

    scheduler.add_job(
        sweep,
        "interval",
        seconds=interval_seconds,
        id="timer-sweep",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    if mail_settings is not None:
        scheduler.add_job(
            mail.deliver_pending,
            "interval",
            args=[mail_settings, sessions, engine.now],
            seconds=60,
            id="notifications",
            max_instances=1,
            coalesce=True,
        )
    if checkpoint_file is not None:
        scheduler.add_job(
            checkpoint_job,
            "interval",
            args=[engine, sessions, checkpoint_file],
            hours=24,
            id="checkpoint",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
    return scheduler
