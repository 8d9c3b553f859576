"""Deadline arithmetic for PEP diagrams: working days, school days, terms and ages.

The restricted script environment exposes `EXPRESSION_FUNCTIONS` to diagram expressions (a timer
can say `end_of_day(working_days(5, meeting_date))`); the engine uses the same functions, and the
`*_dt` twins, for due dates. Arithmetic happens on the Europe/London wall clock, and every point in
time is returned as an aware UTC ISO 8601 string: SpiffWorkflow reads timers with
`datetime.fromisoformat` and would take a naive time as server-local.

`start`/`when` accept an aware datetime, a date, an ISO date string (00:00 London that day), an
ISO datetime string (naive = London time) or None (the engine clock's now).

Counting takes n steps of one working (or school) day, each landing on such a day and keeping the
London time of day: from a Saturday (or the Friday) n=1 is Monday, n=-1 from a Saturday is Friday,
and n=0 is the start itself, moved forward to the next such day if it is not one.

School days are working days inside a configured term, outside its half-term and not a listed
closure. Term dates come from config/term_dates.yaml or the file named by PEP_TERM_DATES; a date
outside the configured terms raises `CalendarError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import yaml

from engine import CONFIG, clock, limits

LONDON = ZoneInfo("Europe/London")
DEFAULT_TERM_DATES = CONFIG / "term_dates.yaml"
MAX_SEARCH_DAYS = 400
_TERM_FIELDS = ("start", "end", "half_term_start", "half_term_end")

Moment = datetime | date | str | None


class CalendarError(ValueError):
    """A date the configured calendar cannot answer for, or malformed term dates."""


@dataclass(frozen=True)
class Term:
    """One school term with its half-term break; all dates inclusive."""

    name: str
    start: date
    end: date
    half_term_start: date
    half_term_end: date

    @property
    def academic_year(self) -> str:
        """Return the academic year, like "2025-26"."""
        first = self.start.year if self.start.month >= 8 else self.start.year - 1
        return f"{first}-{(first + 1) % 100:02d}"

    def as_dict(self) -> dict[str, str]:
        """Return the term as JSON-friendly strings."""
        dates = {field: getattr(self, field).isoformat() for field in _TERM_FIELDS}
        return {"name": self.name, **dates, "academic_year": self.academic_year}


@cache
def _bank_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year))


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


class CouncilCalendar:
    """A council's terms and closures, plus England-and-Wales bank holidays."""

    def __init__(self, council: str, terms: list[Term], closures=(), source: str = "<mapping>"):
        self.council, self.source = council, source
        self.terms = sorted(terms, key=lambda term: term.start)
        self.closures = frozenset(closures)
        if not self.terms:
            raise CalendarError(f"no terms configured in {source}")
        for term in self.terms:
            if not term.start <= term.half_term_start <= term.half_term_end <= term.end:
                raise CalendarError(f"{term.name} term starting {term.start} in {source}: dates out of order")
        for earlier, later in pairwise(self.terms):
            if later.start <= earlier.end:
                raise CalendarError(f"terms starting {earlier.start} and {later.start} overlap in {source}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], source: str = "<mapping>") -> CouncilCalendar:
        """Build a calendar from the term-dates mapping (the parsed YAML)."""
        try:
            terms = [Term(str(t["name"]), *(_as_date(t[f]) for f in _TERM_FIELDS)) for t in mapping["terms"]]
            closures = {_as_date(day) for day in mapping.get("closures") or ()}
        except (KeyError, TypeError, ValueError) as exc:
            raise CalendarError(f"malformed term dates in {source}: {exc!r}") from exc
        return cls(str(mapping.get("council", "")), terms, closures, source)

    def is_working_day(self, day: date) -> bool:
        """Return whether `day` is a weekday that is not a bank holiday."""
        return day.weekday() < 5 and day not in _bank_holidays(day.year)

    def is_school_day(self, day: date) -> bool:
        """Return whether schools are open on `day`."""
        term = self.term_containing(day)
        in_half_term = term is not None and term.half_term_start <= day <= term.half_term_end
        return term is not None and not in_half_term and day not in self.closures and self.is_working_day(day)

    def term_containing(self, day: date) -> Term | None:
        """Return the term `day` falls in (half-term included), or None in a holiday."""
        first, last = self.terms[0].start, self.terms[-1].end
        if not first <= day <= last:
            raise CalendarError(
                f"{day.isoformat()} is outside the term dates configured in {self.source} "
                f"({first.isoformat()} to {last.isoformat()}); add that academic year's terms"
            )
        return next((term for term in self.terms if term.start <= day <= term.end), None)

    def next_term(self, day: date) -> Term:
        """Return the first term starting after `day`."""
        found = next((term for term in self.terms if term.start > day), None)
        if found is None:
            raise CalendarError(f"no term starting after {day.isoformat()} is configured in {self.source}")
        return found

    def current_or_next_term(self, day: date) -> Term:
        """Return the term containing `day`, or the next one during a holiday."""
        return self.term_containing(day) or self.next_term(day)

    def term_number(self, term: Term) -> int:
        """Return the term's position (1, 2, 3) in its academic year."""
        return 1 + sum(t.academic_year == term.academic_year and t.start < term.start for t in self.terms)

    def shift(self, day: date, n: int, is_open: Callable[[date], bool]) -> date:
        """Step n open days from `day`; n=0 gives `day`, or the next open day if it is closed."""
        origin, direction = day, -1 if n < 0 else 1
        try:
            for _ in range(abs(n) if n or is_open(day) else 1):
                limits.tick()  # a diagram's count of days is bounded by its time budget
                day = self._next_open(day, direction, is_open)
        except CalendarError as exc:
            raise CalendarError(f"counting {n} day(s) from {origin.isoformat()}: {exc}") from exc
        return day

    @staticmethod
    def _next_open(day: date, direction: int, is_open: Callable[[date], bool]) -> date:
        for _ in range(MAX_SEARCH_DAYS):
            day += timedelta(days=direction)
            if is_open(day):
                return day
        raise CalendarError(f"no open day found in {MAX_SEARCH_DAYS} days")


_override: CouncilCalendar | None = None


def load_term_dates(path: str | os.PathLike[str]) -> CouncilCalendar:
    """Load a term-dates YAML file, cached by path."""
    return _load(str(Path(path).resolve()))


@cache
def _load(path: str) -> CouncilCalendar:
    try:
        with open(path, encoding="utf-8") as handle:
            mapping = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise CalendarError(f"cannot read term dates from {path}: {exc}") from exc
    if not isinstance(mapping, Mapping):
        raise CalendarError(f"term dates in {path} must be a mapping with council and terms")
    return CouncilCalendar.from_mapping(mapping, source=path)


def set_term_dates(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> None:
    """Use these term dates (a YAML path or a mapping) from now on; None restores the default."""
    global _override
    if source is None:
        _override = None
    elif isinstance(source, Mapping):
        _override = CouncilCalendar.from_mapping(source)
    else:
        _override = load_term_dates(source)


def default_calendar() -> CouncilCalendar:
    """Return the calendar in use: set_term_dates, else PEP_TERM_DATES, else the shipped file."""
    if _override is not None:
        return _override
    return _named(os.environ.get("PEP_TERM_DATES") or str(DEFAULT_TERM_DATES))


@cache
def _named(path: str) -> CouncilCalendar:
    """The term dates at a path as named (resolved once: a step asks for the calendar many times)."""
    return load_term_dates(path)


def to_london(value: Moment = None) -> datetime:
    """Return `value` as an aware Europe/London datetime (None: the clock's now)."""
    if value is None:
        value = clock.now()
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise CalendarError(f"not an ISO date or date-time: {value!r}") from exc
    elif not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return (value if value.tzinfo else value.replace(tzinfo=LONDON)).astimezone(LONDON)


def _day(value: Moment) -> date:
    return to_london(value).date()


def _at(day: date, wall: time) -> datetime:
    return datetime.combine(day, wall, tzinfo=LONDON).astimezone(UTC)


def working_days_dt(n: int, start: Moment = None) -> datetime:
    """Return the UTC moment n working days after `start` (negative: before)."""
    local, calendar = to_london(start), default_calendar()
    return _at(calendar.shift(local.date(), n, calendar.is_working_day), local.time())


def school_days_dt(n: int, start: Moment = None) -> datetime:
    """Return the UTC moment n school days after `start` (negative: before)."""
    local, calendar = to_london(start), default_calendar()
    return _at(calendar.shift(local.date(), n, calendar.is_school_day), local.time())


def now() -> str:
    """Return the engine clock's now."""
    return clock.now().astimezone(UTC).isoformat()


def today() -> str:
    """Return today's date in London, as an ISO date ("2026-12-07"): to compare with a date answer."""
    return to_london(None).date().isoformat()


def long_date(when: Moment = None) -> str:
    """Return `when`'s day as people write it, "7 December 2026": for messages and instructions."""
    return ukdate(_day(when))


def working_days_between(due: date, done: date) -> int:
    """Working days after `due` up to and including `done`."""
    working = default_calendar().is_working_day
    return sum(working(due + timedelta(days=n)) for n in range(1, (done - due).days + 1))


def whole_working_days_between(since: date, day: date) -> int:
    """The whole working days after `since` and before `day`."""
    return working_days_between(since, day - timedelta(days=1)) if day > since else 0


def ukdate(value, time: bool = False) -> str:
    """A date as people in the UK write it, '9 March 2026' (a moment: '9 March 2026, 2:30pm', in
    London time); an ISO string is read first, and anything else given back as it is."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        local = value.astimezone(LONDON)
        text = f"{local.day} {local:%B %Y}"
        if time:
            text += ", " + f"{local:%I:%M%p}".lstrip("0").lower().replace(":00", "")
        return text
    return f"{value.day} {value:%B %Y}"


def working_days(n: int, start: Moment = None) -> str:
    """Return the moment n working days after `start` (negative: before)."""
    return working_days_dt(n, start).isoformat()


def school_days(n: int, start: Moment = None) -> str:
    """Return the moment n school days after `start` (negative: before)."""
    return school_days_dt(n, start).isoformat()


def school_weeks(n: int, start: Moment = None) -> str:
    """Return the moment n school weeks (5n school days) after `start`."""
    return school_days(5 * n, start)


def add_days(n: int, start: Moment = None) -> str:
    """Return the moment n calendar days after `start`, at the same London time of day."""
    local = to_london(start)
    return _at(local.date() + timedelta(days=n), local.time()).isoformat()


def end_of_day(when: Moment = None) -> str:
    """Return 23:59:59 London time on `when`'s day."""
    return _at(_day(when), time(23, 59, 59)).isoformat()


def start_of_day(when: Moment = None) -> str:
    """Return 00:00 London time on `when`'s day."""
    return _at(_day(when), time()).isoformat()


def at_time(when: Moment, wall_time: str) -> str:
    """Return London wall-clock time `wall_time` ("09:00") on `when`'s day."""
    return _at(_day(when), time.fromisoformat(wall_time)).isoformat()


def term_of(when: Moment = None) -> dict[str, str] | None:
    """Return the term `when` falls in (half-term included), or None during a holiday."""
    term = default_calendar().term_containing(_day(when))
    return term.as_dict() if term else None


def term_label(when: Moment = None) -> str:
    """Name the term `when` falls in (in a holiday, the next), as "2026-27 spring"."""
    term = default_calendar().current_or_next_term(_day(when))
    return f"{term.academic_year} {term.name.strip().lower()}"


def first_half_of_term_end(when: Moment = None) -> str:
    """Return the end of the last school day before the current (or next) term's half-term."""
    calendar = default_calendar()
    term = calendar.current_or_next_term(_day(when))
    return end_of_day(calendar.shift(term.half_term_start, -1, calendar.is_school_day))


def next_term_start(when: Moment = None) -> str:
    """Return 00:00 London on the first day of the next term to start after `when`."""
    return start_of_day(default_calendar().next_term(_day(when)).start)


def term_number(when: Moment = None) -> int:
    """Return 1 (autumn), 2 (spring) or 3 (summer) for the current (in a holiday, next) term."""
    calendar = default_calendar()
    return calendar.term_number(calendar.current_or_next_term(_day(when)))


def is_working_day(when: Moment = None) -> bool:
    """Return whether `when` falls on a working day."""
    return default_calendar().is_working_day(_day(when))


def is_school_day(when: Moment = None) -> bool:
    """Return whether `when` falls on a school day."""
    return default_calendar().is_school_day(_day(when))


def age_on(date_of_birth: Moment, when: Moment = None) -> int:
    """Return the age in whole years on `when`'s day."""
    born, day = _day(date_of_birth), _day(when)
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def academic_year_age(date_of_birth: Moment, when: Moment = None) -> int:
    """Return the age on 31 August at the start of `when`'s academic year (the school-year rule)."""
    day = _day(when)
    return age_on(date_of_birth, date(day.year if day.month >= 9 else day.year - 1, 8, 31))


EXPRESSION_FUNCTIONS: dict[str, Callable[..., Any]] = {
    function.__name__: function
    for function in (
        working_days, school_days, school_weeks, add_days, end_of_day, start_of_day, at_time,
        term_of, first_half_of_term_end, next_term_start, term_number, is_school_day,
        is_working_day, age_on, academic_year_age, now, today, long_date,
    )
}  # fmt: skip
