"""Quality of PEPs as the histories record it: QA ratings by term, school and adviser, the PEPs sent
back for changes and how long they took to be signed off, and the QA criteria most often failed,
counted from the rows each step keeps (engine/qualityrows.py). Called by the oversight pages
(webui/ledger.py) and deploy (which checks the declarations).

Nothing here names a council's question: a QA form declares its rating (`"x-qa-rating": true` on the
Red/Amber/Green question) and its criteria (`"x-qa-criterion": true` on each yes/no check, its title
the criterion); a task the diagram sends back says so on its `task_ready` (`sent_back`), and the sign-off
is the `pep_signed_off` statutory event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import case, extract, func, select
from sqlalchemy.orm import Session

from . import calendar
from .models import QualityEntry, User

RATING_KEY = "x-qa-rating"
CRITERION_KEY = "x-qa-criterion"
RATINGS = ("Gold", "Green", "Amber", "Red")


def form_problems(schema: dict) -> list[tuple[str, str]]:
    """What is wrong with a form's quality declarations: (question, problem)."""
    problems = []
    ratings = []
    for name, spec in (schema.get("properties") or {}).items():
        if not isinstance(spec, dict):
            continue
        if spec.get(RATING_KEY):
            ratings.append(name)
            unknown = [v for v in spec.get("enum") or [None] if v not in RATINGS]
            if unknown:
                problems.append(
                    (
                        name,
                        f"{RATING_KEY} needs a question whose answers are ratings "
                        f"({', '.join(RATINGS)}), not {', '.join(str(v) for v in unknown)}",
                    )
                )
        if spec.get(CRITERION_KEY) and spec.get("type") != "boolean":
            problems.append(
                (name, f'{CRITERION_KEY} needs a yes/no question ("type": "boolean"): no is a criterion failed')
            )
    if len(ratings) > 1:
        problems.append((ratings[1], f"{RATING_KEY} is declared on more than one question ({', '.join(ratings)})"))
    return problems


def academic_year(when) -> str:
    """The academic year (September to August) of a moment, e.g. "2025-26"."""
    day = calendar.to_london(when).date()
    start = day.year if day.month >= 9 else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


def academic_year_bounds(year: str) -> tuple[date, date]:
    """The first day of an academic year and the first day of the next."""
    start = int(year[:4])
    return date(start, 9, 1), date(start + 1, 9, 1)


@dataclass
class Quality:
    """What the histories say of PEP quality over a period (counted from the kept rows)."""

    counts: dict[str, dict[str, Counter]] = field(default_factory=dict)  # term, school, adviser → ratings
    criteria: list[tuple[str, int, int]] = field(default_factory=list)  # (criterion, failed, assessed)
    signed_off: int = 0
    returned: int = 0  # PEPs signed off that were sent back at least once
    returns: int = 0  # how many times they were sent back in all
    days_first_time: float | None = None  # average days from the first QA rating to sign-off
    days_returned: float | None = None

    def by(self, attribute: str) -> dict[str, Counter]:
        """Ratings counted by term, school or adviser."""
        return dict(sorted((self.counts.get(attribute) or {}).items()))

    @property
    def totals(self) -> Counter:
        return sum((counts for counts in (self.counts.get("term") or {}).values()), Counter())


def quality(session: Session, start: date, end: date) -> Quality:
    """The quality of PEPs rated and signed off from `start` up to (not including) `end` (London days),
    counted by the database from the rows the steps keep (engine/qualityrows.py): a rating counts under
    its term, the child's school and the adviser who gave it; a PEP signed off in the period, with the
    times it was sent back and its first rating in the period."""
    begin, finish = calendar.to_london(start.isoformat()), calendar.to_london(end.isoformat())
    Q = QualityEntry

    def of(kind: str):
        return (Q.kind == kind, Q.at >= begin, Q.at < finish)

    found = Quality()
    school = func.coalesce(Q.school, "No school")
    for attribute, column in (("term", Q.term), ("school", school), ("adviser", Q.actor)):
        counts: dict[str, Counter] = defaultdict(Counter)
        for key, rating, count in session.execute(
            select(column, Q.rating, func.count()).where(*of("rating")).group_by(column, Q.rating)
        ):
            counts[key][rating] += count
        found.counts[attribute] = counts
    advisers = found.counts["adviser"]
    names = dict(session.execute(select(User.email, User.name).where(User.email.in_(list(advisers)))).all())
    by_name: dict[str, Counter] = defaultdict(Counter)
    for email, counted in advisers.items():
        by_name[names.get(email, email)] += counted
    found.counts["adviser"] = by_name
    failed = func.sum(case((Q.failed.is_(True), 1), else_=0))
    criteria: Any = session.execute(
        select(Q.criterion, failed, func.count()).where(*of("criterion")).group_by(Q.criterion)
    )
    found.criteria = sorted(((c, int(f), n) for c, f, n in criteria), key=lambda c: (-c[1], c[0]))
    _signed_off(session, found, of)
    return found


def _signed_off(session: Session, found: Quality, of) -> None:
    """The PEPs signed off in the period, how often they were sent back in it and the average days from
    their first rating in it to the sign-off, for those sent back and those not."""
    Q = QualityEntry
    signed = select(Q.instance_id, Q.at).where(*of("signed_off")).subquery()
    back = select(Q.instance_id, func.count().label("n")).where(*of("sent_back")).group_by(Q.instance_id).subquery()
    first = select(Q.instance_id, func.min(Q.at).label("at")).where(*of("rating")).group_by(Q.instance_id).subquery()
    returns = func.coalesce(back.c.n, 0)
    was_back = case((returns > 0, 1), else_=0)
    if session.get_bind().dialect.name == "sqlite":
        days = func.julianday(signed.c.at) - func.julianday(first.c.at)
    else:
        days = extract("epoch", signed.c.at - first.c.at) / 86400
    joined = signed.outerjoin(back, back.c.instance_id == signed.c.instance_id).outerjoin(
        first, first.c.instance_id == signed.c.instance_id
    )
    groups: Any = session.execute(
        select(was_back, func.count(), func.sum(was_back), func.sum(returns), func.avg(days))
        .select_from(joined)
        .group_by(was_back)
    )
    for sent_back, count, returned, total, average in groups:
        found.signed_off += count
        found.returned += int(returned or 0)
        found.returns += int(total or 0)
        if average is not None:
            setattr(found, "days_returned" if sent_back else "days_first_time", round(float(average), 1))
