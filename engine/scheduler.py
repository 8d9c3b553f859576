"""APScheduler wiring for the timer sweep, e-mail and the daily checkpoint of histories. Called by
`pep scheduler` and by the web app's run command.

APScheduler only says *when* to sweep; what is due lives in the database, so a restart loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from . import checkpoints, mail
from .timers import SweeperPool, fire_due_timers

log = logging.getLogger(__name__)


def sweep_job(engine, sessions, sweepers: SweeperPool | None = None) -> None:
    """Run one sweep (shared between the pool's processes, if there is one) and log what it did."""
    result = sweepers.sweep(engine.now()) if sweepers else fire_due_timers(engine, sessions)
    if result.instances or result.incidents:
        log.info("timers: %d fired in %d instances, %d incidents, %d conflicts",
                 result.timers_fired, result.instances, len(result.incidents), result.conflicts)


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


def make_scheduler(engine, sessions, interval_seconds: float = 30, background: bool = False,
                   sweepers: SweeperPool | None = None, mail_settings: Mapping | None = None,
                   checkpoint_file: Path | None = None):
    """A scheduler that sweeps due timers now and every `interval_seconds`, never overlapping itself;
    with `sweepers`, each sweep is shared between their processes (the caller closes the pool); with
    `mail_settings` (`engine.mail`), it also sends the notifications by e-mail every minute; with
    `checkpoint_file`, it checkpoints the children's histories there now and every day.

    The cadence is real time; what is due is decided by the engine's clock inside each sweep.
    """
    scheduler = (BackgroundScheduler if background else BlockingScheduler)(timezone="UTC")
    scheduler.add_job(sweep_job, "interval", args=[engine, sessions, sweepers], seconds=interval_seconds,
                      id="timer-sweep", max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    if mail_settings is not None:
        scheduler.add_job(mail.deliver_pending, "interval", args=[mail_settings, sessions, engine.now], seconds=60,
                          id="notifications", max_instances=1, coalesce=True)
    if checkpoint_file is not None:
        scheduler.add_job(checkpoint_job, "interval", args=[engine, sessions, checkpoint_file], hours=24,
                          id="checkpoint", max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    return scheduler
