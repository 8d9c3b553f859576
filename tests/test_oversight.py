"""The Virtual School's oversight: a small council with known on-time, late and overdue PEPs gives exact
figures for a term, a year and now, broken down; the projection the steps keep equals a recomputation
from history; the overdue list says whom each task was escalated to and when; bulk reminders and
reassignments are written to the history."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine import drilldown, overduework, oversight, projection
from engine.deploy import Bundle, deploy_changes
from engine.models import Child, Event, Notification, OpenTask, PepProjection, User
from engine.people import add_child, add_user

from .conftest import seat_case_team
from .helpers import sweep
from .test_runtime import complete, only_task
from .test_statutory import STATUTORY_BUNDLE

NOW = "2026-04-01T11:00:00+00:00"  # the Easter holiday after the spring term 2025-26
EVERYONE = Child.id.is_not(None)


def build_small_council(engine, sessions, clock):
    """Four children, spring term 2025-26 (5 January to 27 March 2026):
    - C001 Alex: termly review, meeting 4 March, signed off 5 March: on time;
    - C002 Blair: termly review, meeting 4 March, never submitted: overdue (its step escalated);
    - C003 Casey: termly review, meeting 4 March, submitted 30 March, after the term: late;
    - C004 Dee: entered care 23 February, initial PEP started 2 March (within 10 working days) and
      never ready (its 20 working days end 23 March): overdue.
    The clock is left at 1 April 2026."""
    with clocks.using(clock), sessions.begin() as s:
        deploy_changes(s, Bundle.from_dirs(STATUTORY_BUNDLE).files, actor="owner@demo.test")
        add_user(s, "vsh@demo.test", "Val Head", roles=["VS Head"])
        add_child(s, "C003", "Casey Late", date(2018, 3, 3), "Oak Primary")
        add_child(s, "C004", "Dee Initial", date(2010, 10, 10), "Elm Academy").entered_care = date(2026, 2, 23)
        s.get(Child, "C003").in_area, s.get(Child, "C004").in_area = True, False
        seat_case_team(s, "C003", {"Social Worker": "sw@demo.test", "Designated Teacher": "dt@demo.test"})
        seat_case_team(s, "C004", {"Social Worker": "sw@demo.test", "Designated Teacher": "other.dt@demo.test"})
    with sessions.begin() as s:
        for child_id in ("C001", "C002", "C003"):
            engine.start(s, "test_termly", child_id, actor="sw@demo.test")
        engine.start(s, "test_initial_own_timer", "C004", actor="sw@demo.test", data={"entered_care": "2026-02-23"})
    for child_id in ("C001", "C002", "C003"):
        complete(engine, sessions, only_task(sessions, child_id), "sw@demo.test", {"meeting_date": "2026-03-04"})
    engine.clock.set("2026-03-05T10:00:00+00:00")
    complete(engine, sessions, only_task(sessions, "C001"), "dt@demo.test", {"summary": "Done"})
    sweep(engine, sessions, "2026-03-10T09:00:00+00:00")  # overdue: reminded
    sweep(engine, sessions, "2026-03-11T09:00:00+00:00")  # a working day on: escalated
    engine.clock.set("2026-03-30T10:00:00+00:00")
    complete(engine, sessions, only_task(sessions, "C003"), "dt@demo.test", {"summary": "Late"})
    engine.clock.set(NOW)
    return sessions


@pytest.fixture
def small_council(deployed, engine, council, clock):
    return build_small_council(engine, council, clock)


def figures(sessions, engine, key, by=None):
    with sessions() as s:
        return oversight.timeliness(s, oversight.period(key, engine.now()), engine.now(), by)


def counts(row):
    return {k: row[k] for k in ("children", *oversight.PEP_FIGURES)}


def test_the_spring_term_gives_exact_figures(small_council, engine):
    found = figures(small_council, engine, "2025-26 spring")
    assert [counts(r) for r in found["rows"]] == [
        {"children": 4, "due": 4, "held": 3, "on_time": 1, "late": 1, "overdue": 2, "not_yet_due": 0}
    ]
    assert found["initial"] == {
        "initial_due": 1,
        "initial_started": 1,
        "initial_ready": 0,
        "initial_late": 1,
        "initial_unknown": 0,
    }
    assert [(t["term"], t["in_care"], t["reviewed"], t["not_reviewed"]) for t in found["termly"]] == [
        ("2025-26 spring", 4, 1, 3)
    ]


def test_the_year_counts_each_term_a_child_was_in_care(small_council, engine):
    found = figures(small_council, engine, "2025-26")
    assert [(t["term"], t["in_care"], t["reviewed"]) for t in found["termly"]] == [
        ("2025-26 autumn", 3, 0),
        ("2025-26 spring", 4, 1),
    ]  # Dee came into care in February; summer not begun
    assert counts(found["rows"][0])["due"] == 4


def test_now_is_the_coming_term_with_every_pep_overdue_now(small_council, engine):
    found = figures(small_council, engine, "now")
    assert [counts(r) for r in found["rows"]] == [
        {"children": 4, "due": 2, "held": 1, "on_time": 0, "late": 0, "overdue": 2, "not_yet_due": 0}
    ]
    assert found["termly"] == []  # the summer term has not begun


@pytest.mark.parametrize(
    "by, expected",
    [
        ("school", {"Elm Academy": (2, 2, 0, 0, 2), "Oak Primary": (2, 2, 1, 1, 0)}),
        ("designated_teacher", {"Dana Teacher": (2, 2, 1, 1, 0), "Omar Teacher": (2, 2, 0, 0, 2)}),
        ("social_worker", {"Sam Social-Worker": (4, 4, 1, 1, 2)}),
        ("education_adviser", {None: (4, 4, 1, 1, 2)}),
        ("age_band", {"Key stage 2": (1, 1, 0, 1, 0), "Key stage 3": (2, 2, 1, 0, 1), "Key stage 4": (1, 1, 0, 0, 1)}),
        ("area", {"In area": (1, 1, 0, 1, 0), "Out of area": (1, 1, 0, 0, 1), None: (2, 2, 1, 0, 1)}),
        (
            "process",
            {
                "Test termly PEP with sign-off": (None, 3, 1, 1, 1),
                "Test initial PEP with its own escalation": (None, 1, 0, 0, 1),
            },
        ),
    ],
)
def test_each_breakdown_gives_exact_figures(small_council, engine, by, expected):
    found = figures(small_council, engine, "2025-26 spring", by)
    assert {
        r["label"]: (r["children"], r["due"], r["on_time"], r["late"], r["overdue"]) for r in found["rows"]
    } == expected


@pytest.mark.parametrize(
    "by, initial, termly",
    [
        ("school", {"Elm Academy": (1, 1, 0, 1)}, {"Elm Academy": (2, 0, 2), "Oak Primary": (2, 1, 1)}),
        ("social_worker", {"Sam Social-Worker": (1, 1, 0, 1)}, {"Sam Social-Worker": (4, 1, 3)}),
        ("designated_teacher", {"Omar Teacher": (1, 1, 0, 1)}, {"Dana Teacher": (2, 1, 1), "Omar Teacher": (2, 0, 2)}),
        (
            "age_band",
            {"Key stage 4": (1, 1, 0, 1)},
            {"Key stage 2": (1, 0, 1), "Key stage 3": (2, 1, 1), "Key stage 4": (1, 0, 1)},
        ),
        ("area", {"Out of area": (1, 1, 0, 1)}, {"In area": (1, 0, 1), "Out of area": (1, 0, 1), None: (2, 1, 1)}),
    ],
)
def test_the_initial_and_termly_figures_break_down_too(small_council, engine, by, initial, termly):
    period = oversight.period("2025-26 spring", engine.now())
    with small_council() as s:
        rows = oversight.initial_by(s, period, engine.now(), by)
        terms = oversight.termly_by(s, period, engine.now(), by)
    assert {
        r["label"]: (r["initial_due"], r["initial_started"], r["initial_ready"], r["initial_late"]) for r in rows
    } == initial
    assert [t["term"] for t in terms] == ["2025-26 spring"]
    assert {r["label"]: (r["in_care"], r["reviewed"], r["not_reviewed"]) for r in terms[0]["rows"]} == termly


def test_an_initial_or_termly_figure_of_a_group_drills_down_to_its_children(small_council, engine):
    period = oversight.period("2025-26 spring", engine.now())
    with small_council() as s:

        def names(drill):
            return [r["child_name"] for r in drilldown.drill_down(s, period, engine.now(), drill, EVERYONE)]

        assert names(drilldown.Drill("initial_late", "school", "Elm Academy")) == ["Dee Initial"]
        assert names(drilldown.Drill("initial_late", "school", "Oak Primary")) == []
        assert names(drilldown.Drill("not_reviewed", "school", "Oak Primary", "2025-26 spring")) == ["Casey Late"]
        assert names(drilldown.Drill("reviewed", "school", "Oak Primary", "2025-26 spring")) == ["Alex Example"]
        assert names(drilldown.Drill("in_care", "area", "", "2025-26 spring")) == ["Alex Example", "Blair Sample"]


def test_each_figure_drills_down_to_its_children(small_council, engine):
    period = oversight.period("2025-26 spring", engine.now())
    with small_council() as s:

        def names(drill):
            return [r["child_name"] for r in drilldown.drill_down(s, period, engine.now(), drill, EVERYONE)]

        assert names(drilldown.Drill("on_time")) == ["Alex Example"]
        assert names(drilldown.Drill("late")) == ["Casey Late"]
        assert names(drilldown.Drill("overdue")) == ["Blair Sample", "Dee Initial"]
        assert names(drilldown.Drill("overdue", "school", "Oak Primary")) == []
        assert names(drilldown.Drill("initial_late")) == ["Dee Initial"]
        assert names(drilldown.Drill("not_reviewed", term="2025-26 spring")) == [
            "Blair Sample",
            "Casey Late",
            "Dee Initial",
        ]
        assert names(drilldown.Drill("children", "area", "")) == ["Alex Example", "Blair Sample"]
        only_c001 = Child.id == "C001"
        assert [
            r["child_name"] for r in drilldown.drill_down(s, period, engine.now(), drilldown.Drill("due"), only_c001)
        ] == ["Alex Example"]
        overdue = drilldown.drill_down(s, period, engine.now(), drilldown.Drill("overdue"), EVERYONE)
        assert [r["days_overdue"] for r in overdue] == [4, 8]  # from 27 March (end of term) and 23 March


def test_the_projection_equals_a_recomputation_from_history(small_council, engine):
    with small_council() as s:
        kept = {row.instance_id: row for row in s.scalars(select(PepProjection))}
        assert len(kept) == 4
        for instance_id, row in kept.items():
            again = projection.recompute(s, instance_id)
            assert {k: getattr(row, k) for k in again} == again, instance_id
    with small_council.begin() as s:
        assert projection.rebuild(s) == 4
    with small_council() as s:
        rebuilt = {row.instance_id: row for row in s.scalars(select(PepProjection))}
        columns = [c.key for c in PepProjection.__table__.columns]
        assert {i: tuple(getattr(r, c) for c in columns) for i, r in rebuilt.items()} == {
            i: tuple(getattr(r, c) for c in columns) for i, r in kept.items()
        }


def test_the_statutory_rules_are_configuration_with_their_source():
    rules = projection.rules()
    assert (rules.start_within_working_days, rules.ready_within_working_days) == (10, 20)
    assert "Promoting the education of looked-after and previously looked-after children" in rules.source


def test_the_overdue_list_says_how_long_and_whom_each_was_escalated_to(small_council, engine):
    with small_council() as s:
        rows = overduework.overdue_tasks(s, engine.now(), EVERYONE)
        assert [(r["child_name"], r["task"].name, r["days_overdue"]) for r in rows] == [
            ("Blair Sample", "Submit the PEP", 22),
            ("Dee Initial", "Prepare the setting information", 22),
        ]
        blair = next(r for r in rows if r["child_id"] == "C002")
        assert blair["task"].overdue_stage == "escalated"
        assert blair["task"].escalated_at.isoformat() == "2026-03-11T09:00:00+00:00"
        assert blair["task"].overdue_escalate_to == "vs_education_adviser" and blair["escalated_to"] is None  # the pool
        assert blair["holder"] == "Omar Teacher"
        dee = next(r for r in rows if r["child_id"] == "C004")
        assert dee["task"].escalated_at is None  # its diagram draws its own escalation
        assert [
            r["child_id"]
            for r in overduework.overdue_tasks(
                s, engine.now(), EVERYONE, overduework.OverdueFilter(school="Oak Primary")
            )
        ] == []
        assert len(overduework.overdue_tasks(s, engine.now(), EVERYONE, overduework.OverdueFilter(min_days=23))) == 0
        person = s.scalar(select(User.id).where(User.email == "other.dt@demo.test"))
        assert len(overduework.overdue_tasks(s, engine.now(), EVERYONE, overduework.OverdueFilter(person=person))) == 2


def test_a_bulk_reminder_tells_each_holder_and_is_in_the_history(small_council, engine):
    with small_council() as s:
        ids = [r["task"].id for r in overduework.overdue_tasks(s, engine.now(), EVERYONE)]
    with small_council.begin() as s:
        assert overduework.remind(s, ids, "admin@demo.test", engine.now(), EVERYONE) == 2
    with small_council() as s:
        reminded = s.scalars(select(Event).where(Event.kind == "task_reminded", Event.actor == "admin@demo.test")).all()
        assert sorted(e.child_id for e in reminded) == ["C002", "C004"]
        notices = s.scalars(select(Notification).where(Notification.subject.like("Reminder:%"))).all()
        teacher = s.scalar(select(User.id).where(User.email == "other.dt@demo.test"))
        assert [n.user_id for n in notices] == [teacher, teacher]
        assert all(t.reminded_at == engine.now() for t in s.scalars(select(OpenTask).where(OpenTask.id.in_(ids))))


def test_a_pooled_task_is_given_to_a_holder_of_its_role_and_no_one_else(small_council, engine):
    with small_council.begin() as s:  # the test processes pool no task: Blair's step is put in the advisers' pool
        task = s.scalar(select(OpenTask).where(OpenTask.child_id == "C002"))
        task.pooled, task.assignee_id, task.role_key = True, None, "vs_education_adviser"
        adviser = s.scalar(select(User.id).where(User.email == "ea@demo.test"))
        teacher = s.scalar(select(User.id).where(User.email == "dt@demo.test"))
        assert overduework.assign(s, [task.id], teacher, "admin@demo.test", engine.now(), EVERYONE) == (0, 1)
        assert overduework.assign(s, [task.id], adviser, "admin@demo.test", engine.now(), EVERYONE) == (1, 0)
    with small_council() as s:
        assert s.get(OpenTask, task.id).assignee_id == adviser
        claimed = s.scalars(select(Event).where(Event.kind == "task_claimed", Event.child_id == "C002")).all()
        assert [(e.actor, e.data["user_id"], e.data["assigned_by"]) for e in claimed] == [
            ("admin@demo.test", adviser, "admin@demo.test")
        ]


def test_a_breakdown_by_a_person_is_paged_the_most_overdue_first_and_found_by_name(small_council, engine):
    period, now = oversight.period("2025-26 spring", engine.now()), engine.now()
    with small_council() as s:

        def page(by, number, search="", size=None):
            found = oversight.timeliness(s, period, now, by, number, search, size)
            assert found["rows"] == found["page"].rows
            return found["page"]

        everyone = oversight.timeliness(s, period, now, "designated_teacher")
        assert [r["label"] for r in everyone["rows"]] == ["Dana Teacher", "Omar Teacher"] and everyone["page"] is None
        first = page("designated_teacher", 1, size=1)
        assert ([r["label"] for r in first.rows], first.total, first.pages) == (["Omar Teacher"], 2, 2)  # 2 overdue
        assert first.rows == [r for r in everyone["rows"] if r["label"] == "Omar Teacher"]  # the same figures
        assert [r["label"] for r in page("designated_teacher", 2, size=1).rows] == ["Dana Teacher"]
        assert page("designated_teacher", 9, size=1).number == 2  # past the last: the last
        found = page("designated_teacher", 1, "  DANA ")
        assert [(r["label"], r["due"], r["on_time"]) for r in found.rows] == [
            ("Dana Teacher", 2, 1)
        ] and found.total == 1
        assert page("designated_teacher", 1, "50%_").rows == []  # what is typed is matched as typed
        assert [r["label"] for r in page("school", 1).rows] == ["Elm Academy", "Oak Primary"]  # by name


def test_the_termly_counts_equal_a_count_child_by_child(small_council, engine):
    """The termly figures (one query, a semi-join) against the drill-down's per-child test (EXISTS)."""
    period = oversight.period("2025-26", engine.now())
    found = figures(small_council, engine, "2025-26")["termly"]
    with small_council() as s:
        for term in found:
            for figure in oversight.TERMLY_FIGURES:
                listed = drilldown.drill_down(
                    s, period, engine.now(), drilldown.Drill(figure, term=term["term"]), EVERYONE
                )
                assert len(listed) == term[figure], (term["term"], figure)
