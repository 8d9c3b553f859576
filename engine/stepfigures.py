"""The figures of the steps themselves, from children's histories (pure over `Record`s, as
engine/timeliness.py): lateness of tasks on first completion, overdue tasks told in time, how long after
its due day each overdue step was escalated, repeats of a task in a PEP, tasks that found nobody, and the
PEPs left stuck (see the definitions in engine/timeliness.py)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import calendar
from .calendar import whole_working_days_between, working_days_between
from .models import Instance, OpenTask

if TYPE_CHECKING:
    from .timeliness import Record

REPEATS_ALLOWED = 3


@dataclass(frozen=True)
class Lateness:
    tasks: int  # first completions of tasks with a due date
    late: int
    median_days: float
    p90_days: float


@dataclass(frozen=True)
class Telling:
    overdue: int
    in_time: int
    later: int
    never: int
    escalated: int


@dataclass(frozen=True)
class Repeats:
    most: int  # most completions of one task in one PEP
    peps_over: int  # PEPs with a task completed more than REPEATS_ALLOWED times
    worst: tuple[str, ...]  # the tasks repeated most


def task_lateness(records: Iterable[Record]) -> Lateness:
    """How many tasks with a due date were late the first time each was completed in its PEP, and by
    how many working days."""
    seen, days = set(), []
    tasks = 0
    for r in records:
        if r.kind != "task_completed" or (r.instance_id, r.data.get("task")) in seen:
            continue
        seen.add((r.instance_id, r.data.get("task")))
        if not r.data.get("due_at"):
            continue
        tasks += 1
        due = datetime.fromisoformat(r.data["due_at"])
        if r.at > due:
            days.append(working_days_between(calendar.to_london(due).date(), calendar.to_london(r.at).date()))
    days.sort()
    return Lateness(
        tasks,
        len(days),
        float(median(days)) if days else 0.0,
        float(days[math.ceil(0.9 * len(days)) - 1]) if days else 0.0,
    )


def telling(records: Iterable[Record]) -> Telling:
    """Overdue tasks, and whether someone was told (reminded, escalated, the diagram's own timer) by the
    end of the working day after the due day, or after the day it opened if it opened already overdue."""
    records = list(records)
    opened = {r.task_id: r.at for r in records if r.kind == "task_ready" and r.task_id is not None}
    overdue = {r.task_id: r for r in records if r.kind == "task_overdue" and r.task_id is not None}
    told: dict[str, datetime] = {}
    escalated = set()
    for r in records:
        if r.kind in ("task_reminded", "task_escalated") and r.task_id is not None and r.task_id in overdue:
            told.setdefault(r.task_id, r.at)
            escalated.update([r.task_id] if r.kind == "task_escalated" else [])
    timers = defaultdict(list)
    for r in records:
        if r.kind == "timer_fired" and r.data.get("effect") in ("escalates", "ends") and r.data.get("guards"):
            timers[(r.instance_id, r.data["guards"])].append(r.at)
    in_time = later = never = 0
    for task_id, r in overdue.items():
        due = datetime.fromisoformat(r.data["due_at"])
        own = [at for at in timers[(r.instance_id, r.data.get("task"))] if at >= due - timedelta(seconds=1)]
        moments = [m for m in (told.get(task_id), *own) if m is not None]
        if not moments:
            never += 1
            continue
        since = max(due, opened.get(task_id, due))
        limit = datetime.fromisoformat(calendar.end_of_day(calendar.working_days(1, calendar.to_london(since).date())))
        if min(moments) <= limit:
            in_time += 1
        else:
            later += 1
    return Telling(len(overdue), in_time, later, never, len(escalated))


@dataclass(frozen=True)
class Escalations:
    """How long after its deadline each overdue step was escalated: by the overdue policy
    (`task_escalated`) or by its diagram's own timer at or after its due date (`timer_fired` that
    `escalates`, or `ends` it). Latency: the whole working days that passed after the due day (or the
    day it opened, if it opened already overdue) before the day it was escalated."""

    overdue: int  # steps open past their due date
    by_policy: int
    by_diagram: int
    days: tuple[int, ...]  # latency of each escalated step, smallest first
    closed_first: int  # done or withdrawn before it was escalated, within 1 working day
    unescalated: tuple[str, ...]  # overdue more than 1 working day and never escalated: "<task> (<n>)"
    unescalated_steps: int

    @property
    def escalated(self) -> int:
        return len(self.days)

    def percentile(self, p: int) -> int:
        return self.days[max(0, math.ceil(p / 100 * len(self.days)) - 1)] if self.days else 0

    @property
    def over_one(self) -> int:
        return sum(1 for d in self.days if d > 1)


def escalations(records: Iterable[Record], until: datetime) -> Escalations:
    """Each overdue step and when it was escalated (see `Escalations`); a step still open at `until`
    counts as open to then."""
    records = list(records)
    opened: dict[str, tuple[datetime, datetime | None, str | None]] = {}  # task → opened, due, spec
    openings: dict[tuple, list[tuple[datetime, str]]] = defaultdict(list)  # (instance, spec) → (opened, task)
    closed: dict[str, datetime] = {}
    overdue: dict[str, datetime] = {}  # task → its due date
    policy: dict[str, datetime] = {}
    for r in records:
        if r.task_id is None:
            continue  # the timers are read below; every other event here is a task's
        if r.kind == "task_ready":
            due = datetime.fromisoformat(r.data["due_at"]) if r.data.get("due_at") else None
            opened[r.task_id] = (r.at, due, r.data.get("task"))
            openings[(r.instance_id, r.data.get("task"))].append((r.at, r.task_id))
        elif r.kind in ("task_completed", "task_withdrawn"):
            closed.setdefault(r.task_id, r.at)
        elif r.kind == "task_overdue":
            overdue.setdefault(r.task_id, datetime.fromisoformat(r.data["due_at"]))
        elif r.kind == "task_escalated":
            policy.setdefault(r.task_id, r.at)
    diagram: dict[str, datetime] = {}
    for r in records:
        if r.kind != "timer_fired" or r.data.get("effect") not in ("escalates", "ends") or not r.data.get("guards"):
            continue
        before = [task for at, task in openings.get((r.instance_id, r.data["guards"]), ()) if at <= r.at]
        task = before[-1] if before else None
        due = opened[task][1] if task else None
        if (
            task is not None
            and due is not None
            and r.at >= due - timedelta(seconds=1)
            and closed.get(task, r.at) >= r.at
        ):
            diagram.setdefault(task, r.at)
            overdue.setdefault(task, due)
    days: list[int] = []
    never: Counter[str] = Counter()
    by_policy = by_diagram = closed_first = 0
    for task, due in overdue.items():
        since = calendar.to_london(max(due, opened[task][0]) if task in opened else due).date()
        moments = [m for m in (policy.get(task), diagram.get(task)) if m is not None]
        if moments:
            first = min(moments)
            by_policy += first == policy.get(task)
            by_diagram += first != policy.get(task)
            days.append(whole_working_days_between(since, calendar.to_london(first).date()))
        elif whole_working_days_between(since, calendar.to_london(closed.get(task, until)).date()) <= 1:
            closed_first += 1
        else:
            never[(opened[task][2] if task in opened else None) or "?"] += 1
    return Escalations(
        len(overdue),
        by_policy,
        by_diagram,
        tuple(sorted(days)),
        closed_first,
        tuple(f"{name} ({n})" for name, n in never.most_common(5)),
        sum(never.values()),
    )


def repeats(records: Iterable[Record]) -> Repeats:
    """The most times one task was completed in one PEP, and the PEPs with a task done over 3 times."""
    counts = Counter((r.instance_id, r.data.get("task")) for r in records if r.kind == "task_completed")
    most = max(counts.values(), default=0)
    over = {instance for (instance, _task), n in counts.items() if n > REPEATS_ALLOWED}
    worst = Counter(task for (_i, task), n in counts.items() if n > REPEATS_ALLOWED)
    return Repeats(most, len(over), tuple(f"{task} ({n} PEPs)" for task, n in worst.most_common(3)))


def needing_a_person(records: Iterable[Record]) -> int:
    """Tasks that opened with nobody to take them (no holder, pool or fallback for the child)."""
    return sum(1 for r in records if r.kind == "task_ready" and r.data.get("needs_person"))


@dataclass(frozen=True)
class OpenPeps:
    running: int
    nobody: int  # a running PEP with an open task that has no assignee and no pool
    idle: int  # a running PEP with no open task and no timer: nothing in the app will move it
    idle_waiting_for: tuple[str, ...]  # the messages the idle ones wait for (reports from outside)

    @property
    def stuck(self) -> int:
        return self.nobody + self.idle


def open_peps(session: Session, peps: set[int]) -> OpenPeps:
    """The running PEPs among `peps`, and the stuck ones (`stuck_peps`), from the projected columns."""
    running = {
        row.id: (row.next_timer_at, row.waiting_messages or [])
        for row in session.execute(
            select(Instance.id, Instance.next_timer_at, Instance.waiting_messages).where(Instance.status == "running")
        )
        if row.id in peps
    }
    tasks = [
        (row.instance_id, row.assignee_id, row.pooled)
        for row in session.execute(select(OpenTask.instance_id, OpenTask.assignee_id, OpenTask.pooled))
    ]
    return stuck_peps(running, tasks)


def stuck_peps(
    running: dict[int, tuple[datetime | None, list[str]]], tasks: list[tuple[int, int | None, bool]]
) -> OpenPeps:
    """Stuck: a running PEP with an open task that has no assignee and is in no pool, or with no open
    task and no timer, whatever reports from outside (a change of school, leaving care) it waits for.
    `running`: instance → (next timer, messages awaited); `tasks`: (instance, assignee, pooled)."""
    open_tasks = defaultdict(list)
    for instance_id, assignee, pooled in tasks:
        open_tasks[instance_id].append(assignee is None and not pooled)
    nobody = sum(1 for i in running if any(open_tasks.get(i, ())))
    idle = [waiting for i, (timer, waiting) in running.items() if i not in open_tasks and timer is None]
    counts = Counter(name for waiting in idle for name in waiting)
    return OpenPeps(len(running), nobody, len(idle), tuple(f"{k} ({n})" for k, n in counts.most_common()))
