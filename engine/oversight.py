"""The Virtual School's timeliness figures for a period (engine/periods.py), read from the PEP
projection (engine/projection.py, which says what "on time" is), with breakdowns by school, person,
age band, process and area, counted, ordered and paged by the database. The children behind a figure
are engine/drilldown.py's; the overdue work now, engine/overduework.py's.

Called by the web app's oversight pages (webui/oversight.py) and the benchmark (benchmarks/oversight.py).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ColumnElement, and_, case, false, func, literal, null, select, true, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import True_

from . import calendar, lists
from .groupkeys import TEAM_COLUMNS, reviewed_mark
from .models import (
    Child,
    PepProjection,
    User,
)
from .periods import Period, _term_key, period, periods  # noqa: F401 - the periods the figures are asked for
from .projection import ENDED, rules

# ---- what is counted --------------------------------------------------------------------------

P = PepProjection
DIMENSIONS = {
    "school": "School",
    "social_worker": "Social worker",
    "designated_teacher": "Designated teacher",
    "education_adviser": "Education adviser",
    "age_band": "Age band",
    "process": "Process",
    "area": "In or out of area",
}
BREAKDOWN_PAGE = lists.PAGE_SIZE  # groups a page of a breakdown shows
TEAM_DIMENSIONS = {
    "social_worker": "social_worker",
    "designated_teacher": "designated_teacher",
    "education_adviser": "vs_education_adviser",
}
PEP_FIGURES = {
    "due": "PEPs due",
    "held": "Meeting held",
    "on_time": "Completed on time",
    "late": "Completed late",
    "overdue": "Overdue now",
    "not_yet_due": "Not yet due",
}
INITIAL_FIGURES = {
    "initial_due": "Initial PEPs due",
    "initial_started": "Started within {start} working days",
    "initial_ready": "Ready within {ready} working days",
    "initial_late": "Not ready, past {ready} working days",
    "initial_unknown": "Date entered care not recorded",
}
TERMLY_FIGURES = {
    "in_care": "Children in care in the term",
    "reviewed": "PEP review completed in the term",
    "not_reviewed": "No PEP review completed in the term",
}


def _pep_figures(now: datetime) -> dict:
    signed = P.signed_off_at.is_not(None)
    return {
        "due": true(),
        "held": P.held_on.is_not(None),
        "on_time": signed & P.on_time.is_(True),
        "late": signed & P.on_time.is_(False),
        "overdue": ~signed & (P.due_at < now),
        "not_yet_due": ~signed & (P.due_at >= now),
    }


def _initial_figures(now: datetime) -> dict:
    return {
        "initial_due": true(),
        "initial_started": P.started_at <= P.start_by,
        "initial_ready": P.signed_off_at <= P.ready_by,
        "initial_late": P.signed_off_at.is_(None) & (P.ready_by < now),
        "initial_unknown": P.entered_care.is_(None),
    }


def _count(clause):
    """How many rows of the group the clause holds for (an aggregate's filter: no expression per row
    to sum; `True` counts them all)."""
    return func.count() if isinstance(clause, True_) else func.count().filter(clause)


def _peps_in(period_: Period, now: datetime, kind: str | None = None):
    """PEPs due in the period (for now: in the current term, and any overdue now), not withdrawn."""
    due: ColumnElement[bool] = P.due_at.between(period_.start_at, period_.end_at)
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


def _dimension(by: str | None, pep: bool, year_start: date):
    """A breakdown's group `by`: its (key, label) expressions, on the PEP's row (`pep`) or the child's,
    each of which keeps the child's keys (engine/groupkeys.py): no join to the child or their team."""
    kept = P if pep else Child
    if by in TEAM_DIMENSIONS:  # the person's name: read once a group (`_groups`, `_by_name`)
        return getattr(kept, TEAM_COLUMNS[TEAM_DIMENSIONS[by]]), null()
    if by == "school":
        return kept.school, kept.school
    if by == "area":
        flag = kept.in_area
        return (
            case((flag.is_(True), "in"), (flag.is_(False), "out"), else_=None),
            case((flag.is_(True), "In area"), (flag.is_(False), "Out of area"), else_=None),
        )
    if by == "age_band":
        band = P.age_band if pep else _age_band_of_child(year_start)
        return band, band
    if by == "process":
        return (P.process_id if pep else literal(None)), (P.process_name if pep else literal(None))
    return literal("all"), literal("All children")


def _matches(key, by: str | None, value: str | None):
    """The rows of one group of a breakdown ("" is the group with no value)."""
    if by not in DIMENSIONS:
        return literal(True)
    if value is None or value == "":
        return key.is_(None)
    if by in TEAM_DIMENSIONS:
        return key == int(value) if value.isdigit() else false()
    return key == value


def _year_start(period_: Period) -> date:
    return date(int(period_.terms[0].academic_year[:4]), 9, 1)


