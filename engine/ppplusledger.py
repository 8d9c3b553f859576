"""The Pupil Premium Plus ledger's views: a PEP's and a child's figures (what is asked for and decided
is the latest line of each question or element, what is released adds up), each financial year's
allocation (`config/ppplus.yaml`), and the ledger of a year, child by child, for the oversight pages
(webui/ledger.py). The lines themselves are recorded by `ppplus`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import CONFIG
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
    year: str
    allocation: Allocation | None
    children: list[ChildYear]
    by_school_term: list[tuple[str, str, dict[str, int]]]  # (school, term, figures)
    lines: list[PpplusEntry]

    @property
    def totals(self) -> dict[str, int]:
        return {key: sum(getattr(c, key) for c in self.children) for key in ("requested", "approved", "released")}

    @property
    def allocated(self) -> int:
        return self.allocation.per_child * len(self.children) if self.allocation else 0


def ledger(session: Session, year: str) -> Ledger:
    """The financial year's ledger: each child in care (or with a line in the year) against the
    devolved allocation, flagged when money is unspent or approved and not released; totals by school
    and term; the lines, in order."""
    rows = list(
        session.scalars(
            select(PpplusEntry)
            .where(PpplusEntry.financial_year == year)
            .order_by(PpplusEntry.child_id, PpplusEntry.seq)
        )
    )
    lines = [_line(row) for row in rows]
    with_lines = {row.child_id for row in rows}
    children = session.execute(
        select(Child.id, Child.name, Child.school).where(Child.in_care | Child.id.in_(with_lines)).order_by(Child.name)
    ).all()
    share = allocation(year)
    found = []
    for child in children:
        figure = figures([line for line in lines if line["child_id"] == child.id])
        entry = ChildYear(
            child.id,
            child.name,
            child.school or "No school",
            figure["requested"],
            figure["approved"],
            figure["released"],
        )
        if entry.approved > entry.released:
            entry.flags.append("approved, not released")
        if share and entry.released < share.devolved:
            entry.flags.append("unspent")
        if share and share.cap is not None and entry.released > share.cap:
            entry.flags.append("over the cap")
        found.append(entry)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row, line in zip(rows, lines, strict=True):
        groups[(row.school or "No school", row.term)].append(line)
    return Ledger(
        year, share, found, [(school, term, figures(group)) for (school, term), group in sorted(groups.items())], rows
    )


def _line(row: PpplusEntry) -> dict:
    return {
        "child_id": row.child_id,
        "instance_id": row.instance_id,
        "entry": row.entry,
        "source": row.source,
        "step_seq": row.step_seq,
        "amount": row.amount_pence,
    }


def years(session: Session, today: str) -> list[str]:
    """The financial years the ledger or the configuration knows, newest first, with today's."""
    known = (
        set(session.scalars(select(PpplusEntry.financial_year).distinct()))
        | set(allocations())
        | {financial_year(today)}
    )
    return sorted(known, reverse=True)
