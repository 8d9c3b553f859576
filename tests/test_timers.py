"""Deadlines: timers fired by the sweep with a moved clock, across bank holidays and half-terms."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.db import make_db, session_factory
from engine.errors import EngineError
from engine.history import events
from engine.models import Incident, Instance, Notification
from engine.runtime import Engine
from engine.timers import fire_due_timers

from .helpers import sweep
from .test_runtime import MEETING, complete, only_task, open_tasks, start_review


def kinds(sessions, child_id="C001"):
    with sessions() as s:
        return [e.kind for e in events(s, child_id)]


def test_nothing_fires_before_it_is_due(deployed, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    result = sweep(engine, council, "2026-03-13T23:00:00+00:00")
    assert (result.instances, result.timers_fired) == (0, 0)


def test_the_reminder_fires_and_the_teacher_keeps_the_task(deployed, engine, council):
    """Non-interrupting: two working days before the deadline the reminder fires; the PEP stays open."""
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    task = only_task(council)
    result = sweep(engine, council, "2026-03-14T08:00:00+00:00")
    assert result.timers_fired == 1
    assert only_task(council).id == task.id
    assert kinds(council)[-1] == "timer_fired"


def test_a_late_pep_goes_to_the_vs_adviser_to_chase(deployed, engine, council):
    """Interrupting: at the deadline the teacher's task is withdrawn and the EA pool is asked to chase."""
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    sweep(engine, council, "2026-03-14T08:00:00+00:00")
    result = sweep(engine, council, "2026-03-18T00:00:01+00:00")
    assert result.timers_fired == 1
    chase = only_task(council)
    assert (chase.name, chase.pooled, chase.role_key) == ("Chase the late PEP", True, "vs_education_adviser")
    assert kinds(council)[-3:] == ["timer_fired", "task_withdrawn", "task_ready"]