def timeliness(
    session: Session,
    period_: Period,
    now: datetime,
    by: str | None = None,
    page: int | None = None,
    search: str = "",
    size: int | None = None,
) -> dict:
    """The figures of a period: PEPs (broken down `by` a dimension), initial PEPs and termly reviews.
    Every group of the breakdown, by name; or with `page`, that page of those whose name holds `search`
    (`size` a page, else BREAKDOWN_PAGE) as `page` (lists.Page), by a person the most overdue first
    (then the most late, then by name), so a council of thousands of social workers shows first whom
    to ask. Counted, merged, ordered and paged by the database: a page reads its rows alone. A page
    of a breakdown by a dimension of the child also gives the termly figures of its groups
    (`termly_by`, as `termly_by()` would): counted in the same pass as the council's when the groups
    are few (schools, age bands), for the page's alone when they are people (thousands)."""
    by = by if by in DIMENSIONS else None
    wanted = " ".join(search.split()) if page is not None else ""
    groups = _groups(period_, now, by, wanted)
    order = [groups.c.label.is_(None), func.lower(groups.c.label), groups.c.key]
    if page is not None and by in TEAM_DIMENSIONS:
        order = [groups.c.overdue.desc(), groups.c.late.desc(), *order]
    query = select(groups).order_by(*order)
    termly_by_group = page is not None and by is not None and by != "process"  # the child's groups
    # few groups (a school, an age band): the council's termly figures summed from all of them; a
    # person's groups are thousands: the council's counted alone, and the page's groups by their keys
    terms = _termly_groups(session, period_, now, by) if termly_by_group and by not in TEAM_DIMENSIONS else None
    found: dict = {"initial": _initial(session, period_, now), "termly": _termly(session, period_, now, terms)}
    if page is None:
        rows, chosen = [_group(row) for row in session.execute(query)], None
    else:
        if wanted and by not in TEAM_DIMENSIONS:
            query = query.where(func.lower(groups.c.label).like(lists._like(wanted), escape="\\"))
        chosen = _page_of(session, query, max(page, 1), size or BREAKDOWN_PAGE)
        rows = chosen.rows
    if not termly_by_group or by is None:
        return {**found, "rows": rows, "page": chosen, "termly_by": None}
    keys = [row["key"] for row in rows]
    termly_rows = _termly_by(session, by, terms or _termly_groups(session, period_, now, by, keys), keys)
    return {**found, "rows": rows, "page": chosen, "termly_by": termly_rows}


def _page_of(session: Session, query, number: int, size: int) -> lists.Page:
    """Page `number` of the groups, with how many there are, in one reading of them (a page past the
    last: the last, read again)."""
    rows = session.execute(
        query.add_columns(func.count().over().label("total")).limit(size).offset((number - 1) * size)
    ).all()
    if not rows and number > 1:
        last = lists.Page([], session.scalar(select(func.count()).select_from(query.subquery())) or 0, 1, size).pages
        return _page_of(session, query, last, size) if last < number else lists.Page([], 0, 1, size)
    return lists.Page([_group(row) for row in rows], rows[0].total if rows else 0, number, size)


def _groups(period_: Period, now: datetime, by: str | None, search: str = ""):
    """The breakdown's groups (key, label, children in care, each PEP figure): the PEPs due and the
    children in care counted apart, then put together by group (children is null by process). By a
    person, only those whose name holds `search` (found before counting: the planner knows people's
    names, not how many groups a count will give)."""
    figures, year = _pep_figures(now), _year_start(period_)
    key, label = _dimension(by, True, year)
    parts = [
        select(
            key.label("key"),
            func.max(label).label("label"),
            null().label("children"),
            *(_count(clause).label(name) for name, clause in figures.items()),
        )
        .where(_peps_in(period_, now), _named(key, by, search))
        .group_by(key)
    ]
    if by != "process":
        ckey, clabel = _dimension(by, False, year)
        # one row per child: a child has one holder of a role at most (the key of case_team_member)
        parts.append(
            select(
                ckey.label("key"),
                func.max(clabel).label("label"),
                func.count(Child.id).label("children"),
                *(literal(0).label(name) for name in figures),
            )
            .where(_in_care(period_.start, period_.end, period_.now), _named(ckey, by, search))
            .group_by(ckey)
        )
    both = union_all(*parts).subquery()
    groups = (
        select(
            both.c.key,
            func.max(both.c.label).label("label"),
            func.max(both.c.children).label("children"),
            *(func.sum(both.c[name]).label(name) for name in figures),
        )
        .group_by(both.c.key)
        .subquery()
    )
    if by not in TEAM_DIMENSIONS:
        return groups
    return (
        select(groups.c.key, User.name.label("label"), groups.c.children, *(groups.c[name] for name in figures))
        .outerjoin(User, User.id == groups.c.key)
        .subquery()
    )


def _named(key, by: str | None, search: str):
    """The people whose name holds `search` (anyone without one)."""
    if not search or by not in TEAM_DIMENSIONS:
        return literal(True)
    return key.in_(select(User.id).where(func.lower(User.name).like(lists._like(search), escape="\\")))


def _group(row) -> dict:
    return {
        "key": row.key,
        "label": row.label,
        "children": row.children,
        **{name: int(getattr(row, name) or 0) for name in PEP_FIGURES},
    }


