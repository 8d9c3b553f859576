"""The Virtual School's oversight: the PEP projection kept as steps run, timeliness figures read from it,
and the council's overdue work with its bulk reminders and reassignments.

Called by the runtime (`project_step`, in the step's transaction, beside the open-task projection),
`pep oversight-rebuild` and migration 0017 (`rebuild`: the projection recomputed from history), the
web app's oversight pages (webui/oversight.py) and the benchmark (benchmarks/oversight.py).

"On time" is what the diagrams recorded, never a rule per process here: the deadline or term each PEP
answers (`instance_started.answers`), the day its meeting was held (`meeting_held`), when it was signed
off (`pep_signed_off`), each task's lateness (`task_completed.late`). The statutory rules (an initial
PEP started within 10 working days of entering care and ready within 20; one review each term) are
configuration (config/statutory.yaml, or the file PEP_STATUTORY names), with their source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import yaml
from sqlalchemy import and_, bindparam, case, exists, false, func, literal, null, select, union_all
from sqlalchemy.orm import Session, aliased

from . import calendar, history, lists
from .mail import one_line
from .models import (
    CaseTeamMember,
    Child,
    Event,
    Instance,
    Notification,
    OpenTask,
    PepProjection,
    User,
    UserRole,
)

DEFAULT_RULES_FILE = Path(__file__).resolve().parent.parent / "config" / "statutory.yaml"
_P = PepProjection.__table__
INSERT_PROJECTION = _P.insert().inline()
UPDATE_PROJECTION = _P.update().where(_P.c.instance_id == bindparam("pep_instance_id"))  # the columns: the other keys
# what a step may write that changes its PEP's row
FOLDED = frozenset({"instance_started", "meeting_held", "pep_signed_off", "task_completed", "instance_completed",
                    "instance_cancelled"})
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
    return Rules(" ".join(str(values.get("source", "")).split()), int(initial.get("start_within_working_days", 10)),
                 int(initial.get("ready_within_working_days", 20)),
                 tuple((str(b["label"]), int(b["up_to"])) for b in values.get("age_bands") or ()))


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
    return dict(process_id=data.get("process_id", ""), process_name=data.get("process_name") or data.get("process_id", ""),
                kind=kind, term=term, due_at=due,
                age_band=limits.age_band((data.get("child") or {}).get("date_of_birth"), due or at),
                started_at=at, status="running", ended_at=None, held_on=None, signed_off_at=None, on_time=None,
                late_steps=0, entered_care=entered_care if kind == "initial" else None,
                start_by=_day_end(entered_care, limits.start_within_working_days) if initial else None,
                ready_by=_day_end(entered_care, limits.ready_within_working_days) if initial else None)


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
    return next((t for t in calendar.default_calendar().terms if f"{t.academic_year} {t.name.strip().lower()}" == label), None)


def entered_care_before(session: Session, child_id: str, at: datetime) -> date | None:
    """The day the child last entered care by `at`: the last `entered_care` report, else their record's."""
    reported = session.scalar(select(Event.data).where(Event.child_id == child_id, Event.kind == "entered_care",
                                                       Event.at <= at).order_by(Event.seq.desc()).limit(1))
    if reported and reported.get("date"):
        return date.fromisoformat(str(reported["date"])[:10])
    return session.scalar(select(Child.entered_care).where(Child.id == child_id))


