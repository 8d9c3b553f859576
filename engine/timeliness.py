"""The statutory timeliness figures, computed from the explicit events of children's histories.

Called by the year benchmark (benchmarks/run.py) and meant for the Virtual School's oversight
dashboard. Nothing here names a process or a task: what is counted is what the histories say in the
statutory vocabulary (engine/statutory.py, engine/overdue.py): `entered_care` / `left_care` with their
dates, `instance_started` with what the PEP `answers`, `pep_signed_off`, `task_ready` /
`task_completed` with due dates, `task_overdue`, `task_reminded`, `task_escalated`, `timer_fired` with
what it `guards`. The functions are pure over `Record`s; `read_records` reads them from the database.

Definitions (the figures say them too):
- in care: from an `entered_care` date to a `left_care` date; a child whose history begins with no
  care event (in care now) or with `left_care` was in care before their history began;
- initial PEP on time: a PEP answering `initial` whose meeting was held (`meeting_held`), and which
  was signed off, by the 20th working day after the `entered_care` date (each counted apart); counted
  once that day has passed (or it happened), and not for a child who left care before it without one;
- termly review: a child in care for the whole of a term (entered before its first day, not left
  before its last), of PEP age at its start (2 or over, and an academic-year age under 18), with a
  PEP signed off between its first and last day;
- late task: a task completed for the first time after its due date; working days late are the
  working days after the due day up to the day it was done;
- told in time: an overdue task whose holder was reminded, or which was escalated or met its
  diagram's own timer, by the end of the working day after its due day (or after the day it opened,
  for a task that opened already overdue);
- escalation latency: for each step open past its due date, the whole working days that passed after
  its due day (or the day it opened) before the day it was escalated, by the overdue policy or by its
  diagram's own timer at or after the due date (the target: at most 1).

engine/dashboardcheck.py holds the Virtual School's oversight dashboard to the same definitions,
counted from history.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import calendar
from .models import Child, Event, OpenTask
from .stepfigures import (  # noqa: F401 - the steps' figures, read with the statutory ones
    REPEATS_ALLOWED,
    Escalations,
    Lateness,
    OpenPeps,
    Repeats,
    Telling,
    escalations,
    needing_a_person,
    open_peps,
    repeats,
    stuck_peps,
    task_lateness,
    telling,
)

INITIAL_WORKING_DAYS = 20
PEP_AGE_FROM, PEP_ACADEMIC_AGE_UNTIL = 2, 18  # from age 2; until the academic year in which they turn 18
KINDS = (
    "entered_care",
    "left_care",
    "instance_started",
    "meeting_held",
    "pep_signed_off",
    "task_ready",
    "task_completed",
    "task_withdrawn",
    "task_overdue",
    "task_reminded",
    "task_escalated",
    "timer_fired",
    "instance_cancelled",
)


@dataclass(frozen=True)
class Record:
    """One history event, with only what the figures read of its data."""

    kind: str
    child_id: str
    at: datetime
    instance_id: int | None = None
    task_id: str | None = None
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Share:
    n: int
    of: int

    def __str__(self) -> str:
        return f"{self.n}/{self.of} ({100 * self.n / self.of:.1f}%)" if self.of else "0/0"


@dataclass(frozen=True)
class TermFigure:
    label: str
    first: date
    last: date
    reviewed: Share
    whole: bool  # the period covered the whole term


def read_records(session: Session, kinds: Iterable[str] = KINDS) -> list[Record]:
    """The events the figures read, in the order they were written, with the data fields they use."""
    fields = ("date", "answers", "due_at", "task", "needs_person", "guards", "effect", "withdrawn")
    columns = [
        Event.kind,
        Event.child_id,
        Event.at,
        Event.instance_id,
        Event.task_id,
        *(Event.data[name].label(name) for name in fields),
    ]
    rows = session.execute(select(*columns).where(Event.kind.in_(tuple(kinds))).order_by(Event.id))
    return [
        Record(
            row.kind,
            row.child_id,
            _aware(row.at),
            row.instance_id,
            row.task_id,
            {name: getattr(row, name) for name in fields if getattr(row, name) is not None},
        )
        for row in rows
    ]


def care_periods(records: Iterable[Record], in_care_now: set[str]) -> dict[str, list[tuple[date, date | None]]]:
    """Each child's periods in care (first day, last day or None), from the care events; a child with
    none who is in care now, or whose first is leaving care, was in care before their history began."""
    events = defaultdict(list)
    for r in records:
        if r.kind in ("entered_care", "left_care"):
            events[r.child_id].append((r.kind, _day(r.data.get("date"), r.at)))
    periods: dict[str, list[tuple[date, date | None]]] = {c: [(date.min, None)] for c in in_care_now if c not in events}
    for child, changes in events.items():
        spans: list[tuple[date, date | None]] = []
        began = date.min if changes[0][0] == "left_care" else None
        for kind, day in changes:
            if kind == "entered_care" and began is None:
                began = day
            elif kind == "left_care" and began is not None:
                spans.append((began, day))
                began = None
        if began is not None:
            spans.append((began, None))
        periods[child] = spans
    return periods


def pep_answers(records: Iterable[Record]) -> dict[int, dict]:
    """What each PEP answers, by instance (only instances whose start declares it: PEPs)."""
    return {
        r.instance_id: r.data["answers"]
        for r in records
        if r.kind == "instance_started" and r.instance_id is not None and isinstance(r.data.get("answers"), dict)
    }


@dataclass(frozen=True)
class Initial:
    held: Share  # the initial PEP meeting held within 20 working days
    signed_off: Share  # the initial PEP signed off within them
    pending: int  # still within them at the end, with neither


def initial_peps(records: list[Record], until: datetime) -> Initial:
    """Children entering care whose initial PEP meeting was held, and whose initial PEP was signed
    off, within 20 working days: each of those whose deadline has passed by `until` or who have had
    it; and how many are still within them."""
    answers = pep_answers(records)
    initial = {i for i, a in answers.items() if a.get("kind") == "initial"}
    held, signed, left = defaultdict(list), defaultdict(list), defaultdict(list)
    for r in records:
        if r.kind == "meeting_held" and r.instance_id in initial:
            held[r.child_id].append(_day(r.data.get("date"), r.at))
        elif r.kind == "pep_signed_off" and r.instance_id in initial:
            signed[r.child_id].append(calendar.to_london(r.at).date())
        elif r.kind == "left_care":
            left[r.child_id].append(_day(r.data.get("date"), r.at))
    counts: Counter[str] = Counter()
    for r in records:
        if r.kind != "entered_care":
            continue
        entered = _day(r.data.get("date"), r.at)
        deadline = datetime.fromisoformat(calendar.end_of_day(calendar.working_days(INITIAL_WORKING_DAYS, entered)))
        left_first = any(entered <= day <= deadline.date() for day in left[r.child_id])
        for name, days in (("held", held[r.child_id]), ("signed", signed[r.child_id])):
            done = any(entered <= day <= deadline.date() for day in days)
            if done or (deadline <= until and not left_first):
                counts[name] += 1
                counts[f"{name} on time"] += done
        if deadline > until and not signed[r.child_id]:
            counts["pending"] += 1
    return Initial(
        Share(counts["held on time"], counts["held"]),
        Share(counts["signed on time"], counts["signed"]),
        counts["pending"],
    )


def termly_reviews(
    records: list[Record],
    periods: dict[str, list[tuple[date, date | None]]],
    born: dict[str, date | None],
    first: date,
    last: date,
) -> list[TermFigure]:
    """For each term overlapping `first`..`last`: children in care and of PEP age for the whole term
    (to `last` if it ends later) with a PEP signed off in it."""
    signed: dict[str, list[date]] = defaultdict(list)
    for r in records:
        if r.kind == "pep_signed_off":
            signed[r.child_id].append(calendar.to_london(r.at).date())
    figures = []
    for term in calendar.default_calendar().terms:
        if term.end < first or term.start > last:
            continue
        until = min(term.end, last)
        due = [
            child
            for child, spans in periods.items()
            if any(began < term.start and (ended is None or ended >= until) for began, ended in spans)
            and _of_pep_age(born.get(child), term.start)
        ]
        done = sum(any(term.start <= day <= until for day in signed[child]) for child in due)
        figures.append(
            TermFigure(
                f"{term.academic_year} {term.name.strip().lower()}",
                term.start,
                until,
                Share(done, len(due)),
                until == term.end and term.start >= first,
            )
        )
    return figures


def children(session: Session) -> tuple[set[str], dict[str, date | None]]:
    """The children in care now, and every child's date of birth."""
    rows = session.execute(select(Child.id, Child.in_care, Child.date_of_birth)).all()
    return {r.id for r in rows if r.in_care}, {r.id: r.date_of_birth for r in rows}


