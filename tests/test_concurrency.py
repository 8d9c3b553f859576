"""Two people or two schedulers at the same moment: exactly one wins, nothing is lost or applied twice."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text

from engine.models import Event, Instance, OpenTask
from engine.runtime import Conflict, Engine, Step, TaskNotReady
from engine.timers import fire_due_timers

from .conftest import PG_URL
from .test_runtime import MEETING, only_task, start_review


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


def test_two_people_submitting_one_task_at_once_exactly_one_wins(deployed, engine, council, monkeypatch):
    """Both submit at the same moment. SQLite: both run the task, and the second write is refused
    (the optimistic version check). PostgreSQL: the second waits on the first's row locks, then
    finds the task done. Either way exactly one lands and the other is told why."""
    instance_id = start_review(engine, council)
    task = only_task(council)
    locks_rows = council.kw["bind"].dialect.name == "postgresql"
    both_ran_the_task = threading.Barrier(2, timeout=20)
    original_save = Step.save

    def save_when_the_other_is_there(step, *args, **kwargs):
        if locks_rows:
            wait_for_a_blocked_transaction(council)
        else:
            both_ran_the_task.wait()
        return original_save(step, *args, **kwargs)

    monkeypatch.setattr(Step, "save", save_when_the_other_is_there)

    def submit(venue):
        def job():
            with council.begin() as s:
                return engine.complete_task(s, task.id, "sw@demo.test", {**MEETING, "venue": venue})
        return job

    results = run_together(submit("Room A"), submit("Room B"))
    winners = [r for r in results if isinstance(r, Instance)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1, results
    if locks_rows:
        assert isinstance(losers[0], TaskNotReady) and "completed already" in str(losers[0])
    else:
        assert isinstance(losers[0], Conflict) and "reload" in str(losers[0])
    with council() as s:
        completions = s.scalars(select(Event).where(Event.kind == "task_completed")).all()
        assert len(completions) == 1
        assert s.get(Instance, instance_id).version == 2
        assert s.scalar(select(func.count(OpenTask.id))) == 1
    assert only_task(council).name == "Complete the PEP"


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
    with council.begin() as s:
        ids = [engine.start(s, "test_fragile", child, data={"divisor": 2}).id for child in ["C001", "C002"] * 15]
    clock.advance(days=2)
    results = run_together(lambda: fire_due_timers(Engine(clock), council), lambda: fire_due_timers(Engine(clock), council))
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.timers_fired for r in results) == len(ids)
    assert all(r.incidents == [] for r in results)
    with council() as s:
        assert s.scalar(select(func.count(Event.id)).where(Event.kind == "timer_fired")) == len(ids)
        assert {i.status for i in s.scalars(select(Instance))} == {"completed"}


@pytest.mark.skipif(not PG_URL, reason="FOR UPDATE SKIP LOCKED is PostgreSQL's; set PEP_TEST_DATABASE_URL")
def test_two_schedulers_sharing_the_sweep_fire_each_timer_once(deployed, engine, council, clock):
    with council.begin() as s:
        ids = [engine.start(s, "test_fragile", child, data={"divisor": 2}).id for child in ["C001", "C002"] * 15]
    clock.advance(days=2)
    results = run_together(lambda: fire_due_timers(Engine(clock), council, share=(0, 2)),
                           lambda: fire_due_timers(Engine(clock), council, share=(1, 2)))
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
