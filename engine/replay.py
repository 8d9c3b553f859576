"""Re-execute a child's recorded history and check it against what was stored.

Called by the auditors' pages (webui.audit) and by `pep verify`. Every engine step wrote, on its first
event, the elements it ran (`path`), how many events it wrote (`step_events`) and the digest of the
state it saved (`state`). Replay rebuilds each instance from the version that ran, feeds it the same
inputs at the recorded times (the answers of each completed task, each message with its payload, each
timer sweep, each cancellation and migration) and compares its own state digest after every step. With
the hash chain of the events themselves, that says whether the history can be trusted, and names the
event where it cannot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import clock, history, moves, tree
from .models import Child, Event, Instance, ProcessDefinition
from .moves import as_recorded
from .runtime import Engine
from .serializer import state_digest, state_matches

if TYPE_CHECKING:
    from .checkpoints import Checkpoints

STATELESS = "unchecked"


@dataclass
class Frame:
    """What an auditor sees at one event: where the instance stood and what it held just after it."""

    seq: int
    event: Event
    instance_id: int | None
    definition_id: int | None
    completed: list[str] = field(default_factory=list)  # element ids run so far in the instance, in order
    active: list[str] = field(default_factory=list)  # element ids waiting after the event
    data: dict = field(default_factory=dict)  # the instance's process data after the event
    check: str = STATELESS  # "match", "mismatch" or "unchecked" (the event changed no process state)


@dataclass
class ChildReplay:
    child_id: str
    frames: list[Frame] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    steps_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


class ReplayError(Exception):
    """A recorded step could not be re-executed."""


@dataclass
class _Run:
    """One instance being rebuilt: its version, its latest state, and how recorded task ids map to ours."""

    definition: ProcessDefinition
    state: dict | None = None
    task_ids: dict[str, UUID] = field(default_factory=dict)
    completed: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    broken: bool = False


def replay_child(
    session: Session, engine: Engine, child_id: str, checkpoints: Checkpoints | None = None
) -> ChildReplay:
    """Re-execute every step of the child's history; return the frames and every problem, named.
    The chain is verified with the installation's history keys, and held to `checkpoints` if given."""
    result = ChildReplay(child_id)
    chain = history.verify(session, child_id, checkpoints)
    result.problems += chain.problems
    child = session.get(Child, child_id)
    if child is None:
        return result
    runs: dict[int, _Run] = {}
    events = history.events(session, child_id)
    index = 0
    while index < len(events):
        event = events[index]
        size = event.data.get("step_events") if event.instance_id is not None and "state" in event.data else None
        if not size:
            run = runs.get(event.instance_id) if event.instance_id is not None else None
            result.frames.append(_frame(event, run))
            index += 1
            continue
        step, instance_id = events[index : index + size], event.instance_id
        assert instance_id is not None  # a step's first event names its instance (`size` says it is one)
        run = runs.get(instance_id) or _new_run(session, event, result)
        if run is not None:
            runs[instance_id] = run
            check = _replay_step(engine, session, child, run, step, result)
            for each in step:
                result.frames.append(_frame(each, run, check))
        else:
            result.frames += [_frame(each, None) for each in step]
        index += size
    _compare_with_stored(session, runs, result)
    return result


def _new_run(session: Session, event: Event, result: ChildReplay) -> _Run | None:
    definition_id = event.data.get("definition_id") if event.kind == "instance_started" else None
    if definition_id is None:
        instance = session.get(Instance, event.instance_id)
        result.problems.append(f"event #{event.seq} ({event.kind}): instance {event.instance_id} has no recorded start")
        return _Run(instance.definition, broken=True) if instance is not None else None
    definition = session.get(ProcessDefinition, definition_id)
    if definition is None:
        result.problems.append(f"event #{event.seq}: the version that ran (definition {definition_id}) is missing")
        return None
    return _Run(definition)


def _replay_step(
    engine: Engine, session: Session, child: Child, run: _Run, step: list[Event], result: ChildReplay
) -> str:
    """Re-run one recorded step on the rebuilt instance and compare the digest of its state."""
    first = step[0]
    if run.broken:
        return "mismatch"
    try:
        with clock.using(clock.FrozenClock(first.at)):
            workflow = _apply(engine, session, child, run, step)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the auditor must see where
        run.broken = True
        result.problems.append(f"event #{first.seq} ({_describe(first)}): could not be re-executed: {exc}")
        return "mismatch"
    # through JSON as the database stores it: the next step must start from what was saved (an int
    # key a script wrote comes back as a string, and scripts see the difference)
    run.state = json.loads(json.dumps(engine.serializer.state_to_dict(workflow)))
    run.completed += first.data.get("path", [])
    run.active = _active(workflow)
    run.data = tree.process_data(workflow)
    _map_new_tasks(workflow, run, step)
    result.steps_checked += 1
    if not state_matches(run.state, first.data["state"]):
        result.problems.append(
            f"event #{first.seq} ({_describe(first)}): re-executing it does not give the state that was stored"
        )
        return "mismatch"
    return "match"


