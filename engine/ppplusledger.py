"""The Pupil Premium Plus ledger's views: a PEP's and a child's figures (what is asked for and decided
is the latest line of each question or element, what is released adds up), each financial year's
allocation (`config/ppplus.yaml`), and the ledger of a year (its figures, its children, its lines), for
the oversight pages (webui/ledger.py), counted by the database from the kept lines. The lines themselves are recorded by `ppplus`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Select, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from . import CONFIG
from .lists import PAGE_SIZE, Page
from .models import Child, PpplusEntry
from .ppplus import as_pence, financial_year, latest

DEFAULT_CONFIG = CONFIG / "ppplus.yaml"


def figures(lines: list[dict]) -> dict[str, int]:
    """A PEP's (or any set of PEPs') requested, approved and released pence, by `latest` for requests
    and decisions (per instance), summed for releases."""
    by_instance: dict = defaultdict(list)
    for line in lines:
        by_instance[(line["child_id"], line["instance_id"])].append(line)
    total = {"requested": 0, "approved": 0, "released": 0}
    for group in by_instance.values():
        total["requested"] += sum(x["amount"] for x in latest(group, "requested"))
        total["approved"] += sum(x["amount"] for x in latest(group, "decided"))
        total["released"] += sum(x["amount"] for x in group if x["entry"] == "released")
    return total


# ---- the council's allocation ----------------------------------------------------------------------


@dataclass(frozen=True)
class Allocation:
    """One financial year's PP+ per child, the Virtual School's top-slice, the termly release and cap."""

    year: str
    per_child: int  # pence
    top_slice: int
    termly: dict[str, int] = field(default_factory=dict)
    cap: int | None = None  # the most a child's school is released in the year, beyond exceptional funding

    @property
    def devolved(self) -> int:
        """What each child's school may be released in the year: the allocation less the top-slice."""
        return self.per_child - self.top_slice


@cache
def allocations(path: str | None = None) -> dict[str, Allocation]:
    """The council's allocations by financial year (config/ppplus.yaml)."""
    values = yaml.safe_load(Path(path or DEFAULT_CONFIG).read_text()) or {}
    found = {}
    for year, spec in (values.get("financial_years") or {}).items():
        found[str(year)] = Allocation(
            str(year),
            as_pence(spec["per_child"]),
            as_pence(spec.get("top_slice", 0)),
            {term: as_pence(amount) for term, amount in (spec.get("termly") or {}).items()},
            as_pence(spec["cap"]) if spec.get("cap") is not None else None,
        )
    return found


def allocation(year: str, path: str | None = None) -> Allocation | None:
    return allocations(path).get(year)


# ---- the ledger's views ----------------------------------------------------------------------------
# Counted by the database from the kept lines (`ppplus_entry`), as `figures` counts them: of each
# request and decision the lines of the latest step to answer its question or element in its PEP (in
# the year, for a child's figures; in the school and term, for theirs), every release. One ordered
# pass over `ix_ppplus_entry_standing` gives both; the children are read 50 a page.

KEYS = ("requested", "approved", "released")


@dataclass
class ChildYear:
    """One child's PP+ in a financial year, against what their school may be released."""

    child_id: str
    name: str
    school: str
    requested: int = 0
    approved: int = 0
    released: int = 0
    flags: list[str] = field(default_factory=list)


@dataclass
class Ledger:
    """A financial year's figures: its allocation, totals, how many children it counts (each in care,
    or with a line in the year) and how many are flagged, totals by school and term, how many lines;
    and the children with lines whose flags differ from those of a child with none (`unlike`)."""

    year: str
    allocation: Allocation | None
    totals: dict[str, int]
    counted: int
    flagged: int
    by_school_term: list[tuple[str, str, dict[str, int]]]  # (school, term, figures)
    lines: int
    unlike: list[str] | None = None  # None: too many to name (more than LISTED)

    @property
    def allocated(self) -> int:
        return self.allocation.per_child * self.counted if self.allocation else 0

    def flags(self, figure: dict[str, int] | None) -> list[str]:
        """Why a child is to be acted on before 31 March: money approved and not released, devolved
        money unspent, more released than the cap."""
        return flags(figure or dict.fromkeys(KEYS, 0), self.allocation)

    @property
    def unlined_flagged(self) -> bool:
        """Whether a child with no line in the year is flagged (their devolved money unspent)."""
        return bool(self.flags(None))