def project_step(session: Session, instance_id: int, child_id: str, entries: list[dict], at: datetime, new: bool):
    """The projection's write for a step's history entries: (statement, parameters), or None. Read
    before the step's writes begin (the caller runs it in its pipeline)."""
    relevant = [e for e in entries if e["kind"] in FOLDED and (e["kind"] != "task_completed" or e["data"].get("late"))]
    if not relevant:
        return None
    row = None
    if not new:
        found = session.execute(select(_P).where(_P.c.instance_id == instance_id)).mappings().first()
        if found is None:
            return None  # an instance from before the projection, not rebuilt yet: `pep oversight-rebuild`
        row = {k: v for k, v in found.items() if k not in ("instance_id", "child_id")}
    started = next((e for e in relevant if e["kind"] == "instance_started"), None)
    answered = started and (started["data"].get("answers") or {}).get("kind") == "initial"
    entered = entered_care_before(session, child_id, at) if answered else None
    for entry in relevant:
        row = fold(row, entry["kind"], entry["data"], at, entered)
    if row is None:
        return None
    if new or started:
        return INSERT_PROJECTION, {"instance_id": instance_id, "child_id": child_id, **row}
    return UPDATE_PROJECTION, {"pep_instance_id": instance_id, **row}


def recompute(session: Session, instance_id: int) -> dict | None:
    """The PEP's row as its history gives it, event by event."""
    row, entered = None, None
    for event in session.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.seq)):
        if event.kind == "instance_started" and (event.data.get("answers") or {}).get("kind") == "initial":
            entered = entered_care_before(session, event.child_id, event.at)
        if event.kind in FOLDED:
            row = fold(row, event.kind, event.data, event.at, entered)
    return row


def rebuild(session: Session, batch: int = 500) -> int:
    """Recompute every instance's row from history (the backfill, and after the rules change)."""
    session.execute(_P.delete())
    done, last = 0, 0
    while ids := session.execute(select(Instance.id, Instance.child_id).where(Instance.id > last)
                                 .order_by(Instance.id).limit(batch)).all():
        rows = [{"instance_id": i, "child_id": c, **row} for i, c in ids if (row := recompute(session, i))]
        if rows:
            session.execute(INSERT_PROJECTION, rows)
        done, last = done + len(rows), ids[-1][0]
    return done


# ---- periods ----------------------------------------------------------------------------------

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
    found = [period("now", now)]
    for year in sorted({t.academic_year for t in begun}, reverse=True):
        found.append(Period(year, f"Academic year {year}", tuple(t for t in begun if t.academic_year == year)))
        found += [Period(_term_key(t), f"{t.name.strip()} term {year}", (t,))
                  for t in reversed(begun) if t.academic_year == year]
    return found


def period(key: str | None, now: datetime) -> Period | None:
    """The period a key names (None: no such period)."""
    if not key or key == "now":
        term = calendar.default_calendar().current_or_next_term(calendar.to_london(now).date())
        return Period("now", f"Now ({term.name.strip().lower()} term {term.academic_year})", (term,), now=True)
    return next((p for p in periods(now)[1:] if p.key == key), None)


# ---- what is counted --------------------------------------------------------------------------

P = PepProjection
DIMENSIONS = {"school": "School", "social_worker": "Social worker", "designated_teacher": "Designated teacher",
              "education_adviser": "Education adviser", "age_band": "Age band", "process": "Process",
              "area": "In or out of area"}
BREAKDOWN_PAGE = lists.PAGE_SIZE  # groups a page of a breakdown shows
TEAM_DIMENSIONS = {"social_worker": "social_worker", "designated_teacher": "designated_teacher",
                   "education_adviser": "vs_education_adviser"}
PEP_FIGURES = {"due": "PEPs due", "held": "Meeting held", "on_time": "Completed on time", "late": "Completed late",
               "overdue": "Overdue now", "not_yet_due": "Not yet due"}
INITIAL_FIGURES = {"initial_due": "Initial PEPs due", "initial_started": "Started within {start} working days",
                   "initial_ready": "Ready within {ready} working days", "initial_late": "Not ready, past {ready} working days",
                   "initial_unknown": "Date entered care not recorded"}
TERMLY_FIGURES = {"in_care": "Children in care in the term", "reviewed": "PEP review completed in the term",
                  "not_reviewed": "No PEP review completed in the term"}


