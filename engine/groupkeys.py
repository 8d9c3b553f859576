"""The keys the oversight breakdowns group by (engine/oversight.py), kept where the figures are counted:
on each child's row the holders of the three roles a breakdown names (social worker, designated
teacher, education adviser), and on each of the child's PEP rows (`pep_projection`) the child's school,
whether placed in area and those three people, as they are now, and on each of their quality rows
(`quality_entry`, engine/qualityrows.py) the child's school. So a breakdown reads one table, with
no join to the children or their case teams for each view.

Kept by each writer that changes them, in its own transaction: a change of the child's details
(engine/caselife.py), of their case team (engine/people.py `set_case_team`, which a school's designated
teacher and the import's changes go through), the import's new children (engine/importer.py), and a
PEP's new row as the step writes it (`of_child`, engine/projection.py); set again for every child by
`projection.rebuild` (`pep oversight-rebuild`) and by migration 0022.

Beside them, each child's row keeps the terms in which a PEP review of theirs was completed on time
(`reviewed_terms`), so the termly figures test each child where they are counted rather than look each
child up among each term's reviews: added by the step that signs a review off in time (`reviewed`,
engine/projection.py), set again from the PEPs' rows by `rereview` (rebuild, a re-projection, migration
0024).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import Session

from .models import CaseTeamMember, Child, PepProjection, QualityEntry

_CHILD = cast(Table, Child.__table__)
_PEP = cast(Table, PepProjection.__table__)
_MEMBER = cast(Table, CaseTeamMember.__table__)
_QUALITY = cast(Table, QualityEntry.__table__)
# the role a breakdown names → the column that keeps its holder
TEAM_COLUMNS = {
    "social_worker": "social_worker_id",
    "designated_teacher": "designated_teacher_id",
    "vs_education_adviser": "education_adviser_id",
}
CHILD_KEYS = ("school", "in_area", *TEAM_COLUMNS.values())  # a PEP's row keeps these of its child's
KEYS_OF_CHILD = select(*(_CHILD.c[key] for key in CHILD_KEYS)).where(_CHILD.c.id == bindparam("child_id"))
CHUNK = 500


def of_child(session: Session, child_id: str) -> dict:
    """The keys a new PEP row of the child takes (read once the step holds the child's row)."""
    row = session.execute(KEYS_OF_CHILD, {"child_id": child_id}).mappings().first()
    return dict(row) if row else dict.fromkeys(CHILD_KEYS)


def refile(session: Session, child_ids: Iterable[str] | None = None) -> None:
    """Set the kept keys of the children `child_ids` (None: every child) and of each of their PEPs'
    rows from their record and case team as they are now: after a change of school, area or case team."""
    session.flush()  # the ORM's pending changes of the children and teams first
    holders = {
        column: select(_MEMBER.c.user_id)
        .where(_MEMBER.c.child_id == _CHILD.c.id, _MEMBER.c.role_key == role)
        .scalar_subquery()
        for role, column in TEAM_COLUMNS.items()
    }
    # the child's row first, then its PEPs' rows: the order a step locks them in
    peps = _PEP.update().where(_PEP.c.child_id == _CHILD.c.id).values({key: _CHILD.c[key] for key in CHILD_KEYS})
    quality = _QUALITY.update().where(_QUALITY.c.child_id == _CHILD.c.id).values(school=_CHILD.c.school)
    if child_ids is None:
        session.execute(_CHILD.update().values(holders))
        session.execute(peps)
        session.execute(quality)
        return
    ids = sorted(set(child_ids))
    for at in range(0, len(ids), CHUNK):
        chunk = ids[at : at + CHUNK]
        session.execute(_CHILD.update().where(_CHILD.c.id.in_(chunk)).values(holders))
        session.execute(peps.where(_CHILD.c.id.in_(chunk)))
        session.execute(quality.where(_CHILD.c.id.in_(chunk)))


_REVIEWED = _CHILD.c.reviewed_terms
ADD_REVIEWED = (  # every value a parameter: the step's pipeline sends it as it is
    _CHILD.update()
    .where(_CHILD.c.id == bindparam("reviewed_child"))
    .where(_REVIEWED.is_(None) | _REVIEWED.not_like(bindparam("unreviewed"), escape="\\"))
    .values(reviewed_terms=func.coalesce(_REVIEWED, bindparam("bar")) + bindparam("reviewed_term") + bindparam("bar"))
)


def reviewed_mark(term: str) -> str:
    """How a term is written among a child's `reviewed_terms` (between bars: no term holds another)."""
    return f"|{term}|"


def reviewed(child_id: str, term: str) -> tuple:
    """The step's write adding a term to the child's reviewed terms (once): (statement, parameters)."""
    mark = "".join("\\" + c if c in "%_\\" else c for c in reviewed_mark(term))
    return ADD_REVIEWED, {"reviewed_child": child_id, "reviewed_term": term, "bar": "|", "unreviewed": f"%{mark}%"}


def rereview(session: Session, child_ids: Iterable[str] | None = None) -> None:
    """Set the reviewed terms of the children `child_ids` (None: every child) from their PEPs' rows:
    each term with a termly PEP signed off on time (as engine/oversight.py counts a review)."""
    session.flush()
    found = select(_PEP.c.child_id, _PEP.c.term).where(
        _PEP.c.kind == "termly", _PEP.c.term.is_not(None), _PEP.c.on_time.is_(True)
    )
    ids = None if child_ids is None else sorted(set(child_ids))
    chunks = [None] if ids is None else [ids[at : at + CHUNK] for at in range(0, len(ids), CHUNK)]
    for chunk in chunks:
        terms: dict = {}
        for child_id, term in session.execute(found if chunk is None else found.where(_PEP.c.child_id.in_(chunk))):
            terms.setdefault(child_id, set()).add(term)
        clear = _CHILD.update().values(reviewed_terms=None)
        session.execute(clear if chunk is None else clear.where(_CHILD.c.id.in_(chunk)))
        if terms:
            session.connection().execute(
                _CHILD.update().where(_CHILD.c.id == bindparam("kept_child")),
                [{"kept_child": c, "reviewed_terms": "|" + "|".join(sorted(t)) + "|"} for c, t in terms.items()],
            )
