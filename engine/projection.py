"""The Virtual School's projection of each PEP (`pep_projection`: what it answers, when it is due, when
its meeting was held and it was signed off, whether on time), kept as steps run and recomputable from
history, and the statutory rules it is judged by.

Called by the step (`project_step`, in the step's transaction, beside the open-task projection), the
case life (a child coming into care re-projects the PEPs the report started), `pep oversight-rebuild`
and migrations 0017 and 0020 (`rebuild`, `recompute`: the projection from history).

"On time" is what the diagrams recorded, never a rule per process here: the deadline or term each PEP
answers (`instance_started.answers`), the day its meeting was held (`meeting_held`), when it was signed
off (`pep_signed_off`), each task's lateness (`task_completed.late`). The statutory rules (an initial
PEP started within 10 working days of entering care and ready within 20; one review each term) are
configuration (config/statutory.yaml, or the file PEP_STATUTORY names), with their source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import cast

import yaml
from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from . import CONFIG, calendar
from .groupkeys import of_child, refile, rereview, reviewed
from .models import (
    Child,
    Event,
    Instance,
    PepProjection,
)

DEFAULT_RULES_FILE = CONFIG / "statutory.yaml"
_P = cast(Table, PepProjection.__table__)
INSERT_PROJECTION = _P.insert().inline()
UPDATE_PROJECTION = _P.update().where(_P.c.instance_id == bindparam("pep_instance_id"))  # the columns: the other keys
# what a step may write that changes its PEP's row
FOLDED = frozenset(
    {"instance_started", "meeting_held", "pep_signed_off", "task_completed", "instance_completed", "instance_cancelled"}
)
ENDED = ("cancelled", "withdrawn")  # a PEP that was stopped is due no more


# ---- the statutory rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """config/statutory.yaml: the statutory limits the oversight pages measure against."""

    source: str
    start_within_working_days: int
    ready_within_working_days: int
    age_bands: tuple[tuple[str, int], ...]  # (label, oldest age on 31 August in the band)

    def age_band(self, date_of_birth: date | str | None, moment) -> str | None:
        """The band of a child born on `date_of_birth` in the school year of `moment`."""
        if not date_of_birth:
            return None
        age = calendar.academic_year_age(date_of_birth, moment)
        return next((label for label, oldest in self.age_bands if age <= oldest), None)


@cache
def rules(path: str | None = None) -> Rules:
    """The statutory rules in `path`, else the file PEP_STATUTORY names, else the shipped one."""
    values = yaml.safe_load(Path(path or os.environ.get("PEP_STATUTORY") or DEFAULT_RULES_FILE).read_text())
    initial = values.get("initial") or {}
    return Rules(
        " ".join(str(values.get("source", "")).split()),
        int(initial.get("start_within_working_days", 10)),
        int(initial.get("ready_within_working_days", 20)),
        tuple((str(b["label"]), int(b["up_to"])) for b in values.get("age_bands") or ()),
    )


# ---- the projection ---------------------------------------------------------------------------


def fold(row: dict | None, kind: str, data: dict, at: datetime, entered_care: date | None = None) -> dict | None:
    """The PEP's row after one event of its history (None before its start). The one definition of
    the projection: steps apply it to what they write, a rebuild to the whole history."""
    if kind == "instance_started":
        row = _started(data, at, entered_care)
    elif row is None:
        return None
    elif kind == "meeting_held" and row["held_on"] is None and data.get("date"):
        row["held_on"] = date.fromisoformat(str(data["date"])[:10])
    elif kind == "pep_signed_off" and row["signed_off_at"] is None:
        row["signed_off_at"] = at
    elif kind == "task_completed" and data.get("late"):
        row["late_steps"] += 1
    elif kind == "instance_completed":
        row.update(status="completed", ended_at=at)
    elif kind == "instance_cancelled":
        row.update(status="withdrawn" if data.get("withdrawn") else "cancelled", ended_at=at)
    signed, due = row["signed_off_at"], row["due_at"]
    row["on_time"] = None if signed is None else (due is None or signed <= due)
    return row


def _started(data: dict, at: datetime, entered_care: date | None) -> dict:
    answers = data.get("answers") or {}
    kind, term = answers.get("kind"), answers.get("term")
    due = _aware(answers["deadline"]) if answers.get("deadline") else (_term_end(term) if term else None)
    initial = kind == "initial" and entered_care is not None
    limits = rules()
    return dict(
        process_id=data.get("process_id", ""),
        process_name=data.get("process_name") or data.get("process_id", ""),
        kind=kind,
        term=term,
        due_at=due,
        age_band=limits.age_band((data.get("child") or {}).get("date_of_birth"), due or at),
        started_at=at,
        status="running",
        ended_at=None,
        held_on=None,
        signed_off_at=None,
        on_time=None,
        late_steps=0,
        entered_care=entered_care if kind == "initial" else None,
        start_by=_day_end(entered_care, limits.start_within_working_days) if entered_care and initial else None,
        ready_by=_day_end(entered_care, limits.ready_within_working_days) if entered_care and initial else None,
    )


def _aware(value) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day_end(day: date, working_days: int) -> datetime:
    return _aware(calendar.end_of_day(calendar.working_days(working_days, day.isoformat())))


def _term_end(label: str) -> datetime | None:
    term = term_by_label(label)
    return _aware(calendar.end_of_day(term.end.isoformat())) if term else None


def term_by_label(label: str):
    """The configured term a label such as "2026-27 spring" names (None: not configured)."""
    return next(
        (t for t in calendar.default_calendar().terms if f"{t.academic_year} {t.name.strip().lower()}" == label), None
    )


def entered_care_before(session: Session, child_id: str, at: datetime) -> date | None:
    """The day the child last entered care by `at`: the last `entered_care` report, else their record's."""
    reported = session.scalar(
        select(Event.data)
        .where(Event.child_id == child_id, Event.kind == "entered_care", Event.at <= at)
        .order_by(Event.seq.desc())
        .limit(1)
    )
    if reported and reported.get("date"):
        return date.fromisoformat(str(reported["date"])[:10])
    return session.scalar(select(Child.entered_care).where(Child.id == child_id))