def _pep_figures(now: datetime) -> dict:
    signed = P.signed_off_at.is_not(None)
    return {"due": literal(True), "held": P.held_on.is_not(None), "on_time": signed & P.on_time.is_(True),
            "late": signed & P.on_time.is_(False), "overdue": ~signed & (P.due_at < now),
            "not_yet_due": ~signed & (P.due_at >= now)}


def _initial_figures(now: datetime) -> dict:
    return {"initial_due": literal(True), "initial_started": P.started_at <= P.start_by,
            "initial_ready": P.signed_off_at <= P.ready_by,
            "initial_late": P.signed_off_at.is_(None) & (P.ready_by < now), "initial_unknown": P.entered_care.is_(None)}


def _peps_in(period_: Period, now: datetime, kind: str | None = None):
    """PEPs due in the period (for now: in the current term, and any overdue now), not withdrawn."""
    due = P.due_at.between(period_.start_at, period_.end_at)
    if period_.now:
        due = due | (P.signed_off_at.is_(None) & (P.due_at < now))
    return and_(P.kind.is_not(None) if kind is None else P.kind == kind, P.status.not_in(ENDED), due)


def _in_care(start: date, end: date, now_: bool):
    """Children in care at some time between `start` and `end` (now: in care today)."""
    if now_:
        return Child.in_care
    entered = Child.entered_care.is_(None) | (Child.entered_care <= end)
    return entered & (Child.in_care | (Child.left_care_on >= start))


def _age_band_of_child(year_start: date):
    """The age band in the school year starting `year_start` (age on 31 August), from the date of birth."""
    whens = []
    for label, oldest in rules().age_bands:  # youngest band first: the first that holds the child
        born_after = date(year_start.year - oldest - 1, 8, 31)  # older than `oldest` on 31 August: born by then
        whens.append((Child.date_of_birth > born_after, label))
    return case(*whens, else_=None) if whens else literal(None)


def _dimension(query, by: str | None, pep: bool, year_start: date):
    """The query joined for a breakdown `by`, and the group's (key, label) expressions."""
    if by in TEAM_DIMENSIONS:
        member = aliased(CaseTeamMember)
        child_id = P.child_id if pep else Child.id  # a PEP's team: no need of the child's row
        query = query.outerjoin(member, and_(member.child_id == child_id, member.role_key == TEAM_DIMENSIONS[by]))
        return query, member.user_id, null()  # the person's name: read once a group (`_groups`)
    if by == "school":
        return query, Child.school, Child.school
    if by == "area":
        area = case((Child.in_area.is_(True), "in"), (Child.in_area.is_(False), "out"), else_=None)
        return query, area, case((Child.in_area.is_(True), "In area"), (Child.in_area.is_(False), "Out of area"), else_=None)
    if by == "age_band":
        band = P.age_band if pep else _age_band_of_child(year_start)
        return query, band, band
    if by == "process":
        return query, (P.process_id if pep else literal(None)), (P.process_name if pep else literal(None))
    return query, literal("all"), literal("All children")


def _matches(key, by: str | None, value: str | None):
    """The rows of one group of a breakdown ("" is the group with no value)."""
    if by not in DIMENSIONS:
        return literal(True)
    if value in (None, ""):
        return key.is_(None)
    if by in TEAM_DIMENSIONS:
        return key == int(value) if value.isdigit() else false()
    return key == value


def _year_start(period_: Period) -> date:
    return date(int(period_.terms[0].academic_year[:4]), 9, 1)