LISTED = 1000  # children named in a statement at most; beyond, they are found as the rows are read


def flags(figure: dict[str, int], share: Allocation | None) -> list[str]:
    """A child's flags from their figures in the year, against the year's allocation."""
    found = []
    if figure["approved"] > figure["released"]:
        found.append("approved, not released")
    if share and figure["released"] < share.devolved:
        found.append("unspent")
    if share and share.cap is not None and figure["released"] > share.cap:
        found.append("over the cap")
    return found


def _flagged(figures, share: Allocation | None):
    """The test of `flags` in SQL, over a child's figures."""
    test = figures.c.approved > figures.c.released
    if share:
        test = test | (figures.c.released < share.devolved)
        if share.cap is not None:
            test = test | (figures.c.released > share.cap)
    return test


def _standing(year: str, child_ids: list[str] | None = None):
    """The year's lines (of `child_ids`), each with what it adds to a child's figures in the year and
    to its school's and term's: a request or decision its amount when it is of the latest step to
    answer its question or element in its PEP (in the year; in the school and term), a release always."""
    line = PpplusEntry
    key = [line.child_id, line.instance_id, line.entry, line.source]
    in_year = func.max(line.step_seq).over(partition_by=key)
    in_term = func.max(line.step_seq).over(partition_by=[*key, line.school, line.term])
    query = select(
        line.child_id,
        line.school,
        line.term,
        line.entry,
        line.step_seq,
        line.amount_pence,
        in_year.label("in_year"),
        in_term.label("in_term"),
    ).where(line.financial_year == year)
    if child_ids is not None:
        query = query.where(line.child_id.in_(child_ids))
    lines = query.cte("standing")

    def adds(entry: str, latest=None):
        test = lines.c.entry == entry
        if latest is not None:
            test = test & (lines.c.step_seq == latest)
        return func.coalesce(func.sum(case((test, lines.c.amount_pence), else_=0)), 0)

    return lines, adds


def _by_child(lines, adds) -> Select:
    """Each child's figures in the year, from `_standing`."""
    return select(
        lines.c.child_id,
        adds("requested", lines.c.in_year).label("requested"),
        adds("decided", lines.c.in_year).label("approved"),
        adds("released").label("released"),
    ).group_by(lines.c.child_id)


