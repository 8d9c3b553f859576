"""The keys the oversight breakdowns group by, kept on each child's row and each PEP's row
(engine/groupkeys.py), equal what the children's records and case teams say now after every writer
that changes them: a change of school or area, a new social worker, an import, a rebuild; and the
figures follow the child to their new group."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from engine import caselife, groupkeys, importer, oversight, projection
from engine.models import CaseTeamMember, Child, PepProjection, User
from engine.people import add_user, set_case_team

from .test_import import EXTRACT, council_with_processes  # noqa: F401 - the import's council, a fixture
from .test_oversight import build_small_council, figures

SPRING = "2025-26 spring"


@pytest.fixture
def small_council(deployed, engine, council, clock):
    return build_small_council(engine, council, clock)


def recomputed(s) -> dict[str, tuple]:
    """Each child's keys as their record and case team give them now, read afresh."""
    team = {
        (c, r): u
        for c, r, u in s.execute(select(CaseTeamMember.child_id, CaseTeamMember.role_key, CaseTeamMember.user_id))
    }
    return {
        child.id: (child.school, child.in_area, *(team.get((child.id, role)) for role in groupkeys.TEAM_COLUMNS))
        for child in s.scalars(select(Child))
    }


def kept(s) -> tuple[dict[str, tuple], dict[int, tuple]]:
    """The keys kept on the children's rows and on their PEPs' rows."""
    people = [getattr(Child, column) for column in groupkeys.TEAM_COLUMNS.values()]
    peps = [getattr(PepProjection, column) for column in groupkeys.CHILD_KEYS]
    children = {row[0]: tuple(row[1:]) for row in s.execute(select(Child.id, Child.school, Child.in_area, *people))}
    rows = {
        row[0]: (row[1], tuple(row[2:]))
        for row in s.execute(select(PepProjection.instance_id, PepProjection.child_id, *peps))
    }
    return children, rows


def reviews(s) -> tuple[dict[str, set], dict[str, set]]:
    """Each child's terms with a PEP review signed off in time: as kept on their row, and as their
    PEPs' rows give them, read afresh."""
    kept_terms = {
        c: set(filter(None, (t or "").split("|"))) for c, t in s.execute(select(Child.id, Child.reviewed_terms))
    }
    found = {c: set() for c in kept_terms}
    for child_id, term in s.execute(
        select(PepProjection.child_id, PepProjection.term).where(
            PepProjection.kind == "termly", PepProjection.on_time.is_(True)
        )
    ):
        found[child_id].add(term)
    return kept_terms, found


def assert_kept_equal_recomputed(sessions) -> None:
    with sessions() as s:
        expected, (children, peps) = recomputed(s), kept(s)
        kept_terms, reviewed = reviews(s)
    assert children == expected
    assert peps and all(keys == expected[child_id] for child_id, keys in peps.values())
    assert kept_terms == reviewed


def by_label(sessions, engine, by) -> dict:
    return {
        r["label"]: (r["children"], r["due"], r["on_time"], r["late"], r["overdue"])
        for r in figures(sessions, engine, SPRING, by)["rows"]
    }


def test_the_small_councils_keys_are_kept_as_its_steps_ran(small_council):
    assert_kept_equal_recomputed(small_council)


def test_a_change_of_school_moves_the_childs_peps_to_the_new_schools_figures(small_council, engine):
    with small_council.begin() as s:  # Casey, late, moves from Oak Primary to Elm Academy
        caselife.change_details(s, s.get(Child, "C003"), {"school": "Elm Academy"}, "admin@demo.test", engine.now())

    assert_kept_equal_recomputed(small_council)
    assert by_label(small_council, engine, "school") == {"Elm Academy": (3, 3, 0, 1, 2), "Oak Primary": (1, 1, 1, 0, 0)}


def test_a_change_of_area_moves_the_childs_peps_to_the_other_areas_figures(small_council, engine):
    with small_council.begin() as s:  # Dee, overdue, comes back into the council's area
        caselife.change_details(s, s.get(Child, "C004"), {"in_area": True}, "admin@demo.test", engine.now())

    assert_kept_equal_recomputed(small_council)
    assert by_label(small_council, engine, "area") == {"In area": (2, 2, 0, 1, 1), None: (2, 2, 1, 0, 1)}