def timeliness(session: Session, period_: Period, now: datetime, by: str | None = None, page: int | None = None,
               search: str = "", size: int | None = None) -> dict:
    """The figures of a period: PEPs (broken down `by` a dimension), initial PEPs and termly reviews.
    Every group of the breakdown, by name; or with `page`, that page of those whose name holds `search`
    (`size` a page, else BREAKDOWN_PAGE) as `page` (lists.Page), by a person the most overdue first
    (then the most late, then by name), so a council of thousands of social workers shows first whom
    to ask. Counted, merged, ordered and paged by the database: a page reads its rows alone."""
    by = by if by in DIMENSIONS else None
    wanted = " ".join(search.split()) if page is not None else ""
    groups = _groups(period_, now, by, wanted)
    order = [groups.c.label.is_(None), func.lower(groups.c.label), groups.c.key]
    if page is not None and by in TEAM_DIMENSIONS:
        order = [groups.c.overdue.desc(), groups.c.late.desc(), *order]
    query = select(groups).order_by(*order)
    found = {"initial": _initial(session, period_, now), "termly": _termly(session, period_, now), "page": None}
    if page is None:
        return {**found, "rows": [_group(row) for row in session.execute(query)]}
    if wanted and by not in TEAM_DIMENSIONS:
        query = query.where(func.lower(groups.c.label).like(lists._like(wanted), escape="\\"))
    chosen = _page_of(session, query, max(page, 1), size or BREAKDOWN_PAGE)
    return {**found, "rows": chosen.rows, "page": chosen}


def _page_of(session: Session, query, number: int, size: int) -> lists.Page:
    """Page `number` of the groups, with how many there are, in one reading of them (a page past the
    last: the last, read again)."""
    rows = session.execute(query.add_columns(func.count().over().label("total"))
                           .limit(size).offset((number - 1) * size)).all()
    if not rows and number > 1:
        last = lists.Page([], session.scalar(select(func.count()).select_from(query.subquery())), 1, size).pages
        return _page_of(session, query, last, size) if last < number else lists.Page([], 0, 1, size)
    return lists.Page([_group(row) for row in rows], rows[0].total if rows else 0, number, size)


def _groups(period_: Period, now: datetime, by: str | None, search: str = ""):
    """The breakdown's groups (key, label, children in care, each PEP figure): the PEPs due and the
    children in care counted apart, then put together by group (children is null by process). By a
    person, only those whose name holds `search` (found before counting: the planner knows people's
    names, not how many groups a count will give)."""
    figures, year = _pep_figures(now), _year_start(period_)
    peps = select().select_from(P)
    if by in ("school", "area"):  # the child's: the others are the PEP's own, or its child's team
        peps = peps.join(Child, Child.id == P.child_id)
    query, key, label = _dimension(peps, by, True, year)
    parts = [query.add_columns(key.label("key"), func.max(label).label("label"), null().label("children"),
                               *(func.sum(case((clause, 1), else_=0)).label(name) for name, clause in figures.items()))
             .where(_peps_in(period_, now), _named(key, by, search)).group_by(key)]
    if by != "process":
        cq, ckey, clabel = _dimension(select().select_from(Child), by, False, year)
        # one row per child: a child has one holder of a role at most (the key of case_team_member)
        parts.append(cq.add_columns(ckey.label("key"), func.max(clabel).label("label"), func.count(Child.id).label("children"),
                                    *(literal(0).label(name) for name in figures))
                     .where(_in_care(period_.start, period_.end, period_.now), _named(ckey, by, search)).group_by(ckey))
    both = union_all(*parts).subquery()
    groups = (select(both.c.key, func.max(both.c.label).label("label"), func.max(both.c.children).label("children"),
                     *(func.sum(both.c[name]).label(name) for name in figures))
              .group_by(both.c.key).subquery())
    if by not in TEAM_DIMENSIONS:
        return groups
    return (select(groups.c.key, User.name.label("label"), groups.c.children, *(groups.c[name] for name in figures))
            .outerjoin(User, User.id == groups.c.key).subquery())


def _named(key, by: str | None, search: str):
    """The people whose name holds `search` (anyone without one)."""
    if not search or by not in TEAM_DIMENSIONS:
        return literal(True)
    return key.in_(select(User.id).where(func.lower(User.name).like(lists._like(search), escape="\\")))


