"""The quality of PEPs kept as rows (`quality_entry`), so the quality page counts a year with aggregate
SQL instead of reading the year's history: each QA rating given, each QA criterion assessed, each task
sent back to be done again and each sign-off. Written by the step that records them, in its transaction
(engine/step.py, `rows_of_step`), recomputed from the histories (`recompute`, `differences`) and
rebuilt from them (`rebuild`: `pep quality-rebuild` and migration 0023).

What a row says is read as engine/quality.py always read the history: the rating and the criteria from
the form's declared fields (`x-qa-rating`, `x-qa-criterion`, a criterion named by its title), a return
from `task_ready`'s `sent_back`, a sign-off from the `pep_signed_off` statutory event. Each row keeps
the child's school as it is now (`groupkeys.refile` sets it again when it changes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from . import calendar
from .models import Child, Event, QualityEntry
from .ppplus import FormReader
from .quality import CRITERION_KEY, RATING_KEY

KINDS = ("task_completed", "task_ready", "pep_signed_off")  # the history's events a row is made of
_Q = cast(Table, QualityEntry.__table__)
INSERT_QUALITY = _Q.insert().inline()
COMPARED = ("child_id", "instance_id", "seq", "at", "term", "kind", "actor", "rating", "criterion", "failed")
CHUNK = 2000


def facts(kind: str, data: dict, schema_of: Callable[[str], dict | None]) -> list[dict]:
    """What one history event says of quality: (kind, rating, criterion, failed) of each row it makes;
    `schema_of` gives a completed task's form (None when it has none)."""
    if kind == "task_ready":
        return [_fact("sent_back")] if data.get("sent_back") else []
    if kind == "pep_signed_off":
        return [_fact("signed_off")]
    if kind != "task_completed" or not data.get("form"):
        return []
    schema = schema_of(data["form"])
    if not schema:
        return []
    answers, found = data.get("data") or {}, []
    for name, spec in (schema.get("properties") or {}).items():
        if not isinstance(spec, dict) or answers.get(name) is None:
            continue
        if spec.get(RATING_KEY):
            found.append(_fact("rating", rating=str(answers[name])))
        elif spec.get(CRITERION_KEY):
            found.append(_fact("criterion", criterion=spec.get("title") or name, failed=answers[name] is False))
    return found


def _fact(kind: str, rating: str | None = None, criterion: str | None = None, failed: bool | None = None) -> dict:
    return {"kind": kind, "rating": rating, "criterion": criterion, "failed": failed}


def rows_of_step(
    entries: list[dict],
    first_seq: int,
    child_id: str,
    instance_id: int | None,
    at: datetime,
    schema_of: Callable[[str], dict | None],
) -> list[dict]:
    """The `quality_entry` rows of a step's history entries (the first of which gets `first_seq`),
    without the child's school (the step adds it, read only when there are rows)."""
    if instance_id is None:  # these events are a PEP's, never without one
        return []
    return [
        row
        for offset, entry in enumerate(entries)
        if entry["kind"] in KINDS
        for row in _rows(
            entry["kind"], entry["data"], schema_of, child_id, instance_id, first_seq + offset, at, entry.get("actor")
        )
    ]


def _rows(kind, data, schema_of, child_id, instance_id, seq, at, actor) -> list[dict]:
    """The rows one history event makes, where and when it was recorded."""
    where = dict(
        child_id=child_id, instance_id=instance_id, seq=seq, at=at, term=calendar.term_label(at), actor=actor or ""
    )
    return [dict(fact, **where) for fact in facts(kind, data, schema_of)]


def recompute(session: Session, child_ids: Iterable[str] | None = None) -> list[dict]:
    """The rows worked out afresh from the histories, each event's form read as it was deployed."""
    forms = FormReader(session)
    query = (
        select(Event.child_id, Event.instance_id, Event.seq, Event.at, Event.kind, Event.actor, Event.data)
        .where(Event.kind.in_(KINDS), Event.instance_id.is_not(None))
        .order_by(Event.child_id, Event.seq)
    )
    if child_ids is not None:
        query = query.where(Event.child_id.in_(list(child_ids)))
    return [
        row
        for e in session.execute(query)
        for row in _rows(
            e.kind, e.data or {}, partial(forms.schema, e.instance_id), e.child_id, e.instance_id, e.seq, e.at, e.actor
        )
    ]


def differences(session: Session) -> list[str]:
    """Where the kept rows and the histories disagree (nothing, when they reconcile)."""
    computed = sorted(_compared(row) for row in recompute(session))
    stored = sorted(_compared(row) for row in session.execute(select(_Q)).mappings())
    if computed == stored:
        return []
    return [f"history only: {row}" for row in sorted(set(computed) - set(stored))] + [
        f"kept only: {row}" for row in sorted(set(stored) - set(computed))
    ]


def _compared(row) -> tuple:
    return tuple("" if row[name] is None else str(row[name]) for name in COMPARED)


def rebuild(session: Session) -> int:
    """Recompute every row from the histories, with the children's schools as they are now (flushed,
    not committed); return how many."""
    session.flush()
    session.execute(_Q.delete())
    schools = dict(session.execute(select(Child.id, Child.school)).all())
    rows = [dict(row, school=schools.get(row["child_id"])) for row in recompute(session)]
    for at in range(0, len(rows), CHUNK):
        session.execute(INSERT_QUALITY, rows[at : at + CHUNK])
    return len(rows)