def figures_of(session: Session, year: str, child_ids: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Each child's figures in the year (of `child_ids`, else of every child with a line)."""
    return {
        row.child_id: {key: int(row[n + 1]) for n, key in enumerate(KEYS)}
        for row in session.execute(_by_child(*_standing(year, child_ids)))
    }


def _with_lines(year: str) -> Select:
    return select(PpplusEntry.child_id).where(PpplusEntry.financial_year == year)


def ledger(session: Session, year: str) -> Ledger:
    """The financial year's figures: each child in care (or with a line in the year) against the
    devolved allocation, counted and flagged when money is unspent or approved and not released;
    totals, and by school and term; in one pass over the year's lines, counted by the database."""
    share = allocation(year)
    lines, adds = _standing(year)
    children = _by_child(lines, adds).cte("children")
    flagged = _flagged(children, share)
    unlined_flagged = bool(flags(dict.fromkeys(KEYS, 0), share))
    unlike = ~flagged if unlined_flagged else flagged
    school = func.coalesce(lines.c.school, "")
    groups = select(
        literal("group"),
        school,
        lines.c.term,
        adds("requested", lines.c.in_term),
        adds("decided", lines.c.in_term),
        adds("released"),
    ).group_by(school, lines.c.term)
    whole = select(
        literal("all"),
        literal(""),
        literal(""),
        *(func.coalesce(func.sum(children.c[key]), 0) for key in KEYS),
    )
    counts = select(
        literal("counts"),
        literal(""),
        literal(""),
        func.count(),
        func.coalesce(func.sum(case((flagged, 1), else_=0)), 0),
        literal(0),
    ).select_from(children)
    named = (
        select(literal("unlike"), children.c.child_id, literal(""), literal(0), literal(0), literal(0))
        .where(unlike)
        .limit(LISTED + 1)
    )
    totals: dict[str, int] = {}
    by_group: dict[tuple[str, str], dict[str, int]] = {}
    with_lines, flagged_lined, found_unlike = 0, 0, []
    result: Any = session.execute(union_all(groups, whole, counts, named.subquery().select()))
    for kind, key, term, *amounts in result:
        pence = [int(amount) for amount in amounts]
        if kind == "group":
            figure = by_group.setdefault((key or "No school", term), dict.fromkeys(KEYS, 0))
            for name, amount in zip(KEYS, pence, strict=True):
                figure[name] += amount
        elif kind == "all":
            totals = dict(zip(KEYS, pence, strict=True))
        elif kind == "counts":
            with_lines, flagged_lined = pence[0], pence[1]
        else:
            found_unlike.append(key)
    in_care = session.scalar(select(func.count()).select_from(Child).where(Child.in_care)) or 0
    left_with_lines = (
        session.scalar(select(func.count()).where(Child.in_care.is_(False), Child.id.in_(_with_lines(year)))) or 0
    )
    counted = in_care + left_with_lines
    return Ledger(
        year,
        share,
        totals or dict.fromkeys(KEYS, 0),
        counted,
        flagged_lined + ((counted - with_lines) if unlined_flagged else 0),
        sorted((school, term, figure) for (school, term), figure in by_group.items()),
        session.scalar(select(func.count()).where(PpplusEntry.financial_year == year)) or 0,
        found_unlike if len(found_unlike) <= LISTED else None,
    )


def _children(found: Ledger) -> Select:
    """The ledger's children by name: in care, or with a line in the year."""
    return (
        select(Child.id, Child.name, Child.school)
        .where(Child.in_care | Child.id.in_(_with_lines(found.year)))
        .order_by(Child.name, Child.id)
    )


def _child_year(found: Ledger, row, figure: dict[str, int] | None) -> ChildYear:
    return ChildYear(
        row.id, row.name, row.school or "No school", **(figure or dict.fromkeys(KEYS, 0)), flags=found.flags(figure)
    )


def children(session: Session, found: Ledger) -> list[ChildYear]:
    """Every child of the ledger by name, with their figures and flags."""
    figures = figures_of(session, found.year)
    return [_child_year(found, row, figures.get(row.id)) for row in session.execute(_children(found))]


def flagged_page(session: Session, found: Ledger, number: int) -> Page:
    """A page of the children flagged, by name (the whole list is for the download)."""
    number = min(max(1, number), max(1, -(-found.flagged // PAGE_SIZE)))
    if found.unlike is None:  # too many children to name: every child read, in order, to the page
        page = [c for c in children(session, found) if c.flags][(number - 1) * PAGE_SIZE :][:PAGE_SIZE]
        return Page(page, found.flagged, number)
    query = _children(found)
    if found.unlined_flagged:  # all but the children with lines not flagged
        query = query.where(Child.id.not_in(found.unlike)) if found.unlike else query
    elif found.unlike:  # only the children with lines flagged
        query = query.where(Child.id.in_(found.unlike))
    else:
        return Page([], 0, 1)
    rows = session.execute(query.limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE)).all()
    figures = figures_of(session, found.year, [row.id for row in rows])
    return Page([_child_year(found, row, figures.get(row.id)) for row in rows], found.flagged, number)


def lines(session: Session, found: Ledger, number: int | None = None) -> list | Page:
    """The year's lines in order, child by child, each with its child's name (`child_name`): every
    one, or a page."""
    query = (
        select(*PpplusEntry.__table__.c, Child.name.label("child_name"))
        .join(Child, Child.id == PpplusEntry.child_id)
        .where(PpplusEntry.financial_year == found.year)
        .order_by(PpplusEntry.child_id, PpplusEntry.seq)
    )
    if number is None:
        return list(session.execute(query))
    number = min(max(1, number), max(1, -(-found.lines // PAGE_SIZE)))
    return Page(list(session.execute(query.limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE))), found.lines, number)


def years(session: Session, today: str) -> list[str]:
    """The financial years the ledger or the configuration knows, newest first, with today's."""
    known = (
        set(session.scalars(select(PpplusEntry.financial_year).distinct()))
        | set(allocations())
        | {financial_year(today)}
    )
    return sorted(known, reverse=True)