def _group(row) -> dict:
    return {"key": row.key, "label": row.label, "children": row.children,
            **{name: int(getattr(row, name) or 0) for name in PEP_FIGURES}}


def _initial(session: Session, period_: Period, now: datetime) -> dict:
    figures = _initial_figures(now)
    row = session.execute(select(*(func.sum(case((clause, 1), else_=0)).label(name) for name, clause in figures.items()))
                          .where(_peps_in(period_, now, "initial"))).one()
    return {name: int(getattr(row, name) or 0) for name in figures}


def _reviewed(term_key: str):
    return exists().where(P.child_id == Child.id, P.kind == "termly", P.term == term_key, P.on_time.is_(True))


def _termly(session: Session, period_: Period, now: datetime) -> list[dict]:
    """Each term of the period begun by now: children in care in it, and those with a review completed in it.
    One pass over the children, joined to the terms' reviews (`ix_pep_projection_kind_term`), whatever
    the number of terms."""
    terms = [t for t in period_.terms if t.start <= calendar.to_london(now).date()]
    if not terms:
        return []
    keys = [_term_key(t) for t in terms]
    reviews = (select(P.child_id, *(func.max(case((P.term == key, 1), else_=0)).label(f"r{n}") for n, key in enumerate(keys)))
               .where(P.kind == "termly", P.term.in_(keys), P.on_time.is_(True)).group_by(P.child_id).subquery())
    counts = []
    for n, term in enumerate(terms):
        in_care = _in_care(term.start, term.end, False)
        counts += [func.sum(case((in_care, 1), else_=0)),
                   func.sum(case((in_care & (reviews.c[f"r{n}"] == 1), 1), else_=0))]
    row = session.execute(select(*counts).select_from(Child).outerjoin(reviews, reviews.c.child_id == Child.id)).one()
    found = []
    for n, term in enumerate(terms):
        in_care, reviewed = int(row[2 * n] or 0), int(row[2 * n + 1] or 0)
        found.append({"term": keys[n], "label": f"{term.name.strip()} term {term.academic_year}",
                      "in_care": in_care, "reviewed": reviewed, "not_reviewed": in_care - reviewed})
    return found


# ---- drill-down: the children behind a figure ---------------------------------------------------

@dataclass(frozen=True)
class Drill:
    """The list behind one figure: `figure` (a key of PEP_FIGURES, INITIAL_FIGURES, TERMLY_FIGURES or
    "children"), a group of a breakdown (`by`, `value`) and for termly figures the term."""

    figure: str
    by: str | None = None
    value: str | None = None
    term: str | None = None


def drill_down(session: Session, period_: Period, now: datetime, drill: Drill, visible, limit: int = 2000) -> list[dict]:
    """The rows behind a figure, only of children `visible` (a clause on Child) admits, by child name."""
    year = _year_start(period_)
    if drill.figure in PEP_FIGURES or drill.figure in INITIAL_FIGURES:
        clause = {**_pep_figures(now), **_initial_figures(now)}[drill.figure]
        kind = "initial" if drill.figure in INITIAL_FIGURES else None
        query, key, _label = _dimension(select(P, Child.name, Child.school).join(Child, Child.id == P.child_id),
                                        drill.by, True, year)
        query = query.where(_peps_in(period_, now, kind), clause, _matches(key, drill.by, drill.value), visible)
        return [_pep_row(row.PepProjection, row.name, row.school, now)
                for row in session.execute(query.order_by(Child.name, P.due_at).limit(limit))]
    if drill.figure == "children":
        query, key, _label = _dimension(select(Child), drill.by, False, year)
        query = query.where(_in_care(period_.start, period_.end, period_.now), _matches(key, drill.by, drill.value), visible)
        return [_child_row(child) for child in session.scalars(query.order_by(Child.name).limit(limit))]
    if drill.figure in TERMLY_FIGURES and term_by_label(drill.term or "") is not None:
        term = term_by_label(drill.term)
        reviewed = _reviewed(drill.term)
        which = {"in_care": literal(True), "reviewed": reviewed, "not_reviewed": ~reviewed}[drill.figure]
        query = select(Child).where(_in_care(term.start, term.end, False), which, visible)
        return [_child_row(child) for child in session.scalars(query.order_by(Child.name).limit(limit))]
    return []


