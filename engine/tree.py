"""What a workflow's task tree says, read without walking more of it than needed: the ready tasks a
person does, the timers and messages an instance waits for, the timers on a task's boundary."""

from __future__ import annotations

from datetime import datetime

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition as BaseMessage
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState


def boundary_timers(task) -> list[tuple[datetime, bool]]:
    """When each boundary timer attached to a task falls due, and whether it ends the task (interrupting)."""
    return [
        (as_datetime(sibling.internal_data["event_value"]), bool(getattr(sibling.task_spec, "cancel_activity", False)))
        for sibling in task.parent.children
        if sibling is not task
        and isinstance(getattr(sibling.task_spec, "event_definition", None), TimerEventDefinition)
        and isinstance(sibling.internal_data.get("event_value"), str)
    ]


def ready_human_tasks(workflow: BpmnWorkflow) -> list:
    """The workflow's READY user tasks (sub-processes included) in task-tree order, as
    `get_tasks(state=READY)` gives them, without walking the tree when fewer than two are ready."""
    ready = [
        t
        for wf in (workflow, *workflow.subprocesses.values())
        for t in wf.tasks.values()
        if t.state == TaskState.READY and t.task_spec.manual
    ]
    if len(ready) < 2:
        return ready
    return [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]


def waiting(workflow: BpmnWorkflow) -> tuple[list[datetime], list[str]]:
    """When each waiting timer falls due, and which messages the instance waits for.

    Event-based gateways wait for several events at once (a MultipleEventDefinition); their timers and
    messages are unpacked so that the sweep and message routing find them.
    """
    timers, messages = [], set()
    for task in workflow.event_manager.tasks.values():
        definition = task.task_spec.event_definition
        parts = definition.event_definitions if isinstance(definition, MultipleEventDefinition) else [definition]
        for part in parts:
            if isinstance(part, TimerEventDefinition):
                value = task.internal_data.get("event_value")
                if isinstance(value, dict):  # a cycle timer: its next firing, while cycles remain
                    value = value.get("next") if value.get("cycles") != 0 else None
                if isinstance(value, str):
                    timers.append(as_datetime(value))
            elif isinstance(part, BaseMessage):
                messages.add(part.name)
    return timers, sorted(messages)


def is_timer(task) -> bool:
    """Whether a completed task is a timer that fired, also on an event-based gateway's branch
    (SpiffWorkflow keeps the branch events' definitions on the gateway)."""
    if isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition):
        return True
    gateway = getattr(task.parent.task_spec, "event_definition", None) if task.parent else None
    names = {task.task_spec.bpmn_name, task.task_spec.bpmn_id}
    return isinstance(gateway, MultipleEventDefinition) and any(
        isinstance(d, TimerEventDefinition) and d.name in names for d in gateway.event_definitions
    )


def as_datetime(value) -> datetime:
    return TimerEventDefinition.get_datetime(value) if isinstance(value, str) else value


def process_data(workflow: BpmnWorkflow) -> dict:
    """The process data of an instance as it stands (after its last completed step)."""
    if workflow.is_completed() and workflow.data:
        return dict(workflow.data)
    return dict(workflow.last_task.data) if workflow.last_task is not None else {}