def _of_pep_age(born: date | None, day: date) -> bool:
    if born is None:
        return True
    return calendar.age_on(born, day) >= PEP_AGE_FROM and calendar.academic_year_age(born, day) < PEP_ACADEMIC_AGE_UNTIL


def _day(value, at: datetime) -> date:
    return date.fromisoformat(str(value)[:10]) if value else calendar.to_london(at).date()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Statutory:
    """Every figure above for one period, as the year benchmark prints them."""

    peps_started: int
    peps_signed_off: int
    initial: Initial
    terms: list[TermFigure]
    open: OpenPeps
    needed_a_person: int
    open_without_person: int
    lateness: Lateness
    telling: Telling
    escalations: Escalations
    repeats: Repeats


def statutory(session: Session, first: date, last: date) -> Statutory:
    """The statutory figures of every child's history from `first` to `last` (the day the period ends)."""
    records = read_records(session)
    in_care, born = children(session)
    answers = pep_answers(records)
    until = datetime.fromisoformat(calendar.end_of_day(last))
    open_now = open_peps(session, set(answers))
    without = session.execute(
        select(OpenTask.id).where(OpenTask.assignee_id.is_(None), OpenTask.pooled.is_(False))
    ).all()
    return Statutory(
        peps_started=len(answers),
        peps_signed_off=len({r.instance_id for r in records if r.kind == "pep_signed_off"}),
        initial=initial_peps(records, until),
        terms=termly_reviews(records, care_periods(records, in_care), born, first, last),
        open=open_now,
        needed_a_person=needing_a_person(records),
        open_without_person=len(without),
        lateness=task_lateness(records),
        telling=telling(records),
        escalations=escalations(records, until),
        repeats=repeats(records),
    )
