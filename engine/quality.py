"""Quality of PEPs as the histories record it: QA ratings by term, school and adviser, the PEPs sent
back for changes and how long they took to be signed off, and the QA criteria most often failed.
Called by the oversight pages (webui/ledger.py) and deploy (which checks the declarations).

Nothing here names a council's question: a QA form declares its rating (`"x-qa-rating": true` on the
Red/Amber/Green question) and its criteria (`"x-qa-criterion": true` on each yes/no check, its title
the criterion); a task the diagram sends back says so on its `task_ready` (`sent_back`), and the sign-off
is the `pep_signed_off` statutory event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import calendar
from .models import Child, Event, User
from .ppplus import FormReader

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
class Rating:
    child_id: str
    instance_id: int | None
    at: datetime
    term: str
    school: str
    adviser: str
    rating: str


@dataclass
class Quality:
    """What the histories say of PEP quality over a period."""

    ratings: list[Rating] = field(default_factory=list)
    criteria: list[tuple[str, int, int]] = field(default_factory=list)  # (criterion, failed, assessed)
    signed_off: int = 0
    returned: int = 0  # PEPs signed off that were sent back at least once
    returns: int = 0  # how many times they were sent back in all
    days_first_time: float | None = None  # average days from the first QA rating to sign-off
    days_returned: float | None = None

    def by(self, attribute: str) -> dict[str, Counter]:
        """Ratings counted by term, school or adviser."""
        counts: dict[str, Counter] = defaultdict(Counter)
        for rating in self.ratings:
            counts[getattr(rating, attribute)][rating.rating] += 1
        return dict(sorted(counts.items()))

    @property
    def totals(self) -> Counter:
        return Counter(r.rating for r in self.ratings)


def quality(session: Session, start: date, end: date) -> Quality:
    """The quality of PEPs rated and signed off from `start` up to (not including) `end` (London days)."""
    begin, finish = calendar.to_london(start.isoformat()), calendar.to_london(end.isoformat())
    events = session.scalars(
        select(Event)
        .where(Event.kind.in_(("task_completed", "task_ready", "pep_signed_off")), Event.at >= begin, Event.at < finish)
        .order_by(Event.child_id, Event.seq)
    )
    forms = FormReader(session)
    schools = {c: s or "No school" for c, s in session.execute(select(Child.id, Child.school))}
    names = dict(session.execute(select(User.email, User.name)).all())
    found = Quality()
    failed: Counter[str] = Counter()
    assessed: Counter[str] = Counter()
    labels: dict[str, str] = {}
    first_rating: dict[int, datetime] = {}
    sent_back: Counter = Counter()
    signed: list[tuple[int, datetime]] = []
    for event in events:
        if event.instance_id is None:  # these kinds are written by a PEP's steps, never without one
            continue
        if event.kind == "task_ready":
            if event.data.get("sent_back"):
                sent_back[event.instance_id] += 1
            continue
        if event.kind == "pep_signed_off":
            signed.append((event.instance_id, event.at))
            continue
        form = event.data.get("form")
        schema = forms.schema(event.instance_id, form) if form else None
        if not schema:
            continue
        answers = event.data.get("data") or {}
        for name, spec in (schema.get("properties") or {}).items():
            if not isinstance(spec, dict) or answers.get(name) is None:
                continue
            if spec.get(RATING_KEY):
                found.ratings.append(
                    Rating(
                        event.child_id,
                        event.instance_id,
                        event.at,
                        calendar.term_label(event.at),
                        schools.get(event.child_id, "No school"),
                        names.get(event.actor, event.actor),
                        str(answers[name]),
                    )
                )
                first_rating.setdefault(event.instance_id, event.at)
            elif spec.get(CRITERION_KEY):
                label = spec.get("title") or name
                labels[label] = label
                assessed[label] += 1
                failed[label] += answers[name] is False
    found.criteria = sorted(((label, failed[label], assessed[label]) for label in labels), key=lambda c: (-c[1], c[0]))
    days: dict[bool, list[float]] = {True: [], False: []}
    for instance_id, at in signed:
        found.signed_off += 1
        back = sent_back.get(instance_id, 0)
        found.returned += back > 0
        found.returns += back
        if instance_id in first_rating:
            days[back > 0].append((at - first_rating[instance_id]).total_seconds() / 86400)
    found.days_first_time = round(sum(days[False]) / len(days[False]), 1) if days[False] else None
    found.days_returned = round(sum(days[True]) / len(days[True]), 1) if days[True] else None
    return found
