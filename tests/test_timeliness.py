"""The statutory figures from a small hand-made history (the shipped Demo Council term dates: autumn
2025 is 3 September to 19 December), each with the exact count a Virtual School Head would make."""

from __future__ import annotations

from datetime import UTC, date, datetime

from engine import timeliness as t
from engine.timeliness import Record, Share


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def care(kind: str, child: str, day: str) -> Record:
    return Record(kind, child, at(day), data={"date": day})


def started(child: str, instance: int, kind: str) -> Record:
    return Record("instance_started", child, at("2025-09-01"), instance, data={"answers": {"kind": kind}})


def signed(child: str, instance: int, day: str) -> Record:
    return Record("pep_signed_off", child, at(day, 15), instance)


def done(instance: int, task_id: str, spec: str, when: datetime, due: str | None = None) -> Record:
    return Record("task_completed", "A", when, instance, task_id, {"task": spec, **({"due_at": due} if due else {})})


# End of the day in London (BST until 26 October 2025).
DUE_1_OCT, DUE_3_OCT = "2025-10-01T22:59:59+00:00", "2025-10-03T22:59:59+00:00"
HISTORY = [
    started("A", 1, "termly"),
    signed("A", 1, "2025-10-10"),  # in care before: reviewed in autumn
    started("B", 2, "termly"),  # in care before: not reviewed
    care("entered_care", "C", "2025-09-15"),
    started("C", 3, "initial"),
    signed("C", 3, "2025-10-10"),  # by 13 Oct
    care("entered_care", "D", "2025-09-22"),
    started("D", 4, "initial"),
    signed("D", 4, "2025-11-03"),  # due 20 Oct
    Record("meeting_held", "C", at("2025-10-08"), 3, data={"date": "2025-10-06"}),
    Record("meeting_held", "D", at("2025-11-01"), 4, data={"date": "2025-10-17"}),
    care("entered_care", "E", "2025-12-10"),  # 20 working days end in January
    care("entered_care", "F", "2025-09-08"),
    care("left_care", "F", "2025-09-20"),  # left before its deadline
    care("left_care", "H", "2025-11-20"),  # in care before, left in the term
    signed("H", 9, "2025-10-01"),
]
IN_CARE_NOW = {"A", "B", "C", "D", "E", "G"}
BORN = {
    "A": date(2015, 3, 1),
    "B": date(2012, 5, 5),
    "C": date(2014, 1, 1),
    "D": date(2010, 1, 1),
    "G": date(2024, 6, 1),
    "H": date(2013, 2, 2),
}


def test_initial_peps_count_children_whose_20_working_days_have_passed_and_leave_out_those_who_left_first():
    initial = t.initial_peps(HISTORY, at("2025-12-19", 23))

    assert initial.signed_off == Share(1, 2)  # C on time, D late; F left care before its deadline
    assert initial.held == Share(2, 2)  # D's meeting was held on 17 October, in time
    assert initial.pending == 1  # E is still within its 20 working days


def test_a_term_counts_children_in_care_and_of_pep_age_for_all_of_it_with_a_pep_signed_off_in_it():
    periods = t.care_periods(HISTORY, IN_CARE_NOW)

    (autumn,) = t.termly_reviews(HISTORY, periods, BORN, date(2025, 9, 1), date(2025, 12, 19))

    # A and B in care throughout; C, D entered after 3 September; E in December; G is one; H left in November
    assert (autumn.label, autumn.reviewed, autumn.whole) == ("2025-26 autumn", Share(1, 2), True)
    assert periods["H"] == [(date.min, date(2025, 11, 20))] and periods["F"] == [(date(2025, 9, 8), date(2025, 9, 20))]


def test_a_term_the_period_ends_in_is_counted_to_that_day_and_said_to_be_partial():
    periods = t.care_periods(HISTORY, IN_CARE_NOW)

    (autumn,) = t.termly_reviews(HISTORY, periods, BORN, date(2025, 9, 1), date(2025, 10, 31))

    # H, who left on 20 November, was in care for all of it, and had a PEP signed off on 1 October
    assert (autumn.last, autumn.reviewed, autumn.whole) == (date(2025, 10, 31), Share(2, 3), False)


def test_lateness_is_judged_on_each_tasks_first_completion_in_working_days():
    records = [
        done(1, "t1", "a", at("2025-10-06", 9), DUE_1_OCT),  # 2, 3 and 6 October: 3 working days late
        done(1, "t2", "b", at("2025-10-01", 15), DUE_1_OCT),  # on time
        done(3, "t3", "a", at("2025-10-20"), DUE_3_OCT),  # 11 working days late
        done(3, "t4", "n", at("2025-10-20")),  # no due date
        done(1, "t5", "a", at("2025-12-01"), DUE_1_OCT),  # done again: not a first completion
    ]

    assert t.task_lateness(records) == t.Lateness(tasks=3, late=2, median_days=7.0, p90_days=11.0)


