"""Two people or two schedulers at the same moment: exactly one wins, nothing is lost or applied twice."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text

from engine.errors import TaskNotReady
from engine.models import Event, Instance, OpenTask
from engine.people import add_child
from engine.runtime import Engine, Step
from engine.timers import fire_due_timers

from .conftest import PG_URL
from .test_conflicts import VIEWS, completions, open_page, start_parallel, submit, task_named
from .test_runtime import MEETING, PEP, only_task, start_review


def run_together(*jobs):
    """Run each job in its own thread; return what each returned or raised."""
    results = [None] * len(jobs)

    def run(i, job):
        try:
            results[i] = job()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread raised
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def at_the_same_moment(monkeypatch, sessions) -> list[bool]:
    """Make two submissions meet in `Step.save`. SQLite: each waits there, once, until both have run
    their task. PostgreSQL: the first waits there until the other waits for its row locks. Returns the
    list of each attempt's `again` (True for an attempt taken again after a raced write)."""
    locks_rows = sessions.kw["bind"].dialect.name == "postgresql"
    both_ran_the_task, first, seen = threading.Barrier(2, timeout=20), threading.Lock(), threading.local()
    attempts: list[bool] = []
    original_save, original_complete = Step.save, Engine._complete_task

    def save_when_the_other_is_there(step, *args, **kwargs):
        if not getattr(seen, "saved", False):
            seen.saved = True
            if not locks_rows:
                both_ran_the_task.wait()
            elif first.acquire(blocking=False):
                wait_for_a_blocked_transaction(sessions)
        return original_save(step, *args, **kwargs)

    def counted(engine, *args, again=False, **kwargs):
        attempts.append(again)
        return original_complete(engine, *args, again=again, **kwargs)

    monkeypatch.setattr(Step, "save", save_when_the_other_is_there)
    monkeypatch.setattr(Engine, "_complete_task", counted)
    return attempts


def test_two_people_submitting_one_task_at_once_exactly_one_wins(deployed, engine, council, monkeypatch):
    """Both submit at the same moment. SQLite: both run the task, the second's write is refused (the
    optimistic version check), and it takes the step again from what the first left. PostgreSQL: the
    second waits on the first's row locks. Either way exactly one lands and the other finds the task done."""
    instance_id = start_review(engine, council)
    task = only_task(council)
    attempts = at_the_same_moment(monkeypatch, council)

    def submit(venue):
        def job():
            with council.begin() as s:
                return engine.complete_task(s, task.id, "sw@demo.test", {**MEETING, "venue": venue})

        return job

    results = run_together(submit("Room A"), submit("Room B"))
    winners = [r for r in results if isinstance(r, Instance)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], TaskNotReady) and "completed" in str(losers[0])
    assert attempts.count(True) == (0 if council.kw["bind"].dialect.name == "postgresql" else 1)
    with council() as s:
        completions = s.scalars(select(Event).where(Event.kind == "task_completed")).all()
        assert len(completions) == 1
        assert s.get(Instance, instance_id).version == 2
        assert s.scalar(select(func.count(OpenTask.id))) == 1
    assert only_task(council).name == "Complete the PEP"


def test_the_sw_and_the_dt_submitting_on_two_branches_at_once_both_land(parallel, engine, monkeypatch):
    """The social worker's views and the teacher's ePEP, on two branches of one PEP, both pages opened
    before either was sent, submitted at the same moment: neither is refused, on either database."""
    instance_id = start_parallel(engine, parallel)
    views, epep = task_named(parallel, "Record the child's views"), task_named(parallel, "Complete the ePEP")
    pages = open_page(engine, parallel, views, "sw@demo.test"), open_page(engine, parallel, epep, "dt@demo.test")
    attempts = at_the_same_moment(monkeypatch, parallel)

    results = run_together(
        lambda: submit(engine, parallel, views, "sw@demo.test", VIEWS, pages[0]),
        lambda: submit(engine, parallel, epep, "dt@demo.test", PEP, pages[1]),
    )

    assert all(isinstance(r, Instance) for r in results), results
    assert attempts.count(True) == (0 if parallel.kw["bind"].dialect.name == "postgresql" else 1)
    assert sorted(completions(parallel)) == ["Complete the ePEP", "Record the child's views"]
    with parallel() as s:
        assert s.get(Instance, instance_id).version == pages[0]["expected_version"] + 2
        assert s.scalar(select(func.count(OpenTask.id))) == 0