def test_a_new_social_worker_takes_the_childs_peps_and_termly_figures_into_theirs(small_council, engine):
    with small_council.begin() as s:
        add_user(s, "sol@demo.test", "Sol Second", roles=["Social Worker"])
        set_case_team(s, "C004", {"Social Worker": "sol@demo.test"}, actor="admin@demo.test")

    assert_kept_equal_recomputed(small_council)
    assert by_label(small_council, engine, "social_worker") == {
        "Sam Social-Worker": (3, 3, 1, 1, 1),
        "Sol Second": (1, 1, 0, 0, 1),
    }
    period = oversight.period(SPRING, engine.now())
    with small_council() as s:
        (term,) = oversight.termly_by(s, period, engine.now(), "social_worker")
    assert {r["label"]: (r["in_care"], r["reviewed"]) for r in term["rows"]} == {
        "Sam Social-Worker": (3, 1),
        "Sol Second": (1, 0),
    }


def test_a_child_without_a_social_worker_is_counted_in_the_group_not_recorded(small_council, engine):
    with small_council.begin() as s:
        set_case_team(s, "C001", {"Social Worker": None}, actor="admin@demo.test")

    assert_kept_equal_recomputed(small_council)
    assert by_label(small_council, engine, "social_worker") == {
        "Sam Social-Worker": (3, 3, 0, 1, 2),
        None: (1, 1, 1, 0, 0),
    }


def test_an_import_keeps_the_keys_of_the_children_it_adds_and_changes_and_of_the_pep_it_starts(
    council_with_processes,  # noqa: F811 - the fixture imported above
    engine,
):
    with council_with_processes.begin() as s:
        importer.apply(s, importer.import_file(s, EXTRACT.encode(), engine.now()), engine, "admin@demo.test")

    assert_kept_equal_recomputed(council_with_processes)
    with council_with_processes() as s:
        worker = s.scalar(select(User.id).where(User.email == "new.worker@council.test"))
        (started,) = s.scalars(select(PepProjection).where(PepProjection.child_id == "N002"))
    assert (started.school, started.social_worker_id) == ("Elm Academy", worker)  # the initial PEP the import started


def test_a_rebuild_sets_every_key_again_and_the_figures_are_unchanged(small_council, engine):
    before = {
        by: by_label(small_council, engine, by) for by in ("school", "social_worker", "area", "designated_teacher")
    }
    with small_council.begin() as s:  # keys lost (or a database from before they were kept)
        s.execute(update(PepProjection).values(dict.fromkeys(groupkeys.CHILD_KEYS)))
        s.execute(update(Child).values(dict.fromkeys(groupkeys.TEAM_COLUMNS.values())))
    with small_council.begin() as s:
        assert projection.rebuild(s) == 4

    assert_kept_equal_recomputed(small_council)
    assert {by: by_label(small_council, engine, by) for by in before} == before


@pytest.mark.parametrize("by", ["school", "social_worker", "designated_teacher", "age_band", "area"])
def test_a_page_of_a_breakdown_gives_the_termly_figures_of_its_groups_as_counted_apart(small_council, engine, by):
    period = oversight.period("2025-26", engine.now())
    with small_council() as s:
        found = oversight.timeliness(s, period, engine.now(), by, page=1)
        apart = oversight.termly_by(s, period, engine.now(), by, [r["key"] for r in found["rows"]])
        council = oversight.timeliness(s, period, engine.now())["termly"]
    assert found["termly_by"] == apart and [t["rows"] for t in apart][-1]
    assert found["termly"] == council  # the council's, summed from the groups: the same as counted alone


def test_a_review_signed_off_in_time_adds_its_term_to_the_childs_reviewed_terms(small_council):
    with small_council() as s:
        kept_terms, _ = reviews(s)
    assert kept_terms["C001"] == {SPRING}  # Alex's spring review, signed off in time
    assert kept_terms["C003"] == set()  # Casey's, signed off late: not a review completed in the term


def test_the_reviewed_terms_are_set_again_from_the_peps_rows(small_council, engine):
    before = figures(small_council, engine, SPRING, "school")["termly"]
    with small_council.begin() as s:  # lost, or wrong (a database from before they were kept)
        s.execute(update(Child).values(reviewed_terms="|2025-26 autumn|"))
    with small_council.begin() as s:
        groupkeys.rereview(s, ["C001"])  # one child's, as a re-projection sets them
        assert s.scalar(select(Child.reviewed_terms).where(Child.id == "C001")) == f"|{SPRING}|"
    with small_council.begin() as s:
        projection.rebuild(s)  # every child's

    assert_kept_equal_recomputed(small_council)
    assert figures(small_council, engine, SPRING, "school")["termly"] == before