def _pep_row(pep: PepProjection, name: str, school: str | None, now: datetime) -> dict:
    overdue = pep.signed_off_at is None and pep.due_at is not None and pep.due_at < now
    return {"child_id": pep.child_id, "child_name": name, "school": school, "instance_id": pep.instance_id,
            "process": pep.process_name, "kind": pep.kind, "term": pep.term, "due_at": pep.due_at,
            "held_on": pep.held_on, "signed_off_at": pep.signed_off_at, "on_time": pep.on_time, "status": pep.status,
            "days_overdue": (now - pep.due_at).days if overdue else None, "entered_care": pep.entered_care,
            "start_by": pep.start_by, "ready_by": pep.ready_by, "started_at": pep.started_at}


def _child_row(child: Child) -> dict:
    return {"child_id": child.id, "child_name": child.name, "school": child.school, "in_care": child.in_care,
            "entered_care": child.entered_care, "left_care_on": child.left_care_on}


# ---- overdue work now -------------------------------------------------------------------------

@dataclass(frozen=True)
class OverdueFilter:
    """The overdue list's filters: a role (key), a person (user id), a school, at least so many days."""

    role: str | None = None
    person: int | None = None
    school: str | None = None
    min_days: int | None = None


def overdue_tasks(session: Session, now: datetime, visible, chosen: OverdueFilter = OverdueFilter(),
                  limit: int = 1000) -> list[dict]:
    """Every open task past its due date, of children `visible` admits, longest overdue first (then by
    child); with its
    holder (or pool), and whom the sweep escalated it to, and when."""
    holder, told = aliased(User), aliased(User)
    query = (select(OpenTask, Child.name.label("child_name"), Child.school, holder.name.label("holder"),
                    told.name.label("escalated_to"))
             .join(Child, Child.id == OpenTask.child_id)
             .outerjoin(holder, holder.id == OpenTask.assignee_id)
             .outerjoin(told, told.id == OpenTask.escalated_to_user_id)
             .where(OpenTask.due_at < now, visible))
    if chosen.role:
        query = query.where(OpenTask.role_key == chosen.role)
    if chosen.person:
        query = query.where(OpenTask.assignee_id == chosen.person)
    if chosen.school:
        query = query.where(Child.school == chosen.school)
    if chosen.min_days:
        query = query.where(OpenTask.due_at <= now - timedelta(days=chosen.min_days))
    return [{"task": row.OpenTask, "child_id": row.OpenTask.child_id, "child_name": row.child_name,
             "school": row.school, "holder": row.holder, "escalated_to": row.escalated_to,
             "days_overdue": (now - row.OpenTask.due_at).days}
            for row in session.execute(query.order_by(OpenTask.due_at, Child.name, OpenTask.id).limit(limit))]


def overdue_choices(session: Session, now: datetime, visible) -> dict:
    """What the overdue list can be filtered by: the roles, holders and schools of overdue tasks."""
    base = select().select_from(OpenTask).join(Child, Child.id == OpenTask.child_id).where(OpenTask.due_at < now, visible)
    return {"roles": sorted(session.scalars(base.add_columns(OpenTask.role_key).distinct())),
            "people": session.execute(base.add_columns(User.id, User.name).join(User, User.id == OpenTask.assignee_id)
                                      .distinct().order_by(User.name)).all(),
            "schools": sorted(s for s in session.scalars(base.add_columns(Child.school).distinct()) if s)}