def wait_for_a_blocked_transaction(sessions, seconds=20):
    """Return once another transaction waits for a row lock (PostgreSQL's pg_locks shows it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with sessions() as s:
            if s.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                return
        time.sleep(0.01)
    raise AssertionError("the other submission never waited for the lock")


@pytest.mark.skipif(not PG_URL, reason="FOR UPDATE SKIP LOCKED is PostgreSQL's; set PEP_TEST_DATABASE_URL")
def test_two_schedulers_sweeping_at_once_fire_each_timer_once(deployed, engine, council, clock):
    with council.begin() as s:  # thirty children, one PEP each (one of a kind runs at a time)
        children = ["C001", "C002"] + [add_child(s, f"C1{n:02d}", f"Child {n}").id for n in range(28)]
        ids = [engine.start(s, "test_fragile", child, data={"divisor": 2}).id for child in children]
    clock.advance(days=2)
    results = run_together(
        lambda: fire_due_timers(Engine(clock), council), lambda: fire_due_timers(Engine(clock), council)
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.timers_fired for r in results) == len(ids)
    assert all(r.incidents == [] for r in results)
    with council() as s:
        assert s.scalar(select(func.count(Event.id)).where(Event.kind == "timer_fired")) == len(ids)
        assert {i.status for i in s.scalars(select(Instance))} == {"completed"}


@pytest.mark.skipif(not PG_URL, reason="FOR UPDATE SKIP LOCKED is PostgreSQL's; set PEP_TEST_DATABASE_URL")
def test_two_schedulers_sharing_the_sweep_fire_each_timer_once(deployed, engine, council, clock):
    with council.begin() as s:  # thirty children, one PEP each (one of a kind runs at a time)
        children = ["C001", "C002"] + [add_child(s, f"C1{n:02d}", f"Child {n}").id for n in range(28)]
        ids = [engine.start(s, "test_fragile", child, data={"divisor": 2}).id for child in children]
    clock.advance(days=2)
    results = run_together(
        lambda: fire_due_timers(Engine(clock), council, share=(0, 2)),
        lambda: fire_due_timers(Engine(clock), council, share=(1, 2)),
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert [r.timers_fired for r in results] == [sum(1 for i in ids if i % 2 == part) for part in (0, 1)]
    with council() as s:
        assert s.scalar(select(func.count(Event.id)).where(Event.kind == "timer_fired")) == len(ids)
        assert {i.status for i in s.scalars(select(Instance))} == {"completed"}


def test_a_sweep_running_beside_a_person_loses_nothing(deployed, engine, council, clock):
    """A timer sweep and a social worker's submission for another child at the same time both land."""
    start_review(engine, council, "C001")
    with council.begin() as s:
        fragile = engine.start(s, "test_fragile", "C002", data={"divisor": 2}).id
    clock.advance(days=2)
    task = only_task(council, "C001")

    def submit():
        with council.begin() as s:
            return engine.complete_task(s, task.id, "sw@demo.test", MEETING)

    swept, submitted = run_together(lambda: fire_due_timers(Engine(clock), council), submit)
    assert isinstance(submitted, Instance), submitted
    assert not isinstance(swept, Exception), swept
    fire_due_timers(Engine(clock), council)  # picks up the timer if the sweep lost a race and skipped it
    with council() as s:
        assert s.get(Instance, fragile).status == "completed"
        fired = s.scalars(select(Event).where(Event.kind == "timer_fired", Event.instance_id == fragile)).all()
        assert len(fired) == 1
    assert only_task(council, "C001").name == "Complete the PEP"
