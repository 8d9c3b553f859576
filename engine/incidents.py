"""Incidents: a step the diagram could not run, recorded for the Virtual School to act on, and marked
resolved when they have. Each is told to the VS administrators and written to the child's history."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from . import history, tree
from .errors import EngineError, NotFound, ProcessFault, describe
from .mail import one_line
from .models import Child, Incident, Instance, Notification
from .people import INCIDENT_ROLE
from .statements import LEAN_INSTANCE
from .vocabulary import SYSTEM, Status

if TYPE_CHECKING:
    from .runtime import Engine


def record(
    engine: Engine,
    session: Session,
    instance_id: int | None,
    source: str,
    exc: BaseException,
    child_id: str | None = None,
    pause_timers: bool = True,
) -> Incident:
    """Record that a step failed (in a transaction of its own: the step's was rolled back) and tell
    the VS administrators. An unattended step's instance (`pause_timers`) waits for someone to act;
    a person's step failed before it changed anything, so its instance runs on as it was."""
    instance = session.get(Instance, instance_id, options=LEAN_INSTANCE) if instance_id is not None else None
    child_id = instance.child_id if instance is not None else child_id
    if child_id is None:  # an incident is in a child's history: the database would refuse it at the flush
        raise ValueError(f"an incident needs its child: no PEP {instance_id} and no child given")
    message = str(exc) if isinstance(exc, ProcessFault) else describe(exc)
    incident = Incident(
        instance_id=instance_id,
        child_id=child_id,
        at=engine.now(),
        source=source,
        message=message,
        details="".join(traceback.format_exception(exc))[-4000:],
    )
    session.add(incident)
    if instance is not None and pause_timers:
        instance.next_timer_at = None
    session.flush()
    child = session.get(Child, child_id)
    session.add(
        Notification(
            user_id=None,
            role_key=INCIDENT_ROLE,
            child_id=child_id,
            task_id=None,
            kind="incident",
            subject=one_line(
                f"A step of {getattr(exc, 'process_id', None) or 'a PEP'} for "
                f"{child.name if child else child_id} could not run (incident {incident.id})"
            ),
            body=f"A {source} step could not run and was not applied. {message[:2000]}",
            created_at=engine.now(),
            sent_at=None,
        )
    )
    history.append(
        session,
        child_id,
        [
            {
                "kind": "incident",
                "actor": SYSTEM,
                "instance_id": instance_id,
                "task_id": None,
                "data": {"source": source, "message": message, "incident_id": incident.id},
            }
        ],
        engine.now(),
    )
    return incident


def resolve(engine: Engine, session: Session, incident_id: int, actor: str, note: str = "") -> Incident:
    """Mark an incident dealt with (the diagram fixed and the PEP moved to it, or the cause gone); an
    instance whose timers it paused has them again, from its stored state, so the next sweep tries
    again. Written to the child's history."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    if incident.resolved_at is not None:
        raise EngineError(f"incident {incident_id} was resolved already")
    incident.resolved_at = engine.now()
    instance = session.get(Instance, incident.instance_id, options=LEAN_INSTANCE) if incident.instance_id else None
    if instance is not None and instance.status == Status.RUNNING and instance.next_timer_at is None:
        timers, _messages = tree.waiting(engine.load(instance))
        instance.next_timer_at = min(timers) if timers else None
    history.append(
        session,
        incident.child_id,
        [
            {
                "kind": "incident_resolved",
                "actor": actor,
                "instance_id": incident.instance_id,
                "task_id": None,
                "data": {"incident_id": incident.id, "note": note[:500]},
            }
        ],
        engine.now(),
    )
    return incident