def _chosen_tasks(session: Session, task_ids: list[str], now: datetime, visible) -> list[OpenTask]:
    """The overdue tasks among `task_ids` that the person may see, their instances locked in id order
    (instance first, as every step locks: the child's history comes after)."""
    chosen = (select(OpenTask).join(Child, Child.id == OpenTask.child_id)
              .where(OpenTask.id.in_(task_ids[:500]), OpenTask.due_at < now, visible))
    for instance_id in sorted(set(session.scalars(chosen.with_only_columns(OpenTask.instance_id)))):
        session.execute(select(Instance.id).where(Instance.id == instance_id).with_for_update())
    # read again once locked: a step that committed meanwhile may have closed a task
    return session.scalars(chosen.order_by(OpenTask.instance_id, OpenTask.id)
                           .execution_options(populate_existing=True)).all()


def remind(session: Session, task_ids: list[str], actor: str, now: datetime, visible) -> int:
    """Remind the holder (or the pool) of each chosen overdue task: a notification each, and
    `task_reminded` in the child's history, by whom. Returns how many were reminded."""
    by_child: dict[str, list[dict]] = {}
    tasks = _chosen_tasks(session, task_ids, now, visible)
    names = dict(session.execute(select(Child.id, Child.name).where(Child.id.in_({t.child_id for t in tasks}))).all())
    for task in tasks:
        due = calendar.long_date(task.due_at)
        session.add(Notification(
            user_id=task.assignee_id, role_key=None if task.assignee_id else task.role_key, child_id=task.child_id,
            task_id=task.id, kind="task_reminder", created_at=now, sent_at=None,
            subject=one_line(f"Reminder: {task.name} for {names[task.child_id]} was due {due}"),
            body=f"{task.name} for {names[task.child_id]} was due {due} and is not done yet. The Virtual School "
                 "asks you to complete it as soon as you can."))
        task.reminded_at = now
        by_child.setdefault(task.child_id, []).append(_entry(
            task, "task_reminded", actor, task=task.spec_id, name=task.name, role=task.role_key,
            due_at=task.due_at.isoformat(), user_id=task.assignee_id, pool=None if task.assignee_id else task.role_key))
    for child_id, entries in by_child.items():
        history.append(session, child_id, entries, now)
    session.flush()
    return len(tasks)


def assignable_people(session: Session, role_key: str) -> list[tuple[int, str]]:
    """The active holders of a council-wide role: whom a pooled task of it may be given to."""
    return session.execute(select(User.id, User.name).join(UserRole, UserRole.user_id == User.id)
                           .where(UserRole.role_key == role_key, User.active).order_by(User.name)).all()


def assign(session: Session, task_ids: list[str], user_id: int, actor: str, now: datetime, visible) -> tuple[int, int]:
    """Give each chosen overdue pooled task to `user_id`, who must hold its role (a claim on their behalf,
    `task_claimed` with by whom in the history). Returns (given, refused: not pooled or not their role)."""
    held = set(session.scalars(select(UserRole.role_key).where(UserRole.user_id == user_id)))
    active = session.scalar(select(User.active).where(User.id == user_id))
    given, refused, by_child = 0, 0, {}
    for task in _chosen_tasks(session, task_ids, now, visible):
        if not active or not task.pooled or task.role_key not in held:
            refused += 1
            continue
        if task.assignee_id != user_id:
            by_child.setdefault(task.child_id, []).append(_entry(
                task, "task_claimed", actor, name=task.name, user_id=user_id, previous_user_id=task.assignee_id,
                assigned_by=actor))
            task.assignee_id = user_id
        given += 1
    for child_id, entries in by_child.items():
        history.append(session, child_id, entries, now)
    session.flush()
    return given, refused


def _entry(open_task: OpenTask, kind: str, actor: str, **data) -> dict:
    return {"kind": kind, "actor": actor, "instance_id": open_task.instance_id, "task_id": open_task.id, "data": data}
