"""Small steps the scenario tests share: move the clock and sweep, and list a child's open tasks."""

from __future__ import annotations

from sqlalchemy import select

from engine.models import OpenTask
from engine.timers import fire_due_timers


def sweep(engine, sessions, when: str):
    """Move the clock to `when` and fire every timer due by then."""
    engine.clock.set(when)
    return fire_due_timers(engine, sessions)


def open_tasks(sessions, child="Y5") -> list[OpenTask]:
    """The child's open tasks, oldest first."""
    with sessions() as s:
        return s.scalars(select(OpenTask).where(OpenTask.child_id == child).order_by(OpenTask.ready_at)).all()
