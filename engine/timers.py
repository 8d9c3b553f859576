"""The timer sweep: fire every due timer exactly once, one transaction per instance.

Called by `pep timers`, the scheduler process and the simulator. The database, not the scheduler's
memory, says what is due, so a restart loses nothing. On PostgreSQL each instance is taken with
`FOR UPDATE SKIP LOCKED`, so several schedulers share the work and never fire one timer twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from .models import Instance
from .runtime import LEAN_INSTANCE, Conflict, Engine

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    instances: int = 0
    timers_fired: int = 0
    incidents: list[int] = field(default_factory=list)
    conflicts: int = 0


def fire_due_timers(engine: Engine, sessions: sessionmaker[Session], now: datetime | None = None,
                    batch: int = 500, share: tuple[int, int] = (0, 1)) -> SweepResult:
    """Fire every timer due before `now` (default: the engine's clock); failures become incidents.

    `share` = (k, n) sweeps only the instances whose id is k modulo n, so that n sweepers (processes
    or machines, on PostgreSQL) divide the work instead of skipping past each other's locks.
    """
    now = now or engine.now()
    result, passed = SweepResult(), set()  # instances that stay due (a lock held elsewhere, a conflict)
    part, parts = share
    while True:
        query = select(Instance.id).where(Instance.status == "running", Instance.next_timer_at < now)
        if parts > 1:
            query = query.where(Instance.id % parts == part)
        with sessions() as session:
            due = [i for i in session.scalars(query.order_by(Instance.next_timer_at).limit(batch + len(passed)))
                   if i not in passed][:batch]
        if not due:
            return result
        for instance_id in due:
            if not _fire_one(engine, sessions, instance_id, now, result):
                passed.add(instance_id)


def _fire_one(engine: Engine, sessions, instance_id: int, now: datetime, result: SweepResult) -> bool:
    """Fire one instance's due timers in its own transaction; False if it is still due afterwards
    (another sweeper holds it, or a concurrent step won), so this sweep passes it by."""
    try:
        with sessions() as session, session.begin():
            instance = session.scalar(
                select(Instance).where(Instance.id == instance_id, Instance.status == "running",
                                       Instance.next_timer_at < now)
                .with_for_update(skip_locked=True, of=Instance).options(*LEAN_INSTANCE)
            )
            if instance is None:
                return False  # another scheduler has it, or it moved on
            result.instances += 1
            result.timers_fired += engine.fire_timers(session, instance)
            if instance.next_timer_at is not None and instance.next_timer_at < now and instance.status == "running":
                raise RuntimeError(f"timer due at {instance.next_timer_at.isoformat()} did not fire")
        return True
    except (Conflict, OperationalError, StaleDataError):
        result.conflicts += 1  # contention, not a broken instance: the next sweep tries again
        return False
    except Exception as exc:  # noqa: BLE001 - one broken instance must not stop the sweep
        log.exception("timer sweep: instance %s failed", instance_id)
        with sessions() as session, session.begin():
            engine.record_incident(session, instance_id, "timer", exc)
        result.incidents.append(instance_id)
        return True  # its timers pause (next_timer_at is cleared) until someone acts
