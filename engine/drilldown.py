"""The children behind one figure of the Virtual School's oversight (engine/oversight.py): the list a
figure drills down to, and from there each child's page (the web app logs each view of a child)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, literal, select
from sqlalchemy.orm import Session

from .models import (
    Child,
    PepProjection,
)
from .oversight import (
    INITIAL_FIGURES,
    PEP_FIGURES,
    TERMLY_FIGURES,
    P,
    _dimension,
    _in_care,
    _initial_figures,
    _matches,
    _pep_figures,
    _peps_in,
    _year_start,
)
from .periods import Period, _term_key, period, periods  # noqa: F401 - the periods the figures are asked for
from .projection import term_by_label


@dataclass(frozen=True)
class Drill:
    """The list behind one figure: `figure` (a key of PEP_FIGURES, INITIAL_FIGURES, TERMLY_FIGURES or
    "children"), a group of a breakdown (`by`, `value`) and for termly figures the term."""

    figure: str
    by: str | None = None
    value: str | None = None
    term: str | None = None


def drill_down(
    session: Session, period_: Period, now: datetime, drill: Drill, visible, limit: int = 2000
) -> list[dict]:
    """The rows behind a figure, only of children `visible` (a clause on Child) admits, by child name."""
    year = _year_start(period_)
    if drill.figure in PEP_FIGURES or drill.figure in INITIAL_FIGURES:
        clause = {**_pep_figures(now), **_initial_figures(now)}[drill.figure]
        kind = "initial" if drill.figure in INITIAL_FIGURES else None
        key, _label = _dimension(drill.by, True, year)
        peps = (
            select(P, Child.name, Child.school)
            .join(Child, Child.id == P.child_id)
            .where(_peps_in(period_, now, kind), clause, _matches(key, drill.by, drill.value), visible)
        )
        return [
            _pep_row(row.PepProjection, row.name, row.school, now)
            for row in session.execute(peps.order_by(Child.name, P.due_at).limit(limit))
        ]
    if drill.figure == "children":
        key, _label = _dimension(drill.by, False, year)
        query = select(Child).where(
            _in_care(period_.start, period_.end, period_.now), _matches(key, drill.by, drill.value), visible
        )
        return [_child_row(child) for child in session.scalars(query.order_by(Child.name).limit(limit))]
    term = term_by_label(drill.term) if drill.figure in TERMLY_FIGURES and drill.term else None
    if drill.term and term is not None:
        # read from the PEPs' rows, not the terms kept on the child's (the figure's): a figure and its
        # list of children agree only while those are kept right (tests/test_oversight.py)
        reviewed = exists().where(P.child_id == Child.id, P.kind == "termly", P.term == drill.term, P.on_time.is_(True))
        which = {"in_care": literal(True), "reviewed": reviewed, "not_reviewed": ~reviewed}[drill.figure]
        key, _label = _dimension(drill.by, False, year)
        query = select(Child).where(
            _in_care(term.start, term.end, False), which, _matches(key, drill.by, drill.value), visible
        )
        return [_child_row(child) for child in session.scalars(query.order_by(Child.name).limit(limit))]
    return []


def _pep_row(pep: PepProjection, name: str, school: str | None, now: datetime) -> dict:
    overdue = pep.signed_off_at is None and pep.due_at is not None and pep.due_at < now
    return {
        "child_id": pep.child_id,
        "child_name": name,
        "school": school,
        "instance_id": pep.instance_id,
        "process": pep.process_name,
        "kind": pep.kind,
        "term": pep.term,
        "due_at": pep.due_at,
        "held_on": pep.held_on,
        "signed_off_at": pep.signed_off_at,
        "on_time": pep.on_time,
        "status": pep.status,
        "days_overdue": (now - pep.due_at).days if overdue and pep.due_at is not None else None,
        "entered_care": pep.entered_care,
        "start_by": pep.start_by,
        "ready_by": pep.ready_by,
        "started_at": pep.started_at,
    }


def _child_row(child: Child) -> dict:
    return {
        "child_id": child.id,
        "child_name": child.name,
        "school": child.school,
        "in_care": child.in_care,
        "entered_care": child.entered_care,
        "left_care_on": child.left_care_on,
    }
