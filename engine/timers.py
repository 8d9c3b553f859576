"""The timer sweep: fire every due timer exactly once, one transaction per instance; then act on the
tasks whose due date has passed (the council's overdue policy, engine/overdue.py).

Called by `pep timers`, the scheduler process and the simulator. The database, not the scheduler's
memory, says what is due, so a restart loses nothing. On PostgreSQL each instance is taken with
`FOR UPDATE SKIP LOCKED`, so several schedulers share the work and never fire one timer twice.

A lost database connection (a failover, a restart, a terminated backend) is a fault of the service,
not of the instance: what it was doing is tried again on a fresh connection (`db.try_again`), and
only a step that committed changes an instance's `next_timer_at`. Incidents are for what fails in
the process itself (its diagram, its data); if the database stays out of reach, the sweep stops
with `DatabaseUnavailable` and the next one carries on.

Most of a fired timer's cost is SpiffWorkflow's own work in Python (rebuild the workflow, run it,
serialize it), which one process does on one CPU. `SweeperPool` shares each sweep between processes
(instance id modulo n), one per CPU: they run their steps side by side and meet only at the database,
where on SQLite each waits its turn for the write lock (a step's reads and work come before its first
write) and on PostgreSQL each holds only its own instances' row locks. A sweeper process that dies
is replaced and its share swept again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from . import overdue
from .clock import FrozenClock, SystemClock
from .db import DatabaseUnavailable, connection_lost, make_db, retrying, session_factory, try_again
from .errors import Conflict
from .models import Instance
from .runtime import Engine
from .vocabulary import Status

log = logging.getLogger(__name__)


MAX_REPLACEMENTS = 3  # sweeper processes replaced within one sweep before the scheduler gives up


class SweepersFailed(RuntimeError):
    """The sweeper processes kept dying: `pep scheduler` exits non-zero for its service manager to restart it."""


@dataclass
class SweepResult:
    instances: int = 0
    timers_fired: int = 0
    incidents: list[int] = field(default_factory=list)
    conflicts: int = 0
    lost_connections: int = 0  # tried again on a fresh connection
    by_sweeper: list[int] = field(default_factory=list)  # instances each sweeper (share) handled
    replaced: int = 0  # sweeper processes that died and were replaced
    still_due: int | None = None  # after the sweep, as `still_due` counts them (the scheduler's health line)
    overdue: int = 0  # tasks found overdue, reminded and escalated by the overdue policy (engine/overdue.py)
    reminded: int = 0
    escalated: int = 0

    def add(self, other: SweepResult) -> SweepResult:
        self.instances += other.instances
        self.timers_fired += other.timers_fired
        self.incidents += other.incidents
        self.conflicts += other.conflicts
        self.lost_connections += other.lost_connections
        self.by_sweeper += other.by_sweeper
        self.replaced += other.replaced
        self.overdue += other.overdue
        self.reminded += other.reminded
        self.escalated += other.escalated
        return self


def fire_due_timers(
    engine: Engine,
    sessions: sessionmaker[Session],
    now: datetime | None = None,
    batch: int = 500,
    share: tuple[int, int] = (0, 1),
) -> SweepResult:
    """Fire every timer due before `now` (default: the engine's clock); failures of a process become
    incidents, lost connections are tried again (`DatabaseUnavailable` if the database stays lost).

    `share` = (k, n) sweeps only the instances whose id is k modulo n, so that n sweepers (processes
    or machines, on PostgreSQL) divide the work instead of skipping past each other's locks.
    """
    now = now or engine.now()
    result, passed = SweepResult(), set[int]()  # instances that stay due (a lock held elsewhere, a conflict)
    part, parts = share
    query = select(Instance.id).where(Instance.status == Status.RUNNING, Instance.next_timer_at < now)
    if parts > 1:
        query = query.where(Instance.id % parts == part)
    query = query.order_by(Instance.next_timer_at)

    def due_now() -> list[int]:
        with sessions() as session:
            return [i for i in session.scalars(query.limit(batch + len(passed))) if i not in passed][:batch]

    while True:
        try:
            due = due_now()
        except Exception as exc:
            if not connection_lost(exc):
                raise
            result.lost_connections += 1
            due = try_again(due_now, exc, "timer sweep", on_lost=lambda: _lost(result))
        if not due:
            result.by_sweeper = [result.instances]
            # then the tasks whose due date (or escalation) has come: the timers first, so that a task
            # a deadline withdrew is not also reported overdue
            late = overdue.sweep(sessions, engine.overdue_policy, now, batch, share)
            result.overdue, result.reminded, result.escalated = late.overdue, late.reminded, late.escalated
            return result
        for instance_id in due:
            if not _fire_one(engine, sessions, instance_id, now, result):
                passed.add(instance_id)


def _lost(result: SweepResult) -> None:
    result.lost_connections += 1


def _fire_one(engine: Engine, sessions, instance_id: int, now: datetime, result: SweepResult) -> bool:
    """Fire one instance's due timers in its own transaction, again on a fresh connection if the
    connection is lost; False if it is still due afterwards (another sweeper holds it, or a
    concurrent step won), so this sweep passes it by."""
    try:
        try:
            fired = _fire(engine, sessions, instance_id, now)
        except Exception as exc:
            if not connection_lost(exc):
                raise
            result.lost_connections += 1
            fired = try_again(
                partial(_fire, engine, sessions, instance_id, now),
                exc,
                f"timer sweep, instance {instance_id}",
                on_lost=lambda: _lost(result),
            )
    except DatabaseUnavailable:
        raise  # the database, not this instance: the sweep stops, and the next one carries on
    except (Conflict, OperationalError, StaleDataError):
        result.conflicts += 1  # contention, not a broken instance: the next sweep tries again
        return False
    except Exception as exc:  # noqa: BLE001 - one broken instance must not stop the sweep
        log.exception("timer sweep: instance %s failed", instance_id)
        retrying(
            partial(_record, engine, sessions, instance_id, exc), f"timer sweep, incident of instance {instance_id}"
        )
        result.incidents.append(instance_id)
        return True  # its timers pause (next_timer_at is cleared) until someone acts
    if fired is None:
        return False  # another scheduler has it, or it moved on
    result.instances += 1
    result.timers_fired += fired
    return True


def _fire(engine: Engine, sessions, instance_id: int, now: datetime) -> int | None:
    """The instance's step, committed; how many timers it fired (None: not to be had, or no longer due)."""
    with sessions() as session, session.begin():
        return engine.fire_due(session, instance_id, now)


def _record(engine: Engine, sessions, instance_id: int, exc: BaseException) -> None:
    with sessions() as session, session.begin():
        engine.record_incident(session, instance_id, "timer", exc)


def still_due(sessions: sessionmaker[Session], now: datetime) -> int:
    """How many running instances have a timer due before `now` (what a sweep left: locked or
    changed elsewhere at that moment, or the database out of reach)."""
    with sessions() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(Instance)
                .where(Instance.status == Status.RUNNING, Instance.next_timer_at < now)
            )
            or 0
        )


