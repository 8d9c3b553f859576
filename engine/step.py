"""One step of one instance: what its elements mean as they run (history, notifications, deadlines,
the PP+ ledger, statutory events), then its writes: the instance, the task projection, the Virtual
School's projection, the PP+ ledger's and quality page's rows and the child's history, together in the
caller's transaction.

A step knows nothing of other instances: the messages its instance threw are returned by `save`, and
the engine's operations deliver them (engine/runtime.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition as BaseMessage
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from . import calendar, history, limits, opening, ppplus, projection, qualityrows, statutory, tree
from .db import connection_lost, pipelined
from .errors import Conflict, EngineError, ProcessFault, Raced, diagram_failure
from .mail import one_line
from .models import Base, Instance, Notification, OpenTask
from .scripting import ScriptError, render_instructions
from .serializer import state_digest
from .statements import (
    CASE_TEAM,
    CHILD_FOR_STEP,
    CHILD_SCHOOL,
    CLOSE_TASK,
    INSERT_LEDGER,
    INSERT_ROWS,
    OPEN_TASKS_OF,
    WRITE_INSTANCE,
    ChildTip,
    Known,
    locks_rows,
)
from .vocabulary import Status

if TYPE_CHECKING:
    from .runtime import Engine


class Thrown(NamedTuple):
    """A message an instance threw in a step, for the engine to deliver once the step is written."""

    name: str
    payload: dict


class Step:
    """One step of one instance: runs the engine, then writes state, projections and history together."""

    def __init__(
        self,
        engine: Engine,
        session: Session,
        instance: Instance,
        workflow: BpmnWorkflow,
        actor: str,
        depth: int = 0,
        known: Known | None = None,
        locked: bool = False,
    ):
        self.engine, self.session, self.instance, self.workflow, self.actor = engine, session, instance, workflow, actor
        # the instance row is locked by this transaction since it was read (SELECT ... FOR UPDATE),
        # so its version cannot have moved: it is written without reading the outcome back
        self.locked = locked and locks_rows(session)
        self.depth = depth  # how many messages deep this step was caused; guards against message loops
        self.entries: list[dict] = []
        self.path: list[str] = []
        self.timers_fired = 0
        self.deadlines: dict[str, dict] = {}  # guarded element id → the interrupting timer that ended it
        self._team = known.team if known else None
        self._open_tasks = known.open_tasks if known else None
        self._child = known.child if known else None
        self.rows: dict[type[Base], list[dict]] = {OpenTask: [], Notification: []}  # inserted together in save
        self.new = False  # an instance this step creates (a failed step leaves no row of it)

    def failure(self, exc: BaseException, element_id: str | None = None) -> EngineError:
        """What a failure of the diagram's code in this step means (see `diagram_failure`), with where."""
        failure = diagram_failure(exc, self.instance.definition.process_id, element_id)
        if isinstance(failure, ProcessFault):
            failure.instance_id = None if self.new else self.instance.id
            failure.child_id = self.instance.child_id
        return failure

    def role(self, name: str | None):
        """The role a lane or notify name stands for (None when the vocabulary has no such role)."""
        return self.engine.roles(self.session).resolve(name) or self.engine.roles(self.session, refresh=True).resolve(
            name
        )

    def child(self):
        """The child's name and the tip of its history chain, locked: known from the step's first read,
        or read once, after the instance row is written or locked (locks go instance, then child)."""
        if self._child is None:
            self._child = ChildTip(*self.session.execute(CHILD_FOR_STEP, {"child_id": self.instance.child_id}).one())
        return self._child

    def open_tasks(self) -> dict[str, tuple[str, str]]:
        """The instance's open tasks as the projection holds them (id → spec id, name)."""
        if self._open_tasks is None:
            rows = self.session.execute(OPEN_TASKS_OF, {"instance_id": self.instance.id})
            self._open_tasks = {row.id: (row.spec_id, row.name) for row in rows}
        return self._open_tasks

    def team(self) -> dict[str, int]:
        """The child's case team (role key → user id), read once per step: one query, not one per
        task or notification, each of which would also flush what the step has written so far."""
        if self._team is None:
            self._team = dict(self.session.execute(CASE_TEAM, {"child_id": self.instance.child_id}).all())
        return self._team

    def log(self, kind: str, task_id: str | None = None, **data) -> None:
        self.entries.append({"kind": kind, "actor": self.actor, "task_id": task_id, "data": data})

    def advance(self) -> None:
        """Run engine tasks until every path waits for a person, a timer or a message."""
        try:
            self.workflow.do_engine_steps(did_complete_task=self.completed)
        except (EngineError, SQLAlchemyError):
            raise
        except Exception as exc:  # a diagram's script or expression failed, or went past a limit
            failure = self.failure(exc)
            if type(failure) is EngineError:
                failure = EngineError(f"the process stopped: {failure}")
            raise failure from exc

    def completed(self, task) -> None:
        """Note what a completed task means for history and notifications."""
        spec = task.task_spec
        try:
            limits.task_run()
        except limits.LimitExceeded as exc:
            raise self.failure(exc, spec.bpmn_id) from exc
        if spec.bpmn_id is None:
            return
        self.path.append(spec.bpmn_id)
        properties = getattr(spec, "extensions", {}).get("properties", {})
        if properties.get("notify"):
            self._notify(task, properties)
        if tree.is_timer(task):
            self.timers_fired += 1
            due = (
                task.internal_data.get("event_value")
                if isinstance(task.internal_data.get("event_value"), str)
                else None
            )
            self.log(
                "timer_fired",
                timer=spec.bpmn_id,
                name=spec.bpmn_name or spec.bpmn_id,
                due=due,
                **self._guards(task, due),
            )
        if properties.get(ppplus.EVENT_PROPERTY):
            try:
                line = ppplus.element_line(
                    properties, lambda source: self.workflow.script_engine.evaluate(task, source)
                )
            except Exception as exc:  # the diagram's amount or decision expression failed
                raise self.failure(exc, spec.bpmn_id) from exc
            if line:
                self.log(
                    ppplus.EVENT_KIND,
                    element=spec.bpmn_id,
                    name=spec.bpmn_name or spec.bpmn_id,
                    source=spec.bpmn_id,
                    **line,
                )
        if properties.get(statutory.STATUTORY_EVENT_PROPERTY):
            self.log(
                properties[statutory.STATUTORY_EVENT_PROPERTY],
                element=spec.bpmn_id,
                name=spec.bpmn_name or spec.bpmn_id,
                **(
                    {"date": calendar.today()}
                    if properties[statutory.STATUTORY_EVENT_PROPERTY] == "meeting_held"
                    else {}
                ),
            )

    def _guards(self, task, due: str | None) -> dict:
        """What a boundary timer guards and does to it: ends it (interrupting), or reminds before its
        due date and escalates at or after it (non-interrupting); nothing for other timers."""
        if not isinstance(task.task_spec, BoundaryEvent):
            return {}
        guarded = next((t for t in task.parent.children if not isinstance(t.task_spec, BoundaryEvent)), None)
        if guarded is None:
            return {}
        spec = guarded.task_spec
        about = {"guards": spec.bpmn_id, "guards_name": spec.bpmn_name or spec.bpmn_id}
        if task.task_spec.cancel_activity:
            self.deadlines[spec.bpmn_id] = {"timer": task.task_spec.bpmn_id, "due": due}
            return {**about, "effect": "ends"}
        deadline = opening.deadline(self, guarded) if spec.manual else None
        late = deadline is not None and due is not None and tree.as_datetime(due) >= deadline
        return {**about, "effect": "escalates" if late else "reminds"}

    def record_answers(self) -> None:
        """Add to the instance's start what it answers (its start event's `answers` and `answersDate`)."""
        for spec in self.workflow.spec.task_specs.values():
            properties = getattr(spec, "extensions", {}).get("properties", {})
            kind = properties.get(statutory.ANSWERS_PROPERTY)
            if not kind or not self.entries or self.entries[0]["kind"] != "instance_started":
                continue
            task = self.workflow.last_task or self.workflow.task_tree
            try:
                moment = self.workflow.script_engine.evaluate(task, properties[statutory.ANSWERS_DATE_PROPERTY])
                answered = statutory.answers(kind, moment)
            except Exception as exc:  # the diagram's expression failed, or gave no date
                raise self.failure(exc, spec.bpmn_id) from exc
            self.entries[0]["data"]["answers"] = answered
            return

    def _notify(self, task, properties: dict) -> None:
        """Queue the notification an element declares (notify, notifySubject, notifyBody)."""
        child_id = self.instance.child_id
        try:
            subject = render_instructions(properties["notifySubject"], task.data).strip()
            body = render_instructions(properties.get("notifyBody", ""), task.data).strip() or subject
        except ScriptError as exc:
            raise self.failure(exc, task.task_spec.bpmn_id) from exc
        sent_to, unheld = [], []
        for name in (n.strip() for n in properties["notify"].split(",") if n.strip()):
            role = self.role(name)
            if role is None:
                raise EngineError(f'{task.task_spec.bpmn_id} notifies "{name}", which is not a known role')
            if not role.casework:  # an older version's notice to a role that sees no child: nobody is told
                unheld.append(role.key)
                continue
            member = self.team().get(role.key)
            if member is None and not role.pooled:
                unheld.append(role.key)  # nobody holds it for this child; never broadcast to every holder
                continue
            self.rows[Notification].append(
                dict(
                    user_id=member,
                    role_key=None if member else role.key,
                    child_id=child_id,
                    task_id=None,
                    kind=properties.get("notifyKind", "notice"),
                    subject=one_line(subject),
                    body=body,
                    created_at=self.engine.now(),
                    sent_at=None,
                )
            )
            sent_to.append(role.key)
        self.log("notified", element=task.task_spec.bpmn_id, roles=sent_to, nobody_in=unheld, subject=subject)

    def save(self, status: str | None = None) -> list[Thrown]:
        """Write the instance (with its optimistic version check first, unless the row is locked), the
        task projection and history. The writes that need nothing read back go in one pipeline, in
        the order that lets the server work while the step does: the projection's rows while the
        locked instance's state is serialized, then the instance while its state is hashed. Return the
        messages the instance threw, for the engine to deliver (`Engine.write`)."""
        session, instance, workflow, now = self.session, self.instance, self.workflow, self.engine.now()
        finished = status or (Status.COMPLETED if workflow.is_completed() else None)
        unchecked = self.locked and instance.id is not None and not inspect(instance).modified
        state = None
        if not unchecked:
            state = self.engine.serializer.state_to_dict(workflow)
            try:
                self._write_instance(self._values(state, finished, now))
            except (StaleDataError, OperationalError) as exc:
                if connection_lost(exc):  # not a concurrent change: the caller may try again on a fresh connection
                    raise
                raise Conflict("this PEP was changed by someone else at the same moment: reload and try again") from exc
        gone = self._project_tasks(finished is not None)
        if finished == Status.COMPLETED:
            self.log("instance_completed")
        if self.path and not self.entries:
            self.log("engine_step")
        for entry in self.entries:
            entry["instance_id"] = instance.id
        child = self.child()  # locked before the projection reads the child's keys (engine/groupkeys.py)
        # the Virtual School's row of this PEP, as the step's history changes it (engine/projection.py)
        projected = projection.project_step(session, instance.id, instance.child_id, self.entries, now, self.new)
        ledger = self._ledger_rows(child, now)
        quality = self._quality_rows(child, now)
        with pipelined(session) as writes:  # the step's other writes, none of which is read back
            for statement, parameters in projected:
                writes.execute(statement, parameters)
            if gone:
                writes.execute(CLOSE_TASK, [{"task_id": task_id} for task_id in gone])
            for model, rows in self.rows.items():  # one INSERT per table for the step (tasks before notices)
                if rows:
                    writes.execute(INSERT_ROWS[model], rows)
            if unchecked:
                state = self.engine.serializer.state_to_dict(workflow)
                self._write_instance(self._values(state, finished, now), writes)
            assert state is not None  # serialized before the pipeline, or in it when the row is locked
            self._attach_step(state_digest(state))
            history.append(
                session,
                instance.child_id,
                self.entries,
                now,
                tip=(child.history_seq, child.history_head),
                writes=writes,
            )
            if ledger:  # the PP+ ledger's lines, in the transaction that records them (engine/ppplus.py)
                writes.execute(INSERT_LEDGER, ledger)
            if quality:  # the quality page's rows, likewise (engine/qualityrows.py)
                writes.execute(qualityrows.INSERT_QUALITY, quality)
        return [
            Thrown(thrown.event_definition.name, thrown.payload or {})
            for thrown in self.workflow.get_events()
            if isinstance(thrown.event_definition, BaseMessage)
        ]

    def _ledger_rows(self, child: ChildTip, now: datetime) -> list[dict]:
        """The `ppplus_entry` rows of the step's PP+ events, with the child's school (read only then)."""
        if not any(entry["kind"] == ppplus.EVENT_KIND for entry in self.entries):
            return []
        school = self.session.execute(CHILD_SCHOOL, {"child_id": self.instance.child_id}).scalar()
        return ppplus.rows_of_step(
            self.entries, child.history_seq + 1, self.instance.child_id, self.instance.id, now, school
        )

    def _quality_rows(self, child: ChildTip, now: datetime) -> list[dict]:
        """The `quality_entry` rows of the step's QA ratings and criteria (read through the task's form
        as deployed), tasks sent back and sign-offs, with the child's school (read only then)."""
        definition = self.instance.definition
        rows = qualityrows.rows_of_step(
            self.entries,
            child.history_seq + 1,
            self.instance.child_id,
            self.instance.id,
            now,
            lambda form: self.engine.forms.schema(definition, form),
        )
        if rows:
            school = self.session.execute(CHILD_SCHOOL, {"child_id": self.instance.child_id}).scalar()
            for row in rows:
                row["school"] = school
        return rows

    def _values(self, state: dict, finished: str | None, now: datetime) -> dict:
        """The instance row's new values: its state, when its next timer falls due, what it waits for."""
        timers, messages = tree.waiting(self.workflow) if not finished else ([], [])
        values = dict(
            state=state, updated_at=now, next_timer_at=min(timers) if timers else None, waiting_messages=messages
        )
        if finished:
            values.update(status=finished, ended_at=now)
        return values

    def _write_instance(self, values: dict, writes=None) -> None:
        """Write the instance row: a new or otherwise changed one (a migration's new version) through
        the session; else by one UPDATE that only lands on the version this step loaded (the
        optimistic lock), without the unit of work's bookkeeping. With `writes` (a pipeline's, when
        the row is locked: `self.locked`) the outcome is not read back."""
        session, instance = self.session, self.instance
        if instance.id is None or inspect(instance).modified:
            for name, value in values.items():
                setattr(instance, name, value)
            session.flush()
            return
        version = instance.version
        parameters = {**values, "version": version + 1, "instance_id": instance.id, "loaded_version": version}
        if writes is not None:
            writes.execute(WRITE_INSTANCE, parameters)
        elif session.connection().execute(WRITE_INSTANCE, parameters).rowcount != 1:
            raise Raced("this PEP was changed by someone else at the same moment: reload and try again")
        for name, value in dict(values, version=version + 1).items():
            set_committed_value(instance, name, value)

    def _attach_step(self, digest: str) -> None:
        """Mark the first event of the step for replay: the elements run, the digest of the state
        saved and how many events the step wrote."""
        if self.entries:
            self.entries[0]["data"].update(path=self.path, state=digest, step_events=len(self.entries))

    def _project_tasks(self, finished: bool) -> list[str]:
        """Queue the rows of newly ready tasks; return the open tasks that are no longer ready."""
        existing = self.open_tasks()
        ready = {} if finished else {str(t.id): t for t in tree.ready_human_tasks(self.workflow)}
        gone = [task_id for task_id in existing if task_id not in ready]
        for task_id in gone:
            if not any(e["task_id"] == task_id and e["kind"] == "task_completed" for e in self.entries):
                spec_id, name = existing[task_id]
                deadline = self.deadlines.get(spec_id)
                self.log(
                    "task_withdrawn",
                    task_id=task_id,
                    task=spec_id,
                    name=name,
                    **({"by_deadline": deadline} if deadline else {}),
                )
        for task_id, task in ready.items():
            if task_id not in existing:
                opening.open_task(self, task_id, task)
        return gone
