"""The moves each input makes on a workflow: a start, an answer, a message, a timer sweep, a cancel.

The live engine (engine/runtime.py) and replay (engine/replay.py, `pep verify`) both run these, so
what an input does is written once: a change to how an answer is applied is replayed as it ran. The
caller says how the workflow then runs on (`advance`): the engine's step notes each element it runs
for history and notifications, replay only runs them. Inputs arrive in the form history records
them (`as_recorded`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState

from . import history
from .models import Child

Advance = Callable[[], None]


def child_context(child: Child) -> dict:
    """What a PEP holds of its child from its start (`child` in the process data)."""
    return {
        "id": child.id,
        "name": child.name,
        "school": child.school,
        "date_of_birth": child.date_of_birth.isoformat() if child.date_of_birth else None,
    }


def begin(workflow: BpmnWorkflow, child: dict) -> None:
    """A new instance takes the child's details as data."""
    for task in workflow.get_tasks(state=TaskState.READY):
        task.set_data(child=child)


def start(workflow: BpmnWorkflow, data: dict, advance: Advance, message: str | None = None) -> None:
    """A begun instance starts: with its start data (a person or the CLI starting it), or caught by
    its start event's message and its payload."""
    if message:
        workflow.do_engine_steps()
        workflow.send_event(BpmnEvent(MessageEventDefinition(message), payload=data))
    else:
        for task in workflow.get_tasks(state=TaskState.READY):
            task.set_data(**data)
    advance()


def answer(task, data: dict, advance: Advance, ran: Callable = lambda task: None) -> None:
    """A person's answers complete their ready task, and the PEP runs on."""
    task.set_data(**data)
    task.run()
    ran(task)
    advance()


def message(workflow: BpmnWorkflow, name: str, payload: dict, advance: Advance) -> None:
    """A message reaches an instance waiting for it."""
    workflow.send_event(BpmnEvent(MessageEventDefinition(name), payload=payload))
    advance()


def timers(workflow: BpmnWorkflow, advance: Advance) -> None:
    """A sweep: whatever is due at this instant fires."""
    workflow.refresh_timers()
    advance()


def cancel(workflow: BpmnWorkflow) -> None:
    """The instance stops; its open tasks and timers go with it."""
    workflow.cancel()


def cleared_answers(form_source: str | None, data: dict, before: dict) -> dict:
    """The form's questions left unanswered that hold an answer from before (an earlier attempt of a
    task sent back, a pre-filled value): each as None, so that a cleared answer stays cleared."""
    if not form_source:
        return {}
    return {
        name: None
        for name in _questions(form_source)
        if name not in data and before.get(name) not in (None, "", [], {})
    }


@functools.lru_cache(maxsize=256)
def _questions(form_source: str) -> tuple[str, ...]:
    return tuple(json.loads(form_source).get("properties", {}))


def as_recorded(data: dict, new: bool = False) -> dict:
    """Data exactly as the history records it (JSON types, keys sorted at every level).

    The engine runs on this form, not on the caller's: the order of keys reaches the workflow state
    (which keys a later task deletes, in what order), and PostgreSQL's JSONB does not keep the order
    they were written in, so replay could not otherwise give back the same state. `new` data (answers
    and messages arriving now) loses its negative zeros as the history does (`history.json_float`);
    data read back from the history is taken as it was recorded, so that older histories replay as
    they ran.
    """
    text = json.dumps(data, sort_keys=True, default=str)
    return json.loads(text, parse_float=history.json_float) if new else json.loads(text)
