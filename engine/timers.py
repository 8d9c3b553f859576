"""The timer sweep: fire every due timer exactly once, one transaction per instance.

Called by `pep timers`, the scheduler process and the simulator. The database, not the scheduler's
memory, says what is due, so a restart loses nothing. On PostgreSQL each instance is taken with
`FOR UPDATE SKIP LOCKED`, so several schedulers share the work and never fire one timer twice.

Most of a fired timer's cost is SpiffWorkflow's own work in Python (rebuild the workflow, run it,
serialize it), which one process does on one CPU. `SweeperPool` shares each sweep between processes
(instance id modulo n), one per CPU: they run their steps side by side and meet only at the database,
where on SQLite each waits its turn for the write lock (a step's reads and work come before its first
write) and on PostgreSQL each holds only its own instances' row locks.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from .clock import FrozenClock, SystemClock
from .db import make_db, session_factory
from .models import Instance
from .runtime import LEAN_INSTANCE, Conflict, Engine

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    instances: int = 0
    timers_fired: int = 0
    incidents: list[int] = field(default_factory=list)
    conflicts: int = 0

    def add(self, other: SweepResult) -> SweepResult:
        self.instances += other.instances
        self.timers_fired += other.timers_fired
        self.incidents += other.incidents
        self.conflicts += other.conflicts
        return self


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
            result.timers_fired += engine.fire_timers(session, instance, locked=True)
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


class SweeperPool:
    """Processes that share every sweep, each with its own connection and engine (so its own spec
    cache, kept from sweep to sweep). `sweep()` returns when every share is done.

    `clock` is the caller's clock: the sweep fires what is due by its time, and a frozen clock (the
    simulator's, a test's) is frozen in the processes too.
    """

    def __init__(self, url: str, processes: int, clock=None):
        self.processes, self.clock = processes, clock or SystemClock()
        self._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start_sweeper, initargs=(url,))

    def sweep(self, now: datetime | None = None) -> SweepResult:
        now = now or self.clock.now()
        frozen = isinstance(self.clock, FrozenClock)
        shares = [self._pool.submit(_sweep_share, now, frozen, (k, self.processes)) for k in range(self.processes)]
        result = SweepResult()
        for share in shares:
            result.add(share.result())
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> SweeperPool:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


_sweeper: tuple[Engine, sessionmaker[Session]] | None = None  # this process's, in a SweeperPool


def _start_sweeper(url: str) -> None:
    global _sweeper
    _sweeper = Engine(), session_factory(make_db(url))
    with _sweeper[1]() as session:
        _sweeper[0].parse_newest(session)


def _sweep_share(now: datetime, frozen: bool, share: tuple[int, int]) -> SweepResult:
    engine, sessions = _sweeper
    engine.clock = FrozenClock(now) if frozen else SystemClock()
    return fire_due_timers(engine, sessions, now=now, share=share)