class SweeperPool:
    """Processes that share every sweep, each with its own connection and engine (so its own spec
    cache, kept from sweep to sweep). `sweep()` returns when every share is done.

    `clock` is the caller's clock: the sweep fires what is due by its time, and a frozen clock (the
    simulator's, a test's) is frozen in the processes too.

    A process that dies (killed, out of memory) breaks the whole pool: the pool is replaced by a new
    one and the shares not yet done are swept again (one instance at a time, each committed or not,
    so nothing is fired twice). After `MAX_REPLACEMENTS` in one sweep, `SweepersFailed`.
    """

    def __init__(self, url: str, processes: int, clock=None):
        self.url, self.processes, self.clock = url, processes, clock or SystemClock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_sweeper,
            initargs=(self.url,),
        )

    def sweep(self, now: datetime | None = None) -> SweepResult:
        now = now or self.clock.now()
        frozen = isinstance(self.clock, FrozenClock)
        done: dict[int, SweepResult] = {}
        replaced = 0
        while True:
            died = failed = None
            try:
                shares = {
                    k: self._pool.submit(_sweep_share, now, frozen, (k, self.processes))
                    for k in range(self.processes)
                    if k not in done
                }
            except BrokenProcessPool as exc:  # one died since the last sweep
                died, shares = exc, {}
            for k, share in shares.items():  # every share is waited for, whatever happens to the others
                try:
                    done[k] = share.result()
                except BrokenProcessPool as exc:
                    died = exc
                except Exception as exc:  # noqa: BLE001 - raised once every share has returned
                    failed = failed or exc
            if failed is not None and died is None:
                raise failed
            if died is None:
                break
            replaced += 1
            self._pool.shutdown(wait=False, cancel_futures=True)
            if replaced > MAX_REPLACEMENTS:
                raise SweepersFailed(f"sweeper processes died {replaced} times in one sweep; the last: {died}")
            log.warning(
                "timer sweep: a sweeper process died (%s); starting new ones to sweep the %d share(s) not done",
                died,
                self.processes - len(done),
            )
            self._pool = self._start()
        result = SweepResult(replaced=replaced)
        for k in range(self.processes):
            result.add(done[k])
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
    # named for pg_stat_activity: an operator (or a fault test) sees which process holds which connection
    _sweeper = Engine(), session_factory(make_db(url, name=f"pep sweeper {os.getpid()}"))
    try:
        retrying(lambda: _parse(*_sweeper), "sweeper start")
    except DatabaseUnavailable as exc:  # the specs are parsed as the steps need them; the sweep says the rest
        log.warning("%s", exc)


def _parse(engine: Engine, sessions) -> None:
    with sessions() as session:
        engine.parse_newest(session)


def _sweep_share(now: datetime, frozen: bool, share: tuple[int, int]) -> SweepResult:
    assert _sweeper is not None, "a sweep share runs in a process the pool started (_start_sweeper)"
    engine, sessions = _sweeper
    engine.clock = FrozenClock(now) if frozen else SystemClock()
    return fire_due_timers(engine, sessions, now=now, share=share)
