"""The fault run: the timer sweep of a grown database under the faults a council's server meets, through
the real command (`pep scheduler --once --now ... --processes n`): the sweepers' database connections
terminated again and again while they work (as a failover, a restart or an idle timeout does), and one
sweeper process killed with kill -9 mid-sweep. Then a later sweep, without faults. Prints what was lost,
applied twice or recorded as a false incident: each should be 0.

PostgreSQL only: terminating a backend (`pg_terminate_backend`) is what a lost connection is there.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from engine import history
from engine.db import make_db, session_factory
from engine.models import Deployment, Event, Incident, Instance

from . import bulk
from .measure import Progress

ROOT = Path(__file__).resolve().parent.parent
SWEEPERS = "application_name LIKE 'pep sweeper %' OR application_name = 'pep scheduler'"
HEALTH = re.compile(
    r"(?P<fired>\d+) timers fired; .*; (?P<still_due>-?\d+|None) still due; (?P<incidents>\d+) incidents, "
    r"(?P<conflicts>\d+) conflicts, (?P<retried>\d+) lost connections tried again, "
    r"(?P<replaced>\d+) sweeper processes replaced"
)


@dataclass
class Sweep:
    """One `pep scheduler --once` run, as it ended and as its health line said."""

    exit_status: int
    seconds: float
    line: str
    figures: dict[str, int] = field(default_factory=dict)


@dataclass
class FaultFigures:
    database: str
    due: int
    at: datetime
    sweepers: int
    terminated_idle: int = 0  # connections terminated between two instances
    terminated_busy: int = 0  # ... in the middle of a step (in a transaction, or running a statement)
    killed_at: int | None = None  # timers fired when a sweeper process was killed
    faulted: Sweep | None = None
    later: Sweep | None = None
    lost: int = 0  # due instances whose step was never applied
    duplicated: int = 0  # steps applied more than once to a due instance
    timers_fired_twice: int = 0  # (instance, timer, due) fired more than once
    false_incidents: int = 0  # every instance swept is a healthy one: any incident is a false one
    chains: int = 0
    chains_broken: int = 0


def run_faults(
    url: str,
    due: int,
    sweepers: int,
    terminate_every: float,
    kill_at: float,
    children: int,
    weeks: int,
    progress: bool = True,
) -> FaultFigures:
    """Grow the database by `due` copies of instances waiting on a timer (first filling an empty database
    with `children` for `weeks`), sweep them all at once under faults, sweep again, and count."""
    db = make_db(url)
    try:
        if db.dialect.name != "postgresql":
            raise ValueError("the fault run terminates PostgreSQL connections: give a PostgreSQL database")
        return _run(db, url, due, sweepers, terminate_every, kill_at, children, weeks, progress)
    finally:
        db.dispose()


def _run(db, url, due, sweepers, terminate_every, kill_at, children, weeks, progress) -> FaultFigures:
    sessions = session_factory(db)
    with sessions() as session:
        deployed = session.scalar(select(func.count()).select_from(Deployment)) if _has_schema(session) else 0
    if not deployed:
        _fill(url, children, weeks, progress)
    with sessions() as session:
        if not bulk.templates(session, with_timer=True):
            raise ValueError(
                "no running instance of this database waits on a timer (an earlier sweep fired them all): "
                "give an empty database"
            )
    prefix = f"F{int(time.time()) % 100_000}"
    bar = Progress(due, "timers due", progress)
    bulk.copy_instances(sessions, due, with_timer=True, prefix=prefix, progress=bar.update)
    bar.close()
    with sessions() as session:
        at = session.scalar(select(func.max(Instance.next_timer_at)).where(Instance.child_id.like(f"{prefix}%")))
        at += timedelta(minutes=1)
        before = dict(
            session.execute(
                select(Instance.id, Instance.version).where(Instance.status == "running", Instance.next_timer_at < at)
            ).all()
        )
        first_event = session.scalar(select(func.max(Event.id))) or 0
        first_incident = session.scalar(select(func.max(Incident.id))) or 0
    figures = FaultFigures(database=db.dialect.name, due=len(before), at=at, sweepers=sweepers)

    figures.faulted = _sweep(url, at, sweepers, Faults(db, figures, first_event, terminate_every, kill_at))
    figures.later = _sweep(url, at, sweepers)
    _count(sessions, figures, before, first_event, first_incident)
    return figures


def _has_schema(session) -> bool:
    return session.scalar(text("SELECT to_regclass('deployment') IS NOT NULL"))


def _fill(url: str, children: int, weeks: int, progress: bool) -> None:
    """A council played for a few weeks (as `year` does), whose instances the copies are made from."""
    from .run import ROOT as BENCH_ROOT
    from .run import fresh_database, school_year
    from .simulate import Simulation

    first, last = school_year(date(2025, 9, 1), weeks)
    db = fresh_database(url)
    try:
        simulation = Simulation(session_factory(db), BENCH_ROOT, children, first, last, progress=progress)
        simulation.set_up()
        simulation.run()
    finally:
        db.dispose()


def _sweep(url: str, at: datetime, sweepers: int, faults=None) -> Sweep:
    """Run `pep scheduler --once --now at` in its own process; call `faults()` while it runs."""
    command = [
        sys.executable,
        "-m",
        "engine.cli",
        "--database",
        url,
        "scheduler",
        "--once",
        "--now",
        at.isoformat(),
        "--processes",
        str(sweepers),
    ]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=err
        )
        while process.poll() is None:
            if faults:
                faults()
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        printed, logged = out.read(), err.read()
    line = printed.strip().splitlines()[-1] if printed.strip() else (logged.strip().splitlines() or [""])[-1]
    match = HEALTH.search(printed)
    numbers = {k: int(v) for k, v in match.groupdict().items() if v != "None"} if match else {}
    return Sweep(process.returncode, seconds, line, numbers)


class Faults:
    """What the run does to the sweep while it runs (called every few hundredths of a second):
    terminate every sweeper connection each `every` seconds, and kill -9 one sweeper process once
    `kill_at` of the due timers have fired."""

    def __init__(self, db, figures: FaultFigures, first_event: int, every: float, kill_at: float):
        self.db, self.figures, self.first_event, self.every, self.kill_at = db, figures, first_event, every, kill_at
        self.next_termination = time.monotonic() + every

    def __call__(self) -> None:
        figures = self.figures
        with self.db.connect() as admin:
            if time.monotonic() >= self.next_termination:
                self.next_termination = time.monotonic() + self.every
                for pid, state in admin.execute(text(f"SELECT pid, state FROM pg_stat_activity WHERE {SWEEPERS}")):
                    if admin.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}):
                        if state == "idle":
                            figures.terminated_idle += 1
                        else:
                            figures.terminated_busy += 1
            if figures.killed_at is None:
                fired = admin.scalar(
                    text("SELECT count(*) FROM event WHERE id > :first AND kind = 'timer_fired'"),
                    {"first": self.first_event},
                )
                named = admin.scalars(
                    text("SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'pep sweeper %'")
                ).all()
                if fired >= self.kill_at * figures.due and named:
                    os.kill(int(named[0].rsplit(" ", 1)[1]), signal.SIGKILL)
                    figures.killed_at = fired


def _count(sessions, figures: FaultFigures, before: dict[int, int], first_event: int, first_incident: int) -> None:
    with sessions() as session:
        after = dict(session.execute(select(Instance.id, Instance.version).where(Instance.id.in_(before))).all())
        applied = {i: after[i] - before[i] for i in before}
        figures.lost = sum(1 for n in applied.values() if n == 0)
        figures.duplicated = sum(n - 1 for n in applied.values() if n > 1)
        fired: dict[tuple, int] = {}
        for instance_id, data in session.execute(
            select(Event.instance_id, Event.data).where(Event.id > first_event, Event.kind == "timer_fired")
        ):
            key = (instance_id, data.get("timer"), data.get("due"))
            fired[key] = fired.get(key, 0) + 1
        figures.timers_fired_twice = sum(n - 1 for n in fired.values() if n > 1)
        figures.false_incidents = session.scalar(
            select(func.count()).select_from(Incident).where(Incident.id > first_incident)
        )
        children = session.scalars(select(Instance.child_id).where(Instance.id.in_(before)).distinct()).all()
        for child_id in children:
            figures.chains += 1
            figures.chains_broken += not history.verify(session, child_id).ok


def report(f: FaultFigures) -> list[str]:
    """The figures as the lines the benchmark prints (and docs/benchmarks.md quotes)."""
    faulted, later = f.faulted, f.later
    killed = (
        f"1 sweeper process killed (kill -9) when {f.killed_at} timers had fired"
        if f.killed_at is not None
        else "no sweeper process killed (the sweep ended first)"
    )
    return [
        f"database                      {f.database}; {f.due} instances with a timer due at {f.at.isoformat()}; "
        f"`pep scheduler --once --processes {f.sweepers}`",
        f"faults                        {f.terminated_idle + f.terminated_busy} connections terminated "
        f"({f.terminated_idle} between two instances, {f.terminated_busy} mid-step); {killed}",
        f"the faulted sweep             exit {faulted.exit_status} in {faulted.seconds:.1f} s: {faulted.line}",
        f"a later sweep                 exit {later.exit_status} in {later.seconds:.1f} s: {later.line}",
        f"lost                          {f.lost} (due instances whose timers never fired)",
        f"duplicated                    {f.duplicated} (steps applied twice; {f.timers_fired_twice} timers fired twice)",
        f"false incidents               {f.false_incidents} (incidents recorded, each pausing a healthy instance's timers)",
        f"histories                     {f.chains - f.chains_broken} of {f.chains} children's hash chains intact",
    ]