def _initial(session: Session, period_: Period, now: datetime) -> dict:
    figures = _initial_figures(now)
    row = session.execute(
        select(*(_count(clause).label(name) for name, clause in figures.items())).where(
            _peps_in(period_, now, "initial")
        )
    ).one()
    return {name: int(getattr(row, name) or 0) for name in figures}


def _terms_begun(period_: Period, now: datetime) -> list:
    return [t for t in period_.terms if t.start <= calendar.to_london(now).date()]


def _termly_groups(session: Session, period_: Period, now: datetime, by: str | None, keys: list | None = None):
    """Each term of the period begun by now, its children in care and those with a review completed in
    it, by group of the breakdown `by` (None: one group, the council; only the groups `keys` names,
    when given): one pass over the children, whatever the number of terms, each child's reviews read
    from the terms kept on their row (engine/groupkeys.py), not looked up among each term's reviews.
    (terms, rows of (key, label, then in care and reviewed for each term))."""
    terms = _terms_begun(period_, now)
    if not terms:
        return [], []
    counts = []
    for term in terms:
        in_care = _in_care(term.start, term.end, False)
        reviewed = Child.reviewed_terms.contains(reviewed_mark(_term_key(term)), autoescape=True)
        counts += [_count(in_care), _count(in_care & reviewed)]
    key, label = _dimension(by, False, _year_start(period_))
    query = _only(select(key.label("key"), func.max(label).label("label"), *counts).select_from(Child), key, keys)
    return terms, session.execute(query.group_by(key) if by else query).all()


def _term_label(term) -> str:
    return f"{term.name.strip()} term {term.academic_year}"


def _term_figures(in_care, reviewed) -> dict:
    in_care, reviewed = int(in_care or 0), int(reviewed or 0)
    return {"in_care": in_care, "reviewed": reviewed, "not_reviewed": in_care - reviewed}


def _termly(session: Session, period_: Period, now: datetime, groups: tuple | None = None) -> list[dict]:
    """Each term of the period begun by now: children in care in it, and those with a review completed
    in it; summed from the breakdown's `groups` when given (each child is in one group), else counted."""
    terms, rows = groups or _termly_groups(session, period_, now, None)
    return [
        {
            "term": _term_key(term),
            "label": _term_label(term),
            **_term_figures(sum(row[2 + 2 * n] or 0 for row in rows), sum(row[3 + 2 * n] or 0 for row in rows)),
        }
        for n, term in enumerate(terms)
    ]


def _termly_by(session: Session, by: str, groups: tuple, keys: list | None = None) -> list[dict]:
    """The termly figures of the breakdown's `groups`, term by term (only the groups `keys` names, when
    given), each term's groups in order of their names (a person's read once)."""
    terms, rows = groups
    wanted = None if keys is None else set(keys)
    rows = [row for row in rows if wanted is None or row.key in wanted]
    named = _by_name(session, by, [{"key": row.key, "label": row.label, "row": row} for row in rows])
    return [
        {
            "term": _term_key(term),
            "label": _term_label(term),
            "rows": [
                {"key": g["key"], "label": g["label"], **_term_figures(g["row"][2 + 2 * n], g["row"][3 + 2 * n])}
                for g in named
            ],
        }
        for n, term in enumerate(terms)
    ]


def initial_by(session: Session, period_: Period, now: datetime, by: str, keys: list | None = None) -> list[dict]:
    """The initial-PEP figures of a period broken down `by` a dimension: a row per group (only the
    groups `keys` names, when given: those on a page of the breakdown)."""
    figures = _initial_figures(now)
    key, label = _dimension(by, True, _year_start(period_))
    query = _only(select(), key, keys).add_columns(
        key.label("key"),
        func.max(label).label("label"),
        *(_count(clause).label(name) for name, clause in figures.items()),
    )
    rows = [
        {"key": row.key, "label": row.label, **{name: int(getattr(row, name) or 0) for name in figures}}
        for row in session.execute(query.where(_peps_in(period_, now, "initial")).group_by(key))
    ]
    return _by_name(session, by, rows)


def termly_by(session: Session, period_: Period, now: datetime, by: str, keys: list | None = None) -> list[dict]:
    """Each term of the period begun by now, its children in care broken down `by` a dimension of the
    child (not "process": a term's review is the child's, whichever process gave it); only the groups
    `keys` names, when given."""
    return _termly_by(session, by, _termly_groups(session, period_, now, by, keys))


def _by_name(session: Session, by: str, rows: list[dict]) -> list[dict]:
    """The groups in order of their names; a person's name read once for the groups (not joined to each row)."""
    if by in TEAM_DIMENSIONS:
        ids = [row["key"] for row in rows if row["key"] is not None]
        names = dict(session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
        rows = [{**row, "label": names.get(row["key"])} for row in rows]
    return sorted(rows, key=lambda g: (g["label"] is None, str(g["label"] or "").casefold()))


def _only(query, key, keys: list | None):
    """The query kept to the groups `keys` names (None: every group; a None key: the group not recorded)."""
    if keys is None:
        return query
    named = [k for k in keys if k is not None]
    return query.where(key.in_(named) | key.is_(None) if None in keys else key.in_(named))