def _apply(engine: Engine, session: Session, child: Child, run: _Run, step: list[Event]) -> BpmnWorkflow:
    """Feed the step's recorded input to the instance: the same move the engine made when it happened
    (engine/moves.py), without the step's writes."""
    first, kinds = step[0], {e.kind for e in step}
    spec, subprocess_specs = engine.spec(run.definition)
    if first.kind == "instance_started":
        workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=engine.script_engine)
        moves.begin(workflow, first.data.get("child") or moves.child_context(child))
        moves.start(
            workflow,
            as_recorded(first.data.get("data") or {}),
            workflow.do_engine_steps,
            message=first.data.get("message"),
        )
        return workflow
    if run.state is None:
        raise ReplayError("the instance has no state before this step: its start was not replayed")
    workflow = engine.serializer.state_from_dict(run.state, spec, subprocess_specs, engine.script_engine)
    if "instance_migrated" in kinds:
        return _migrate(engine, session, run, workflow, next(e for e in step if e.kind == "instance_migrated"))
    if "instance_cancelled" in kinds:
        moves.cancel(workflow)
    elif first.kind == "task_completed":
        moves.answer(
            _recorded_task(workflow, run, first), as_recorded(first.data.get("data", {})), workflow.do_engine_steps
        )
    elif first.kind == "message_received":
        moves.message(
            workflow, first.data["message"], as_recorded(first.data.get("data") or {}), workflow.do_engine_steps
        )
    else:  # a timer sweep: whatever was due at the recorded time fires again
        moves.timers(workflow, workflow.do_engine_steps)
    return workflow


def _migrate(engine, session, run: _Run, workflow: BpmnWorkflow, event: Event) -> BpmnWorkflow:
    from . import migration  # migration imports the runtime; import here to keep module loading simple

    new = session.get(ProcessDefinition, event.data["to_definition_id"])
    if new is None:
        raise ReplayError(f"the version migrated to (definition {event.data['to_definition_id']}) is missing")
    migrated = migration.apply(engine, workflow, run.definition, new)
    run.definition = new
    return migrated


def _recorded_task(workflow: BpmnWorkflow, run: _Run, event: Event):
    """Our task for the recorded one: by the id it had when it became ready, else the only ready task of its kind."""
    task = workflow.get_task_from_id(run.task_ids[event.task_id]) if event.task_id in run.task_ids else None
    if task is None:
        candidates = [
            t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.bpmn_id == event.data.get("task")
        ]
        if len(candidates) != 1:
            raise ReplayError(f'no single ready task "{event.data.get("task")}" to complete')
        task = candidates[0]
    if task.state != TaskState.READY:
        raise ReplayError(f'task "{task.task_spec.bpmn_id}" was not ready')
    return task


def _map_new_tasks(workflow: BpmnWorkflow, run: _Run, step: list[Event]) -> None:
    """Pair each task the step recorded as ready with the matching ready task of the rebuilt instance."""
    taken = set(run.task_ids.values())
    ready = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual and t.id not in taken]
    for event in step:
        if event.kind != "task_ready":
            continue
        match = next((t for t in ready if t.task_spec.bpmn_id == event.data.get("task")), None)
        if match is not None and event.task_id is not None:
            run.task_ids[event.task_id] = match.id
            ready.remove(match)


def _active(workflow: BpmnWorkflow) -> list[str]:
    """Element ids the instance waits at: ready human tasks and waiting events."""
    waiting = [t.task_spec.bpmn_id for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
    waiting += [t.task_spec.bpmn_id for t in workflow.event_manager.tasks.values()]
    return list(dict.fromkeys(w for w in waiting if w))


def _frame(event: Event, run: _Run | None, check: str = STATELESS) -> Frame:
    if run is None:
        return Frame(event.seq, event, event.instance_id, None, check=check)
    return Frame(
        event.seq, event, event.instance_id, run.definition.id, list(run.completed), list(run.active), run.data, check
    )


def _compare_with_stored(session: Session, runs: dict[int, _Run], result: ChildReplay) -> None:
    """The instance rows must hold the state the last step of each instance recorded."""
    instances = session.scalars(select(Instance).where(Instance.child_id == result.child_id)).all()
    for instance in instances:
        run = runs.get(instance.id)
        if run is None:
            result.problems.append(f"instance {instance.id} has no events in the history")
        elif not run.broken and run.state is not None and state_digest(instance.state) != state_digest(run.state):
            result.problems.append(f"instance {instance.id}: its stored state is not the state its history leads to")
        elif not run.broken and run.definition.id != instance.definition_id:
            result.problems.append(f"instance {instance.id}: runs a version its history never moved it to")


def _describe(event: Event) -> str:
    name = event.data.get("name") or event.data.get("message") or event.data.get("process_id") or ""
    return f"{event.kind} {name}".strip() + f", instance {event.instance_id}"
