"""The periods the Virtual School's figures are asked for: now (the current term, and whatever is overdue),
each academic year and each term begun by now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from . import calendar
from .projection import _aware


@dataclass(frozen=True)
class Period:
    """What a timeliness view covers: now (the current term, and every PEP overdue now), a term or an
    academic year, as the council's term dates (config/term_dates.yaml) give them."""

    key: str  # "now", "2026-27", "2026-27 spring"
    label: str
    terms: tuple
    now: bool = False

    @property
    def start(self) -> date:
        return self.terms[0].start

    @property
    def end(self) -> date:
        return self.terms[-1].end

    @property
    def start_at(self) -> datetime:
        return _aware(calendar.start_of_day(self.start.isoformat()))

    @property
    def end_at(self) -> datetime:
        return _aware(calendar.end_of_day(self.end.isoformat()))


def _term_key(term) -> str:
    return f"{term.academic_year} {term.name.strip().lower()}"


def periods(now: datetime) -> list[Period]:
    """The periods that can be chosen: now, then each academic year and term begun by now, newest first."""
    today = calendar.to_london(now).date()
    begun = [t for t in calendar.default_calendar().terms if t.start <= today]
    current = period("now", now)
    found = [current] if current is not None else []
    for year in sorted({t.academic_year for t in begun}, reverse=True):
        found.append(Period(year, f"Academic year {year}", tuple(t for t in begun if t.academic_year == year)))
        found += [
            Period(_term_key(t), f"{t.name.strip()} term {year}", (t,))
            for t in reversed(begun)
            if t.academic_year == year
        ]
    return found


def period(key: str | None, now: datetime) -> Period | None:
    """The period a key names (None: no such period)."""
    if not key or key == "now":
        term = calendar.default_calendar().current_or_next_term(calendar.to_london(now).date())
        return Period("now", f"Now ({term.name.strip().lower()} term {term.academic_year})", (term,), now=True)
    return next((p for p in periods(now)[1:] if p.key == key), None)
