"""Small steps the scenario tests share: move the clock and sweep, and list a child's open tasks."""

from __future__ import annotations

import re

from sqlalchemy import select

from engine.attachments import store
from engine.models import Attachment, Instance, OpenTask, ProcessDefinition
from engine.runtime import EngineError
from engine.timers import fire_due_timers


def sweep(engine, sessions, when: str):
    """Move the clock to `when` and fire every timer due by then."""
    engine.clock.set(when)
    return fire_due_timers(engine, sessions)


def open_tasks(sessions, child="Y5") -> list[OpenTask]:
    """The child's open tasks, oldest first."""
    with sessions() as s:
        return s.scalars(select(OpenTask).where(OpenTask.child_id == child).order_by(OpenTask.ready_at)).all()


def files_named(session, child_id: str, data, at) -> None:
    """Store a small file for each answer naming one ("upload-..."), as the web app would have when it
    was attached: the engine refuses answers that name no file of the child."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += item.values()
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str) and item.startswith("upload-") and session.get(Attachment, item) is None:
            store(session, child_id, f"{item}.pdf", "application/pdf", b"%PDF-1.4", "test@demo.test", at, item)


def start_anew(engine, session, process_id: str, child_id: str, **start) -> Instance:
    """Start `process_id` for the child, ending the one of that kind already running (one runs at a
    time): for tests that play the same process again and again."""
    running = session.scalars(select(Instance).join(ProcessDefinition).where(
        Instance.child_id == child_id, Instance.status == "running", ProcessDefinition.process_id == process_id))
    for instance in running.all():
        engine.cancel(session, instance.id, "admin@demo.test", "the test starts it again")
    return engine.start(session, process_id, child_id, **start)


def recorded_after_the_fact(engine, session, task_id: str, actor: str, data: dict) -> None:
    """A person records what was done (a meeting held, a form sent) on or after the day it was done: the
    clock moves to the afternoon of the latest such date among the answers (`"x-when": "past"`), if
    that day is still to come. A task the person may not do is left to refuse them."""
    try:
        schema = engine.task_form(session, task_id, actor)["form_schema"] or {}
    except EngineError:
        return
    done = sorted(_past_dates(schema, data))
    if done and engine.clock.now().date().isoformat() < done[-1]:
        engine.clock.set(f"{done[-1]}T16:00:00+00:00")


def _past_dates(schema: dict, value):
    if isinstance(value, str) and schema.get("x-when") == "past" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        yield value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _past_dates((schema.get("properties") or {}).get(name) or {}, item)
    elif isinstance(value, list):
        for item in value:
            yield from _past_dates(schema.get("items") or {}, item)
