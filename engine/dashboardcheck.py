"""The oversight dashboard's figures counted again from the children's histories alone, by the
dashboard's own definitions, and held to the dashboard's (engine/oversight.py, read from the PEP
projection and the children's records) figure by figure, naming the children behind any difference
(`against_dashboard`). The year benchmark prints both; tests/test_timeliness_dashboard.py holds them
equal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import calendar
from .models import Child
from .timeliness import Record, _day, care_periods, children, read_records  # noqa: F401

# ---- the oversight dashboard's figures, by its definitions, from history ------------------------
# engine/oversight.py reads its figures from `pep_projection`, which each step keeps as it runs, and
# from the children's records. Here the same definitions are counted again from the histories alone,
# so the two can be held to each other (the year benchmark prints both; tests/test_timeliness_dashboard.py).


@dataclass(frozen=True)
class Pep:
    """One PEP as its history tells it."""

    instance_id: int
    child_id: str
    kind: str
    term: str | None
    due_at: datetime | None  # the deadline it answers, else the end of the term it answers
    started_at: datetime
    held: bool
    signed_off_at: datetime | None
    ended: bool  # cancelled or withdrawn: due no more
    entered_care: date | None  # an initial PEP's: the day the child last entered care by its start


def peps(records: list[Record], entered_on_record: dict[str, date | None]) -> list[Pep]:
    """Every PEP (an instance whose start says what it answers), from its events; the day an initial
    PEP's child entered care is the last `entered_care` before its start, else their record's."""
    entered: dict[str, list[tuple[datetime, date]]] = defaultdict(list)
    held: set[int | None] = set()
    signed: dict[int | None, datetime] = {}
    ended: set[int | None] = set()
    for r in records:
        if r.kind == "entered_care":
            entered[r.child_id].append((r.at, _day(r.data.get("date"), r.at)))
        elif r.kind == "meeting_held" and r.data.get("date"):
            held.add(r.instance_id)
        elif r.kind == "pep_signed_off":
            signed.setdefault(r.instance_id, r.at)
        elif r.kind == "instance_cancelled":
            ended.add(r.instance_id)
    found = []
    for r in records:
        answers = r.data.get("answers") if r.kind == "instance_started" else None
        if not isinstance(answers, dict) or not answers.get("kind") or r.instance_id is None:
            continue
        term = answers.get("term")
        due = _moment(answers["deadline"]) if answers.get("deadline") else _term_end(term) if term else None
        care = None
        if answers["kind"] == "initial":
            care = next(
                (day for at, day in reversed(entered[r.child_id]) if at <= r.at), entered_on_record.get(r.child_id)
            )
        found.append(
            Pep(
                r.instance_id,
                r.child_id,
                answers["kind"],
                term,
                due,
                r.at,
                r.instance_id in held,
                signed.get(r.instance_id),
                r.instance_id in ended,
                care,
            )
        )
    return found


def dashboard_figures(
    pep_list: list[Pep],
    periods: dict[str, list[tuple[date, date | None]]],
    period,
    now: datetime,
    start_within: int,
    ready_within: int,
) -> dict[str, set]:
    """The oversight dashboard's figures for `period` (an engine.oversight.Period of whole terms, not
    "now"), each as the set it counts: PEPs (instance ids) due in it, not withdrawn, and of them held,
    signed off by their due date, signed off after it, overdue now, not yet due; children (ids) in care
    at some time in it; initial PEPs due in it and of them started within `start_within` working days of
    entering care, signed off within `ready_within`, not signed off and past them, with no day entered
    care; and for each term begun by `now`, children in care at some time in it and those with a
    termly PEP for it signed off by its due date (keys "<figure>@<term>")."""
    first = datetime.fromisoformat(calendar.start_of_day(period.start.isoformat()))
    last = datetime.fromisoformat(calendar.end_of_day(period.end.isoformat()))
    figures: dict[str, set] = defaultdict(set)
    for pep in pep_list:
        if pep.ended or pep.due_at is None or not first <= pep.due_at <= last:
            continue
        signed = pep.signed_off_at
        names = [
            "due",
            *(["held"] if pep.held else []),
            ("on_time" if signed <= pep.due_at else "late")
            if signed
            else ("overdue" if pep.due_at < now else "not_yet_due"),
        ]
        if pep.kind == "initial":
            names.append("initial_due")
            if pep.entered_care is None:
                names.append("initial_unknown")
            else:
                start_by = _day_end(pep.entered_care, start_within)
                ready_by = _day_end(pep.entered_care, ready_within)
                names += (["initial_started"] if pep.started_at <= start_by else []) + (
                    ["initial_ready"]
                    if signed and signed <= ready_by
                    else ["initial_late"]
                    if not signed and ready_by < now
                    else []
                )
        for name in names:
            figures[name].add(pep.instance_id)
    figures["children"] = _in_care_between(periods, period.start, period.end)
    today = calendar.to_london(now).date()
    for term in period.terms:
        if term.start > today:
            continue
        key = f"{term.academic_year} {term.name.strip().lower()}"
        in_care = _in_care_between(periods, term.start, term.end)
        reviewed = {
            p.child_id
            for p in pep_list
            if p.kind == "termly"
            and p.term == key
            and p.signed_off_at
            and (p.due_at is None or p.signed_off_at <= p.due_at)
        }
        figures[f"in_care@{key}"] = in_care
        figures[f"reviewed@{key}"] = in_care & reviewed
        figures[f"not_reviewed@{key}"] = in_care - reviewed
    return figures


def _in_care_between(periods: dict[str, list[tuple[date, date | None]]], start: date, end: date) -> set[str]:
    return {
        child
        for child, spans in periods.items()
        if any(began <= end and (ended is None or ended >= start) for began, ended in spans)
    }


def _moment(value) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _term_end(label: str) -> datetime | None:
    term = next(
        (t for t in calendar.default_calendar().terms if f"{t.academic_year} {t.name.strip().lower()}" == label), None
    )
    return datetime.fromisoformat(calendar.end_of_day(term.end.isoformat())) if term else None


def _day_end(day: date, working_days: int) -> datetime:
    return datetime.fromisoformat(calendar.end_of_day(calendar.working_days(working_days, day.isoformat())))


@dataclass(frozen=True)
class Compared:
    """One period's figures as the dashboard gives them and as the histories give them."""

    period: str
    figures: tuple[tuple[str, int, int], ...]  # (figure, dashboard, history)
    differing: dict[str, tuple[str, ...]]  # figure → the children counted by one and not the other

    @property
    def equal(self) -> bool:
        return all(d == h for _name, d, h in self.figures)


