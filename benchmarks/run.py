"""The year benchmark from end to end: a fresh database, the simulated year, then the database grown
to a national service's size for the inbox and the timer sweep. Prints every figure it measures."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from engine import clock as clocks
from engine import dashboardcheck, timeliness
from engine.db import make_db, session_factory
from engine.inbox import inbox
from engine.models import Base, Instance, User
from engine.runtime import Engine
from engine.schema import upgrade
from engine.timers import SweeperPool, fire_due_timers

from . import bulk
from .measure import Progress, Samples, database_bytes, peak_memory_mb
from .simulate import Simulation

ROOT = Path(__file__).resolve().parent.parent
INBOX_QUERIES = 200


@dataclass
class Figures:
    """Everything the benchmark reports, as numbers (milliseconds unless named otherwise)."""

    database: str
    children: int
    days: int
    tasks: int = 0
    engine_p50: float = 0.0
    engine_p95: float = 0.0
    bare_p50: float = 0.0
    bare_p95: float = 0.0
    engine_cpu_p50: float = 0.0
    bare_cpu_p50: float = 0.0
    ratio_of_p50s: float = 0.0
    median_ratio: float = 0.0
    refused_forms: int = 0
    timers_fired_in_year: int = 0
    incidents: int = 0
    statutory: timeliness.Statutory | None = None  # from the histories' statutory events (engine/timeliness.py)
    dashboard: list[dashboardcheck.Compared] = field(
        default_factory=list
    )  # the oversight pages' figures against history
    database_mb: float = 0.0
    kb_per_child_year: float = 0.0
    open_instances: int = 0
    inbox: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # who → p50, p95, rows
    sweeps: dict[int, tuple[int, float]] = field(default_factory=dict)  # sweepers → timers fired, seconds
    peak_memory_mb: float = 0.0
    simulation_seconds: float = 0.0
    load_average: float = 0.0  # of the machine at the end: other work on it slows every figure

    @property
    def sweep_timers(self) -> int:
        """Timers fired by the sweep with the most sweepers."""
        return self.sweeps[max(self.sweeps)][0] if self.sweeps else 0

    @property
    def sweep_rate(self) -> float:
        fired, seconds = self.sweeps[max(self.sweeps)] if self.sweeps else (0, 0.0)
        return fired / seconds if seconds else 0.0


def fresh_database(url: str):
    """An empty database at `url` with the schema of the newest migration."""
    if url.startswith("sqlite:///"):
        for path in Path(url.removeprefix("sqlite:///")).parent.glob(Path(url).name + "*"):
            path.unlink()
    db = make_db(url)
    if db.dialect.name != "sqlite":
        Base.metadata.drop_all(db)
        with db.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(db.url.render_as_string(hide_password=False))
    return db


def run_year(
    url: str,
    children: int,
    start: date,
    end: date,
    open_instances: int,
    due_timers: int,
    seed: int = 2025,
    progress: bool = True,
    sweepers: int | None = None,
) -> Figures:
    """Simulate the year, then measure the inbox and the timer sweep at national size.

    The sweep is timed with one sweeper and, if `sweepers` is more (default: one per CPU, as `pep
    scheduler` runs), again with that many processes sharing a fresh set of due timers."""
    db = fresh_database(url)
    sessions = session_factory(db)
    simulation = Simulation(sessions, ROOT, children, start, end, seed=seed, progress=progress)
    began = time.perf_counter()
    simulation.set_up()
    year = simulation.run()
    figures = Figures(
        database=db.dialect.name, children=children, days=year.days, simulation_seconds=time.perf_counter() - began
    )
    figures.tasks = year.tasks_done
    figures.engine_p50, figures.engine_p95 = year.engine.ms(50), year.engine.ms(95)
    figures.bare_p50, figures.bare_p95 = year.bare.ms(50), year.bare.ms(95)
    figures.engine_cpu_p50, figures.bare_cpu_p50 = year.engine_cpu.ms(50), year.bare_cpu.ms(50)
    figures.ratio_of_p50s = figures.engine_p50 / figures.bare_p50 if year.bare else float("nan")
    figures.median_ratio = sorted(year.ratios)[len(year.ratios) // 2] if year.ratios else float("nan")
    figures.refused_forms = sum(year.refused.values())
    figures.timers_fired_in_year, figures.incidents = year.timers_fired, year.incidents
    with sessions() as session:  # before any copies are added for the sweep and the inbox
        figures.statutory = timeliness.statutory(session, start, end)
        figures.dashboard = dashboardcheck.against_dashboard(session, simulation.engine.now(), start)
    size = database_bytes(db)
    figures.database_mb = size / 2**20
    figures.kb_per_child_year = size / 1024 / (children * year.days / 365)

    engine = simulation.engine
    sweepers = sweepers or os.cpu_count() or 1
    for count in sorted({1, sweepers}):
        figures.sweeps[count] = _sweep(url, sessions, engine, due_timers, count, f"S{count}", progress)
    figures.open_instances = _grow(sessions, open_instances, progress)
    if db.dialect.name == "postgresql":  # what autovacuum does on a live server (this machine's has it off)
        with db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    figures.inbox = inboxes(sessions, engine.now())
    figures.peak_memory_mb = peak_memory_mb()
    figures.load_average = os.getloadavg()[1]
    return figures


def _sweep(url, sessions, engine, due: int, sweepers: int, prefix: str, progress: bool) -> tuple[int, float]:
    """Copy `due` instances that wait on a timer, move the clock past them all, and time one sweep by
    `sweepers` processes sharing the due instances (`engine.timers.SweeperPool`, as `pep scheduler`)."""
    bar = Progress(due, f"timers due ({sweepers})", progress)
    bulk.copy_instances(sessions, due, with_timer=True, prefix=prefix, progress=bar.update)
    bar.close()
    with sessions() as session:
        latest = session.scalar(select(func.max(Instance.next_timer_at)).where(Instance.child_id.like(f"{prefix}%")))
    if latest is None:
        return 0, 0.0
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(SweeperPool(url, sweepers, engine.clock)) if sweepers > 1 else None
        if pool:
            pool.sweep()  # nothing is due yet: the processes start and parse the specs, untimed
        engine.clock.set(latest + timedelta(minutes=1))
        with clocks.using(engine.clock):
            started = time.perf_counter()
            result = pool.sweep() if pool else fire_due_timers(engine, sessions)
            return result.timers_fired, time.perf_counter() - started


def sweep_again(url: str, due: int, sweepers: int | None = None, progress: bool = True) -> dict[int, tuple[int, float]]:
    """Time the sweep again on a database a `year` run left behind: copies of its instances that wait on
    a timer, fired with one sweeper and then with `sweepers` (default: one per CPU)."""
    sessions = session_factory(make_db(url))
    with sessions() as session:
        first = session.scalar(select(func.min(Instance.next_timer_at)).where(Instance.status == "running"))
    if first is None:
        return {}
    engine = Engine(clocks.FrozenClock(first - timedelta(minutes=1)))
    run = f"R{int(time.time()) % 100_000}"
    return {
        count: _sweep(url, sessions, engine, due, count, f"{run}S{count}", progress)
        for count in sorted({1, sweepers or os.cpu_count() or 1})
    }


def sweep_lines(sweeps: dict[int, tuple[int, float]]) -> list[str]:
    """One line per sweep timed; a rate only over timers that were due and fired."""
    lines = []
    for count, (fired, seconds) in sweeps.items():
        head = f"timer sweep, {count} sweeper{'s' if count > 1 else ' '}       "
        lines.append(
            head
            + (
                f"{fired} timers in {seconds:.1f} s = {fired / seconds:.0f} timers/s"
                if fired and seconds
                else "no timers were due"
            )
        )
    return lines


def _grow(sessions, target: int, progress: bool) -> int:
    """Copy waiting instances until `target` instances are open."""
    with sessions() as session:
        running = session.scalar(select(func.count()).select_from(Instance).where(Instance.status == "running"))
    missing = max(0, target - running)
    bar = Progress(missing, "open instances", progress)
    bulk.copy_instances(sessions, missing, with_timer=False, prefix="N", progress=bar.update)
    bar.close()
    return open_instance_count(sessions)


def open_instance_count(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Instance).where(Instance.status == "running"))


def inboxes(sessions, now) -> dict[str, tuple[float, float, int]]:
    """Time the inbox of the busiest designated teacher and of a VS education adviser."""
    figures = {}
    with sessions() as session:
        teacher = bulk.busiest(session, "designated_teacher")
        adviser = session.scalars(select(User).where(User.email.like("ea1@%"))).first()
        for label, user in (("designated teacher", teacher), ("VS education adviser", adviser)):
            if user is None:
                continue
            samples, rows = Samples(), 0
            for _ in range(INBOX_QUERIES):
                with samples.timing():
                    rows = len(inbox(session, user.id, user.role_keys, now))
            figures[label] = (samples.ms(50), samples.ms(95), rows)
    return figures


def report(figures: Figures) -> str:
    """The figures as the lines the benchmark prints (and docs/benchmarks.md quotes)."""
    f = figures
    lines = [
        f"database                      {f.database}; {f.children} children; {f.days} simulated days "
        f"({f.simulation_seconds:.0f} s wall)",
        f"tasks completed               {f.tasks} ({f.refused_forms} answers refused and corrected; "
        f"{f.timers_fired_in_year} timers fired; {f.incidents} incidents)",
        f"task completion, engine       p50 {f.engine_p50:.1f} ms   p95 {f.engine_p95:.1f} ms",
        f"same task, bare SpiffWorkflow p50 {f.bare_p50:.1f} ms   p95 {f.bare_p95:.1f} ms",
        f"engine / bare                 {f.ratio_of_p50s:.2f}x (p50 / p50); median per-task ratio {f.median_ratio:.2f}x",
        f"the same in CPU time          engine p50 {f.engine_cpu_p50:.1f} ms, bare p50 {f.bare_cpu_p50:.1f} ms = "
        f"{f.engine_cpu_p50 / f.bare_cpu_p50 if f.bare_cpu_p50 else float('nan'):.2f}x (what other work on the machine does not change)",
    ]
    for who, (p50, p95, rows) in f.inbox.items():
        lines.append(
            f"inbox, {who:22s} p50 {p50:.1f} ms   p95 {p95:.1f} ms   ({rows} rows; {f.open_instances} open instances)"
        )
    lines += sweep_lines(f.sweeps)
    lines += [
        f"database size                 {f.database_mb:.1f} MB after the year = {f.kb_per_child_year:.0f} KB per child-year",
        f"peak memory                   {f.peak_memory_mb:.0f} MB",
        f"machine                       {os.cpu_count()} CPUs; load average over the last 5 minutes {f.load_average:.1f}",
    ]
    if f.statutory:
        lines += statutory_lines(f.statutory)
    lines += dashboard_lines(f.dashboard)
    return "\n".join(lines)


def statutory_lines(s: timeliness.Statutory) -> list[str]:
    """The statutory figures (issue #22), each with its denominator; definitions in engine/timeliness.py."""
    late, told, rep, stuck = s.lateness, s.telling, s.repeats, s.open
    lines = [
        f"PEPs                          {s.peps_started} started, {s.peps_signed_off} signed off, {stuck.running} open at the end",
        f"initial PEPs in 20 work days  meeting held {s.initial.held}, signed off {s.initial.signed_off} of children "
        f"entering care, within 20 working days (+{s.initial.pending} still within them at the end)",
    ]
    for term in s.terms:
        span = "" if term.whole else f" (to {term.last:%d %b %Y} only)"
        lines.append(
            f"reviews, {term.label:21s} {term.reviewed} of children in care (aged 2 to 18) for the whole "
            f"term{span} with a PEP signed off in it"
        )
    waiting = f": waiting only for {', '.join(stuck.idle_waiting_for)}" if stuck.idle_waiting_for else ""
    lines += [
        f"stuck PEPs at the end         {stuck.stuck} ({stuck.nobody} with an open task nobody holds or may claim "
        f"from a pool; {stuck.idle} with no open task and no timer{waiting})",
        f"tasks without a person        {s.needed_a_person} opened with nobody to take them; "
        f"{s.open_without_person} still so at the end",
        f"tasks late on first completion {late.late}/{late.tasks} ({100 * late.late / late.tasks if late.tasks else 0:.1f}%); "
        f"working days late: median {late.median_days:.0f}, p90 {late.p90_days:.0f}",
        f"overdue tasks told in time    {told.in_time}/{told.overdue} "
        f"({100 * told.in_time / told.overdue if told.overdue else 0:.1f}%) reminded, escalated or met by the "
        f"diagram's timer by the end of the working day after the due day (or opening if later; {told.later} later, {told.never} never; "
        f"{told.escalated} escalated)",
        escalation_line(s.escalations),
        f"repeats per task              at most {rep.most} completions of one task in one PEP; "
        f"{rep.peps_over} PEPs with a task done more than {timeliness.REPEATS_ALLOWED} times"
        + (f" ({', '.join(rep.worst)})" if rep.worst else ""),
    ]
    return lines


def escalation_line(e: timeliness.Escalations) -> str:
    """How long after its deadline each overdue step was escalated (target: none after more than 1 working day)."""
    never = f" ({', '.join(e.unescalated)})" if e.unescalated else ""
    return (
        f"escalation of overdue steps   {e.escalated}/{e.overdue} escalated ({e.by_policy} by the overdue policy, "
        f"{e.by_diagram} by the diagram's own timer), whole working days after the due day: p50 {e.percentile(50)}, "
        f"p95 {e.percentile(95)}, max {e.days[-1] if e.days else 0}; {e.over_one} after more than 1 working day; "
        f"{e.closed_first} done or withdrawn within 1 working day first; {e.unescalated_steps} overdue more than "
        f"1 working day and never escalated{never}"
    )


DASHBOARD_NAMES = {
    "due": "PEPs due",
    "held": "held",
    "on_time": "on time",
    "late": "late",
    "overdue": "overdue",
    "not_yet_due": "not yet due",
    "children": "children in care",
    "initial_due": "initial PEPs due",
    "initial_started": "started in time",
    "initial_ready": "ready in time",
    "initial_late": "not ready and past",
    "initial_unknown": "entered care unknown",
    "in_care": "in care",
    "reviewed": "reviewed",
    "not_reviewed": "not reviewed",
}


def dashboard_lines(compared: list[dashboardcheck.Compared]) -> list[str]:
    """The oversight dashboard's figures beside the same figures counted from history (dashboard|history),
    one line per period, and the children behind any that differ."""
    lines = []
    for c in compared:
        pairs = []
        for name, shown, counted in c.figures:
            figure, _, term = name.partition("@")
            label = DASHBOARD_NAMES[figure] + (f" {term.split()[-1]}" if term else "")
            pairs.append(f"{label} {shown}/{counted}" + ("" if shown == counted else " (differs)"))
        verdict = "equal" if c.equal else "NOT EQUAL"
        lines.append(f"oversight, {c.period:19s} dashboard/history, {verdict}: {', '.join(pairs)}")
        for name, who in c.differing.items():
            lines.append(f"  {name}: {len(who)} children differ: {', '.join(who[:10])}{' …' if len(who) > 10 else ''}")
    return lines


def school_year(start: date, weeks: int | None) -> tuple[date, date]:
    """From `start` to the end of July, or for a number of weeks."""
    end = start + timedelta(weeks=weeks) - timedelta(days=1) if weeks else date(start.year + 1, 7, 31)
    return start, end