def test_after_chasing_the_deadline_moves_and_the_timer_does_not_refire_at_once(deployed, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    sweep(engine, council, "2026-03-18T00:00:01+00:00")
    complete(engine, council, only_task(council), "ea@demo.test", {"extra_days": 3, "note": "Please finish"})
    task = only_task(council)
    # Wednesday 18 March + 3 working days = Monday 23 March, same time of day
    assert task.name == "Complete the PEP" and task.due_at.isoformat() == "2026-03-23T00:00:01+00:00"
    assert sweep(engine, council, "2026-03-18T12:00:00+00:00").timers_fired == 0
    assert only_task(council).id == task.id


def test_a_working_day_deadline_skips_the_easter_bank_holidays(deployed, engine, council):
    engine.clock.set("2026-03-30T09:00:00+00:00")
    start_review(engine, council)
    # meeting on Wednesday 1 April 2026; Good Friday 3 April and Easter Monday 6 April are bank holidays
    complete(engine, council, only_task(council), "sw@demo.test", {**MEETING, "meeting_date": "2026-04-01"})
    task = only_task(council)
    assert task.due_at.isoformat() == "2026-04-10T22:59:59+00:00"  # Friday 10 April, end of day (BST)
    assert sweep(engine, council, "2026-04-09T22:00:00+00:00").timers_fired == 1  # just the reminder
    assert only_task(council).id == task.id
    assert sweep(engine, council, "2026-04-10T23:00:00+00:00").timers_fired == 1
    assert only_task(council).name == "Chase the late PEP"


def test_a_school_day_deadline_skips_half_term_and_escalates_to_the_vs_head(deployed, engine, council):
    engine.clock.set("2026-10-19T09:00:00+00:00")
    with council.begin() as s:
        engine.start(s, "test_initial_meeting", "C001", actor="sw@demo.test", data={"entered_care": "2026-10-19"})
    task = only_task(council)
    # 10 school days from Monday 19 October, skipping half-term 26-30 October: Monday 9 November
    assert task.due_at.isoformat() == "2026-11-09T23:59:59+00:00"
    assert sweep(engine, council, "2026-11-02T09:00:00+00:00").timers_fired == 0  # 10 working days: not yet
    assert sweep(engine, council, "2026-11-10T00:00:00+00:00").timers_fired == 1
    escalation = only_task(council)
    assert (escalation.name, escalation.role_key, escalation.pooled) == (
        "Resolve the overdue initial PEP",
        "vs_head",
        True,
    )
    with council() as s:
        notices = s.scalars(select(Notification).where(Notification.kind == "escalation")).all()
    assert sorted((n.role_key or "", n.user_id is not None) for n in notices) == [("", True), ("vs_head", False)]
    assert notices[0].subject == "Initial PEP meeting for Alex Example is overdue"
    with council() as s:
        notified = [e for e in events(s, "C001") if e.kind == "notified"][0]
    # the child has no carer recorded: nobody is told, and the history says so (no broadcast to all carers)
    assert notified.data["roles"] == ["vs_head", "social_worker"] and notified.data["nobody_in"] == ["carer"]


def test_a_restarted_engine_still_fires_pending_timers(deployed, engine, council, db):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    engine.clock.set("2026-03-18T00:00:01+00:00")
    restarted = Engine(engine.clock)
    fresh_db = make_db(db.url.render_as_string(hide_password=False))
    try:
        result = fire_due_timers(restarted, session_factory(fresh_db))
    finally:
        fresh_db.dispose()
    assert result.timers_fired == 2
    assert only_task(council).name == "Chase the late PEP"


def test_a_failing_instance_becomes_an_incident_and_the_sweep_goes_on(deployed, engine, council):
    with council.begin() as s:
        broken = engine.start(s, "test_fragile", "C001", data={"divisor": 0}).id
        healthy = engine.start(s, "test_fragile", "C002", data={"divisor": 5}).id
    result = sweep(engine, council, "2026-03-03T09:00:01+00:00")
    assert result.incidents == [broken]
    with council() as s:
        assert s.get(Instance, healthy).status == "completed"
        broken_instance = s.get(Instance, broken)
        assert broken_instance.status == "running" and broken_instance.next_timer_at is None
        incident = s.scalars(select(Incident)).one()
        assert incident.instance_id == broken and "division by zero" in incident.message
    assert kinds(council)[-1] == "incident"
    assert sweep(engine, council, "2026-03-04T09:00:00+00:00").instances == 0


def test_cancelled_reviews_have_no_timers_left(deployed, engine, council):
    instance_id = start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    with council.begin() as s:
        engine.cancel(s, instance_id, "sw@demo.test")
    assert sweep(engine, council, "2026-04-30T00:00:00+00:00").instances == 0
    assert open_tasks(council) == []


def test_the_scheduler_sweeps_due_timers_in_the_background(deployed, engine, council):
    import time

    from engine.scheduler import make_scheduler

    with council.begin() as s:
        instance_id = engine.start(s, "test_fragile", "C001", data={"divisor": 2}).id
    engine.clock.advance(days=2)
    scheduler = make_scheduler(engine, council, interval_seconds=0.2, background=True)
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with council() as s:
                if s.get(Instance, instance_id).status == "completed":
                    break
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    with council() as s:
        assert s.get(Instance, instance_id).status == "completed"


def test_an_event_based_gateway_opens_the_review_when_its_timer_comes_first(deployed, engine, council):
    with council.begin() as s:
        instance = engine.start(s, "test_window", "C001")
        assert instance.waiting_messages == ["child_leaves_care"]
        assert instance.next_timer_at.isoformat() == "2026-03-05T09:00:00+00:00"
    assert sweep(engine, council, "2026-03-05T09:00:01+00:00").timers_fired == 1
    assert only_task(council).name == "Hold the review"


def test_an_event_based_gateway_closes_when_the_child_leaves_care_first(deployed, engine, council):
    with council.begin() as s:
        instance_id = engine.start(s, "test_window", "C001").id
    with council.begin() as s:
        assert [i.id for i in engine.send_message(s, "child_leaves_care", "C001", {})] == [instance_id]
    with council() as s:
        instance = s.get(Instance, instance_id)
        assert (instance.status, instance.next_timer_at) == ("completed", None)
    assert sweep(engine, council, "2026-03-06T00:00:00+00:00").timers_fired == 0


def test_two_sweeper_processes_share_a_sweep_and_fire_every_timer_once(deployed, engine, council, db):
    """`pep scheduler --processes 2`: each process takes its share of the due PEPs, none is fired twice."""
    from sqlalchemy import func

    from engine.models import Event
    from engine.people import add_child
    from engine.timers import SweeperPool

    children = ["C001", "C002"] + [f"C1{n:02d}" for n in range(10)]
    with council.begin() as s:
        for child in children[2:]:
            add_child(s, child, f"Child {child}")
        # one PEP of a kind runs for a child at a time (engine/caselife.py): twelve children
        ids = [engine.start(s, "test_fragile", child, data={"divisor": 2}).id for child in children]
    engine.clock.advance(days=2)
    with SweeperPool(db.url.render_as_string(hide_password=False), 2, engine.clock) as pool:
        result = pool.sweep()
        assert (result.instances, result.timers_fired, result.incidents) == (len(ids), len(ids), [])
        assert pool.sweep().instances == 0
    with council() as s:
        assert s.scalar(select(func.count(Event.id)).where(Event.kind == "timer_fired")) == len(ids)
        assert {i.status for i in s.scalars(select(Instance))} == {"completed"}


def test_the_scheduler_also_sends_notifications_by_email_when_smtp_is_set_up(deployed, engine, council):
    """`pep scheduler` (served by gunicorn, the web app runs no scheduler of its own) e-mails notifications."""
    from engine.mail import settings_from_env
    from engine.scheduler import make_scheduler

    without = make_scheduler(engine, council, mail_settings=None)
    with_mail = make_scheduler(engine, council, mail_settings={**settings_from_env(), "SMTP_HOST": "smtp.council.test"})
    assert [job.id for job in without.get_jobs()] == ["timer-sweep"]
    assert [job.id for job in with_mail.get_jobs()] == ["timer-sweep", "notifications"]


def test_resolving_an_incident_gives_the_instance_its_timers_again(deployed, engine, council):
    with council.begin() as s:
        broken = engine.start(s, "test_fragile", "C001", data={"divisor": 0}).id
    assert sweep(engine, council, "2026-03-03T09:00:01+00:00").incidents == [broken]
    with council() as s:
        incident_id = s.scalars(select(Incident.id)).one()
    with council.begin() as s:
        engine.resolve_incident(s, incident_id, "admin@demo.test", note="Diagram fixed in version 2")
    with council() as s:
        assert s.get(Incident, incident_id).resolved_at is not None
        assert s.get(Instance, broken).next_timer_at is not None  # the sweep will try it again
    assert kinds(council)[-1] == "incident_resolved"
    assert sweep(engine, council, "2026-03-04T09:00:00+00:00").incidents == [broken]  # still broken: told again
    with pytest.raises(EngineError, match="resolved already"), council.begin() as s:
        engine.resolve_incident(s, incident_id, "admin@demo.test")