def against_dashboard(
    session: Session, now: datetime, since: date = date.min, records: list[Record] | None = None
) -> list[Compared]:
    """The oversight dashboard's figures (engine.oversight.timeliness, as /oversight/timeliness shows
    them) for each academic year and term begun by `now` (and ending on or after `since`), beside the same figures counted from the
    histories (`dashboard_figures`); for a figure that differs, the children behind the difference
    (from the dashboard's drill-down)."""
    from . import drilldown, oversight, projection

    records = read_records(session) if records is None else records
    in_care, _born = children(session)
    on_record = dict(session.execute(select(Child.id, Child.entered_care)).all())
    pep_list, periods = peps(records, on_record), care_periods(records, in_care)
    limits = projection.rules()
    everyone = Child.id.is_not(None)
    found = []
    for period in oversight.periods(now)[1:]:
        if period.end < since:
            continue
        shown = oversight.timeliness(session, period, now)
        dashboard = dict(shown["rows"][0]) if shown["rows"] else {}
        dashboard.update(shown["initial"])
        for term in shown["termly"]:
            dashboard.update({f"{name}@{term['term']}": term[name] for name in ("in_care", "reviewed", "not_reviewed")})
        history_ = dashboard_figures(
            pep_list, periods, period, now, limits.start_within_working_days, limits.ready_within_working_days
        )
        names = [
            *oversight.PEP_FIGURES,
            "children",
            *oversight.INITIAL_FIGURES,
            *sorted({k for k in dashboard if "@" in k} | {k for k in history_ if "@" in k}, key=_term_order),
        ]
        figures = tuple((name, int(dashboard.get(name) or 0), len(history_.get(name, ()))) for name in names)
        differing = {}
        for name, shown_n, counted_n in figures:
            if shown_n == counted_n:
                continue
            figure, _, term = name.partition("@")
            rows = drilldown.drill_down(
                session, period, now, drilldown.Drill(figure, term=term or None), everyone, limit=1_000_000
            )
            counted = history_.get(name, set())
            if figure in oversight.PEP_FIGURES or figure in oversight.INITIAL_FIGURES:
                by_pep = {p.instance_id: p.child_id for p in pep_list}
                theirs = {(r["instance_id"], r["child_id"]) for r in rows}
                ours = {(i, by_pep.get(i)) for i in counted}
                differing[name] = tuple(sorted({str(c) for _i, c in theirs ^ ours if c is not None}))
            else:
                differing[name] = tuple(sorted({r["child_id"] for r in rows} ^ counted))
        found.append(Compared(period.label, figures, differing))
    return found


def _term_order(key: str) -> tuple:
    figure, _, term = key.partition("@")
    found = next(
        (t.start for t in calendar.default_calendar().terms if f"{t.academic_year} {t.name.strip().lower()}" == term),
        date.max,
    )
    return found, ("in_care", "reviewed", "not_reviewed").index(figure)
