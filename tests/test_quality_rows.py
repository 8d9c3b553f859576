"""The quality page's rows (`quality_entry`, engine/qualityrows.py), kept by each step: they reconcile
with the children's histories after a PEP sent back and rated again, and after a rebuild; the page's
figures counted from them are those the histories give, folded event by event as the page did before
the rows were kept; a child's change of school moves their ratings to the new school.

The council is tests/test_ppplus_ledger.py's: Alex rated Green, Blair rated Red (sent back) then Amber,
Casey rated Amber with a criterion failed (all synthetic).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

from sqlalchemy import select

from engine import calendar, caselife, qualityrows
from engine.models import Child, Event, QualityEntry, User
from engine.ppplus import FormReader
from engine.quality import CRITERION_KEY, RATING_KEY, academic_year_bounds, quality
from tests.test_ppplus_ledger import council, known  # noqa: F401 - the fixtures, shared

YEAR = academic_year_bounds("2025-26")


def from_history(session, start: date, end: date) -> dict:
    """The page's figures folded from the period's history events, as engine/quality.py did before
    the rows were kept: the reference the rows' figures are held to."""
    begin, finish = calendar.to_london(start.isoformat()), calendar.to_london(end.isoformat())
    forms = FormReader(session)
    schools = {c: s or "No school" for c, s in session.execute(select(Child.id, Child.school))}
    names = dict(session.execute(select(User.email, User.name)).all())
    counts: dict[str, dict] = {a: defaultdict(Counter) for a in ("term", "school", "adviser")}
    failed: Counter = Counter()
    assessed: Counter = Counter()
    first: dict = {}
    back: Counter = Counter()
    signed = []
    for event in session.scalars(
        select(Event)
        .where(Event.kind.in_(qualityrows.KINDS), Event.at >= begin, Event.at < finish)
        .order_by(Event.child_id, Event.seq)
    ):
        if event.kind == "task_ready":
            back[event.instance_id] += bool(event.data.get("sent_back"))
            continue
        if event.kind == "pep_signed_off":
            signed.append((event.instance_id, event.at))
            continue
        schema = forms.schema(event.instance_id, event.data["form"]) if event.data.get("form") else None
        answers = event.data.get("data") or {}
        for name, spec in ((schema or {}).get("properties") or {}).items():
            if answers.get(name) is None:
                continue
            if spec.get(RATING_KEY):
                rating = str(answers[name])
                counts["term"][calendar.term_label(event.at)][rating] += 1
                counts["school"][schools.get(event.child_id, "No school")][rating] += 1
                counts["adviser"][names.get(event.actor, event.actor)][rating] += 1
                first.setdefault(event.instance_id, event.at)
            elif spec.get(CRITERION_KEY):
                assessed[spec.get("title") or name] += 1
                failed[spec.get("title") or name] += answers[name] is False
    days: dict[bool, list] = {True: [], False: []}
    for instance_id, at in signed:
        if instance_id in first:
            days[back[instance_id] > 0].append((at - first[instance_id]).total_seconds() / 86400)
    return {
        "by": {a: dict(sorted(c.items())) for a, c in counts.items()},
        "criteria": sorted(((c, failed[c], assessed[c]) for c in assessed), key=lambda c: (-c[1], c[0])),
        "signed_off": len(signed),
        "returned": sum(back[i] > 0 for i, _at in signed),
        "returns": sum(back[i] for i, _at in signed),
        "days": [round(sum(d) / len(d), 1) if d else None for d in (days[False], days[True])],
    }


def figures(session, start: date, end: date) -> dict:
    """The page's figures as quality() counts them from the kept rows."""
    found = quality(session, start, end)
    return {
        "by": {a: found.by(a) for a in ("term", "school", "adviser")},
        "criteria": found.criteria,
        "signed_off": found.signed_off,
        "returned": found.returned,
        "returns": found.returns,
        "days": [found.days_first_time, found.days_returned],
    }


def kept(sessions) -> list[tuple]:
    with sessions() as s:
        return [
            (r.child_id, r.seq, r.kind, r.rating, r.criterion, r.failed, r.school)
            for r in s.scalars(select(QualityEntry).order_by(QualityEntry.child_id, QualityEntry.seq, QualityEntry.id))
        ]


def test_each_step_keeps_the_rows_of_its_ratings_criteria_returns_and_sign_offs(known):  # noqa: F811
    rows = kept(known)
    blair = [(kind, rating, school) for child, _seq, kind, rating, _c, _f, school in rows if child == "Y6"]
    assert [r for r in blair if r[0] != "criterion"] == [
        ("rating", "Red", "Elm Academy"),
        ("sent_back", None, "Elm Academy"),
        ("rating", "Amber", "Elm Academy"),
        ("signed_off", None, "Elm Academy"),
    ]
    failed = {(child, criterion) for child, _seq, kind, _r, criterion, was, _s in rows if kind == "criterion" and was}
    assert failed == {("Y6", "Are the targets SMART?"), ("Y11", "Is the young person's voice evident and central?")}


def test_the_rows_reconcile_with_the_histories_after_sends_back_re_ratings_and_a_rebuild(known):  # noqa: F811
    with known() as s:
        assert qualityrows.differences(s) == []
        before = figures(s, *YEAR)
        assert before == from_history(s, *YEAR)
        assert (before["signed_off"], before["returned"], before["returns"]) == (3, 1, 1)
        assert before["days"][0] is not None and before["days"][1] is not None
    rows = kept(known)
    with known.begin() as s:
        s.execute(QualityEntry.__table__.delete().where(QualityEntry.child_id == "Y6"))  # rows lost
        assert qualityrows.differences(s) != []
        assert qualityrows.rebuild(s) == len(rows)
    assert kept(known) == rows
    with known() as s:
        assert qualityrows.differences(s) == []
        assert figures(s, *YEAR) == before


def test_a_change_of_school_counts_the_childs_ratings_under_the_new_school(known, clock):  # noqa: F811
    with known.begin() as s:
        caselife.edit_details(s, "Y11", {"school": "Oak Primary"}, "admin@council.test", clock.now())
    with known() as s:
        assert figures(s, *YEAR)["by"]["school"] == {
            "Elm Academy": {"Red": 1, "Amber": 1},
            "Oak Primary": {"Green": 1, "Amber": 1},
        }
        assert figures(s, *YEAR) == from_history(s, *YEAR)
        assert qualityrows.differences(s) == []


def test_a_period_without_ratings_counts_nothing(known):  # noqa: F811
    with known() as s:
        found = figures(s, *academic_year_bounds("2024-25"))
    assert found == {
        "by": {"term": {}, "school": {}, "adviser": {}},
        "criteria": [],
        "signed_off": 0,
        "returned": 0,
        "returns": 0,
        "days": [None, None],
    }