def test_an_overdue_task_is_told_in_time_by_the_end_of_the_next_working_day_by_the_policy_or_its_own_timer():
    def overdue(instance, task_id, spec, due):
        return Record("task_overdue", "A", at("2025-10-02", 8), instance, task_id, {"task": spec, "due_at": due})

    records = [
        overdue(1, "x", "a", DUE_1_OCT),
        Record("task_reminded", "A", at("2025-10-02", 8), 1, "x"),
        overdue(1, "y", "c", DUE_3_OCT),
        Record("task_reminded", "A", at("2025-10-07", 8), 1, "y"),  # Monday passed
        Record("task_escalated", "A", at("2025-10-08", 8), 1, "y"),
        overdue(3, "z", "d", DUE_1_OCT),
        Record("timer_fired", "A", at("2025-10-02", 8), 3, data={"guards": "d", "effect": "ends"}),
        overdue(3, "w", "e", DUE_1_OCT),  # nobody told
        Record("task_ready", "A", at("2025-10-10"), 3, "v", {"task": "f"}),  # opened already overdue (Friday)
        overdue(3, "v", "f", DUE_1_OCT),
        Record("task_reminded", "A", at("2025-10-13", 8), 3, "v"),  # Monday
    ]

    assert t.telling(records) == t.Telling(overdue=5, in_time=3, later=1, never=1, escalated=1)


def test_repeats_count_completions_of_one_task_in_one_pep():
    records = [done(1, f"t{n}", "a", at("2025-10-01")) for n in range(4)] + [done(2, "u", "a", at("2025-10-01"))]

    repeats = t.repeats(records)

    assert (repeats.most, repeats.peps_over, repeats.worst) == (4, 1, ("a (1 PEPs)",))


def test_a_pep_is_stuck_with_a_task_nobody_holds_or_with_nothing_open_and_no_timer():
    timer = at("2025-10-01")
    running = {1: (None, []), 2: (None, ["child_leaves_care"]), 3: (timer, []), 4: (None, []), 5: (None, [])}
    tasks = [(1, None, False), (3, None, True), (4, 7, False), (5, 8, False), (5, None, False)]

    stuck = t.stuck_peps(running, tasks)

    assert (stuck.running, stuck.nobody, stuck.idle, stuck.stuck) == (5, 2, 1, 3)  # 1 and 5 nobody; 2 idle
    assert stuck.idle_waiting_for == ("child_leaves_care (1)",)


def test_tasks_that_opened_with_nobody_are_counted():
    records = [
        Record("task_ready", "A", at("2025-10-01"), 1, "a", {"needs_person": True}),
        Record("task_ready", "A", at("2025-10-01"), 1, "b", {}),
    ]

    assert t.needing_a_person(records) == 1


def test_each_overdue_step_is_escalated_so_many_whole_working_days_after_its_due_day():
    def ready(instance, task_id, spec, day, due):
        return Record("task_ready", "A", at(day), instance, task_id, {"task": spec, "due_at": due})

    def overdue(instance, task_id, spec, day, due):
        return Record("task_overdue", "A", at(day, 8), instance, task_id, {"task": spec, "due_at": due})

    due_8_oct = "2025-10-08T22:59:59+00:00"
    records = [
        ready(1, "x", "a", "2025-09-29", DUE_1_OCT),
        Record("timer_fired", "A", at("2025-09-30", 8), 1, data={"guards": "a", "effect": "reminds"}),
        overdue(1, "x", "a", "2025-10-02", DUE_1_OCT),
        Record("task_escalated", "A", at("2025-10-03", 8), 1, "x"),  # Wed due, Fri: Thursday passed
        ready(1, "y", "c", "2025-09-29", DUE_3_OCT),
        overdue(1, "y", "c", "2025-10-04", DUE_3_OCT),
        Record("task_escalated", "A", at("2025-10-08", 8), 1, "y"),  # Fri due, Wed: Mon and Tue passed
        ready(3, "z", "d", "2025-09-29", DUE_1_OCT),  # its diagram's deadline withdraws it
        Record("timer_fired", "A", at("2025-10-02", 8), 3, data={"guards": "d", "effect": "ends"}),
        ready(3, "w", "e", "2025-09-29", DUE_1_OCT),
        overdue(3, "w", "e", "2025-10-02", DUE_1_OCT),
        done(3, "w", "e", at("2025-10-03")),  # done before escalation
        ready(3, "u", "g", "2025-09-29", DUE_1_OCT),
        overdue(3, "u", "g", "2025-10-02", DUE_1_OCT),  # never
        ready(3, "v", "f", "2025-10-10", DUE_1_OCT),
        overdue(3, "v", "f", "2025-10-11", DUE_1_OCT),
        Record("task_escalated", "A", at("2025-10-13", 8), 3, "v"),  # opened Friday already overdue
        ready(1, "x2", "a", "2025-10-06", due_8_oct),  # the same step again, later
        Record("timer_fired", "A", at("2025-10-09", 8), 1, data={"guards": "a", "effect": "escalates"}),
        overdue(1, "x2", "a", "2025-10-09", due_8_oct),
    ]

    e = t.escalations(records, at("2025-10-17", 23))

    assert (e.overdue, e.by_policy, e.by_diagram, e.days) == (7, 3, 2, (0, 0, 0, 1, 2))
    assert (e.percentile(50), e.percentile(95), e.over_one) == (0, 2, 1)
    assert (e.closed_first, e.unescalated_steps, e.unescalated) == (1, 1, ("g (1)",))