def project_step(
    session: Session, instance_id: int, child_id: str, entries: list[dict], at: datetime, new: bool
) -> list[tuple]:
    """The projection's writes for a step's history entries: (statement, parameters) each. Read before
    the step's writes begin, once the step holds the child's row (the caller runs them in its
    pipeline); a new row takes the child's keys for the breakdowns, and a termly review signed off in
    time adds its term to the child's reviewed terms (engine/groupkeys.py)."""
    relevant = [e for e in entries if e["kind"] in FOLDED and (e["kind"] != "task_completed" or e["data"].get("late"))]
    if not relevant:
        return []
    row = None
    if not new:
        found = session.execute(select(_P).where(_P.c.instance_id == instance_id)).mappings().first()
        if found is None:
            return []  # an instance from before the projection, not rebuilt yet: `pep oversight-rebuild`
        row = {k: v for k, v in found.items() if k not in ("instance_id", "child_id")}
    was_on_time = bool(row and row["on_time"])
    started = next((e for e in relevant if e["kind"] == "instance_started"), None)
    answered = started and (started["data"].get("answers") or {}).get("kind") == "initial"
    entered = entered_care_before(session, child_id, at) if answered else None
    for entry in relevant:
        row = fold(row, entry["kind"], entry["data"], at, entered)
    if row is None:
        return []
    writes: list[tuple] = []
    if new or started:  # the child's keys for the breakdowns, read with the child's row locked (engine/step.py)
        writes.append(
            (
                INSERT_PROJECTION,
                {"instance_id": instance_id, "child_id": child_id, **row, **of_child(session, child_id)},
            )
        )
    else:
        writes.append((UPDATE_PROJECTION, {"pep_instance_id": instance_id, **row}))
    if row["kind"] == "termly" and row["term"] and row["on_time"] and not was_on_time:
        writes.append(reviewed(child_id, row["term"]))
    return writes


def recompute(session: Session, instance_id: int) -> dict | None:
    """The PEP's row as its history gives it, event by event."""
    row, entered = None, None
    for event in session.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.seq)):
        if event.kind == "instance_started" and (event.data.get("answers") or {}).get("kind") == "initial":
            entered = entered_care_before(session, event.child_id, event.at)
        if event.kind in FOLDED:
            row = fold(row, event.kind, event.data, event.at, entered)
    return row


def rebuild(session: Session, batch: int = 500, keys: bool = True) -> int:
    """Recompute every instance's row from history (the backfill, and after the rules change), with
    the children's keys for the breakdowns as they are now and the terms each was reviewed in
    (engine/groupkeys.py; not `keys`: a database from before migrations 0022 and 0024, which has no
    columns for them)."""
    session.execute(_P.delete())
    done, last = 0, 0
    while ids := session.execute(
        select(Instance.id, Instance.child_id).where(Instance.id > last).order_by(Instance.id).limit(batch)
    ).all():
        rows = [{"instance_id": i, "child_id": c, **row} for i, c in ids if (row := recompute(session, i))]
        if rows:
            session.execute(INSERT_PROJECTION, rows)
        done, last = done + len(rows), ids[-1][0]
    if keys:
        refile(session)  # every child's keys, and so every row's
        rereview(session)  # and the terms each was reviewed in
    return done
