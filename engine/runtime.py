"""The engine's operations: start a PEP, show and complete a person's task, claim and release it,
report a change in a child's life, fire the timers that are due, cancel or withdraw a PEP.

Called by the CLI, the web app, the timer sweep and the simulator. Every operation works in the
caller's session and only flushes: the caller owns the transaction, so one step is one commit. Each
input makes its move on the workflow (engine/moves.py, as replay makes it too), in a step that writes
what it did (engine/step.py); the messages a step throws are delivered here, after it is written.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, defer

from . import (
    answers,
    calendar,
    caselife,
    clock,
    deployments,
    depth,
    history,
    incidents,
    limits,
    moves,
    overdue,
    ppplus,
    statutory,
    tree,
)
from .clock import FrozenClock, SystemClock, install_spiff_clock
from .errors import (
    Conflict,
    EngineError,
    FormInvalid,
    NotAllowed,
    NotFound,
    ProcessFault,
    Raced,
    TaskNotReady,
    diagram_failure,
)
from .forms import size_errors, text_errors
from .models import Child, Incident, Instance, OpenTask, ProcessDefinition
from .moves import as_recorded, child_context, cleared_answers
from .roles import RoleDirectory
from .scripting import ScriptError, make_script_engine, render_instructions
from .serializer import Serializer
from .statements import LEAN_INSTANCE, LEDGER_OF, due_for_sweep, task_for_actor
from .step import Step
from .vocabulary import INSTRUCTIONS, SYSTEM, Status

MAX_MESSAGE_DEPTH = 10


class Engine:
    """Holds what is shared between steps: the clock, the spec cache, the forms read and the script engine."""

    def __init__(self, clock_=None, spec_cache_size: int = 64):
        install_spiff_clock()
        depth.install()  # task trees of any depth: long diagrams, long-running loops
        self.clock = clock_ or SystemClock()
        self.serializer = Serializer()
        self.script_engine = make_script_engine(calendar.EXPRESSION_FUNCTIONS)
        self.specs = deployments.Specs(self.serializer, spec_cache_size)
        self.forms = deployments.Forms()
        self._roles: RoleDirectory | None = None
        self.overdue_policy = overdue.Policy.load()  # config/overdue.yaml: what the sweep does with late tasks

    def roles(self, session: Session, refresh: bool = False) -> RoleDirectory:
        """The role vocabulary. Roles are seeded from config/roles.yaml and never edited in place, so
        it is read once; a lane it does not know makes the caller read it again (`refresh`)."""
        if self._roles is None or refresh:
            directory = RoleDirectory.load(session)
            if not directory:
                return directory  # nothing seeded yet: do not keep an empty vocabulary
            self._roles = directory
        return self._roles

    def now(self) -> datetime:
        """The time of the operation in progress (one instant for all of it), else the clock's time."""
        return (clock.active() or self.clock).now()

    @contextmanager
    def instant(self):
        """Hold one instant for a whole operation: its timers, due dates and history share one time,
        which is what lets replay re-run the step at the time its events record."""
        with limits.step():  # an operation is one step for the limits of diagram code
            if isinstance(clock.active(), FrozenClock):
                yield
                return
            with clock.using(FrozenClock(self.clock.now())):
                yield

    # ---- starting -------------------------------------------------------------------------

    def start(
        self,
        session: Session,
        process_id: str,
        child_id: str,
        actor: str = SYSTEM,
        data: dict | None = None,
        previous_instance_id: int | None = None,
    ) -> Instance:
        """Start the newest deployed version of `process_id` for a child."""
        with self.instant():
            child = _child(session, child_id)
            definition = deployments.latest_definition(session, process_id)
            refusal = caselife.duplicate_refusal(session, child, definition)
            if refusal:
                raise EngineError(refusal)
            data = as_recorded(data or {}, new=True)
            step = self._begin(session, definition, child, actor, previous_instance_id, data=data)
            moves.start(step.workflow, data, step.advance)
            step.record_answers()
            self.write(step)
            return step.instance

    def _begin(self, session, definition, child, actor, previous_instance_id, depth=0, **log) -> Step:
        """Create a new instance of `definition` for the child, holding the child's details as data."""
        spec, subprocess_specs = self.spec(definition)
        workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=self.script_engine)
        context = child_context(child)
        moves.begin(workflow, context)
        now = self.now()
        instance = Instance(
            child_id=child.id,
            definition_id=definition.id,
            state={},
            status=Status.RUNNING,
            previous_instance_id=previous_instance_id,
            started_at=now,
            started_by=actor,
            updated_at=now,
        )
        instance.definition = definition
        session.add(instance)
        step = Step(self, session, instance, workflow, actor, depth)
        step.new = True
        step.log(
            "instance_started",
            process_id=definition.process_id,
            process_name=definition.name,
            deployment_version=definition.deployment.version,
            definition_id=definition.id,
            previous_instance_id=previous_instance_id,
            child=context,
            **log,
        )
        return step

    # ---- human tasks ----------------------------------------------------------------------

    def complete_task(
        self,
        session: Session,
        task_id: str,
        actor_email: str,
        data: dict,
        expected_version: int | None = None,
        basis: str | None = None,
        link_issued_by: str | None = None,
    ) -> Instance:
        """Validate `data` against the task's form and complete it as `actor_email` (through a
        single-use link that `link_issued_by` issued, when that is how it came).

        `expected_version` and `basis` are the instance's version and the task's `page_basis` when the
        person's page was read. Only a change to what the page was built from refuses the answers
        (`Conflict`): another branch of the PEP moving on meanwhile (someone else's task, a timer)
        does not. Without a basis, any change of version refuses them (a page from before bases)."""
        with self.instant():
            try:
                return self._complete_task(session, task_id, actor_email, data, expected_version, basis, link_issued_by)
            except Raced:
                # SQLite: another step of this PEP committed between this one's read and its write.
                # The refused write took the database's write lock, so the step is taken again from
                # what the other left, which nothing can change before commit: a task still ready,
                # with its page's basis unchanged, goes through as if it had come second
                return self._complete_task(
                    session, task_id, actor_email, data, expected_version, basis, link_issued_by, again=True
                )

    def _complete_task(
        self, session, task_id, actor_email, data, expected_version, basis, link_issued_by, again=False
    ) -> Instance:
        open_task, instance, user_id, known = task_for_actor(session, task_id, actor_email, lock=True, fresh=again)
        moved = expected_version is not None and instance.version != expected_version
        if moved and basis is None:
            raise Conflict("this PEP was changed by someone else since you opened it: reload the page")
        source = self.forms.source(instance.definition, open_task.form) if open_task.form else None
        workflow = self.load(instance)
        task = workflow.get_task_from_id(UUID(task_id))
        if task is None or task.state != TaskState.READY:
            raise TaskNotReady(f"task {task_id} is not ready (it may have been completed already)")
        if moved and basis != self.page_basis(task, source):
            raise Conflict("what this page shows was changed by someone else since you opened it: reload the page")
        schema = self.forms.schema(instance.definition, open_task.form) if source else None
        errors = answers.refusals(session, instance.child_id, source, schema, data)
        if errors:
            raise FormInvalid(errors)
        step = Step(self, session, instance, workflow, actor_email, known=known, locked=True)
        data = {**cleared_answers(source, data, task.data), **data}
        answers.check_rules(self.script_engine, step, task, data)
        data = as_recorded(data, new=True)
        # the history's entries of the answers come first: the step's other events follow them
        step.log(
            "task_completed",
            task_id=task_id,
            task=open_task.spec_id,
            name=open_task.name,
            role=open_task.role_key,
            lane=open_task.lane,
            form=open_task.form,
            data=data,
            due_at=open_task.due_at.isoformat() if open_task.due_at else None,
            late=bool(open_task.due_at and self.now() > open_task.due_at),
            user_id=user_id,
            **({"link_issued_by": link_issued_by} if link_issued_by else {}),
        )
        for event in statutory.form_events(schema, data):
            step.log(event.pop("kind"), task_id=task_id, task=open_task.spec_id, name=open_task.name, **event)
        if ppplus.declares(schema):
            asked = ppplus.pending(_ledger_lines(session, instance.id))
            for line in ppplus.form_lines(schema, data, asked):
                step.log(ppplus.EVENT_KIND, task_id=task_id, task=open_task.spec_id, name=open_task.name, **line)
        try:
            moves.answer(task, data, step.advance, ran=step.completed)
        except (EngineError, SQLAlchemyError):
            raise
        except Exception as exc:  # the diagram refused the answers, or its code failed
            failure = step.failure(exc, open_task.spec_id)
            if type(failure) is EngineError:
                failure = EngineError(f"the process could not run {open_task.name}: {failure}")
            raise failure from exc
        self.write(step)
        return instance

    def page_basis(self, task, form_source: str | None) -> str:
        """What a ready task's page is built from (see `answers.page_basis`)."""
        return answers.page_basis(self.serializer, task, form_source)

    def claim(self, session: Session, task_id: str, actor_email: str) -> OpenTask:
        """Take a pooled task into the actor's own inbox."""
        with self.instant():
            open_task, instance, user_id, _known = task_for_actor(session, task_id, actor_email)
            if open_task.assignee_id == user_id:
                return open_task
            if not open_task.pooled or open_task.assignee_id is not None:
                raise NotAllowed(f"{open_task.name} is not in a pool to claim")
            open_task.assignee_id = user_id
            self._log(
                session, instance, actor_email, "task_claimed", task_id=task_id, name=open_task.name, user_id=user_id
            )
            return open_task

    def release(self, session: Session, task_id: str, actor_email: str) -> OpenTask:
        """Give a claimed pooled task back to its pool."""
        with self.instant():
            open_task, instance, user_id, _known = task_for_actor(session, task_id, actor_email)
            if not open_task.pooled or open_task.assignee_id != user_id:
                raise NotAllowed(f"{open_task.name} is not claimed by you")
            open_task.assignee_id = None
            self._log(
                session, instance, actor_email, "task_released", task_id=task_id, name=open_task.name, user_id=user_id
            )
            return open_task

    def task_view(self, session: Session, task_id: str, actor_email: str) -> dict:
        """What a person needs to do a task: its form, rendered instructions and current data."""
        with self.instant():
            open_task, instance, _user_id, _known = task_for_actor(session, task_id, actor_email)
            task = self.load(instance).get_task_from_id(UUID(task_id))
            template = task.task_spec.extensions.get(INSTRUCTIONS) or ""
            instructions, fault = "", None
            try:
                instructions = render_instructions(template, task.data) if template else ""
            except ScriptError as exc:  # the task can still be done: it is shown without its instructions
                fault = diagram_failure(exc, instance.definition.process_id, open_task.spec_id)
                if isinstance(fault, ProcessFault):
                    fault.instance_id, fault.child_id = instance.id, instance.child_id
                if not session.scalar(
                    select(Incident.id).where(
                        Incident.instance_id == instance.id,
                        Incident.source == "instructions",
                        Incident.resolved_at.is_(None),
                    )
                ):
                    self.record_incident(session, instance.id, "instructions", fault, pause_timers=False)
            source = self.forms.source(instance.definition, open_task.form) if open_task.form else None
            return {
                **self._form_of(open_task, instance),
                "data": dict(task.data),
                "instructions": instructions,
                "instructions_fault": fault,
                "basis": self.page_basis(task, source),
            }

    def task_form(self, session: Session, task_id: str, actor_email: str) -> dict:
        """The task's form and the instance version, without rebuilding the workflow: what reading a
        submission needs (`task_view` adds the instructions and current data, for showing the page)."""
        open_task, instance, _user_id, _known = task_for_actor(session, task_id, actor_email)
        return self._form_of(open_task, instance)

    def _form_of(self, open_task: OpenTask, instance: Instance) -> dict:
        form = json.loads(self.forms.source(instance.definition, open_task.form)) if open_task.form else None
        return {"task": open_task, "instance_version": instance.version, "form_schema": form}

    def instance_data(self, session: Session, instance_id: int) -> dict:
        """The process data of an instance as it stands now (after its last completed step)."""
        with self.instant():
            return tree.process_data(self.load(self._instance(session, instance_id)))

    # ---- messages, cancellation -----------------------------------------------------------

    def send_message(
        self, session: Session, name: str, child_id: str, data: dict | None = None, actor: str = SYSTEM
    ) -> list[Instance]:
        """Deliver a message to every instance of this child that is waiting for it, and start the
        processes it starts. A person (an e-mail address) may send it only when they hold one of the
        roles its form names (`x-sent-by`). A change in the child's life (engine/caselife.py) is
        refused when it cannot happen (leaving care when not in care), and is written to the child's
        history and record whether or not a PEP received it."""
        errors = text_errors(data or {}) or size_errors(data or {})
        if errors:
            raise FormInvalid(errors)
        with self.instant():
            child = _child(session, child_id)
            if "@" in actor:
                caselife.check_sender(session, name, child_id, actor)
            refusal = caselife.report_refusal(session, child, name)
            if refusal:
                raise EngineError(refusal)
            caught = self._deliver(session, name, child_id, data or {}, actor, exclude=None)
            # after the PEPs' steps: locks go instance, then child
            caselife.record_report(
                session,
                child,
                name,
                as_recorded(data or {}, new=True),
                actor,
                self.now(),
                [instance.id for instance in caught],
            )
            return caught

    def cancel(self, session: Session, instance_id: int, actor: str, reason: str = "", **details) -> Instance:
        """Stop a running instance; its open tasks and timers go with it."""
        with self.instant():
            instance = self._instance(session, instance_id)
            if instance.status != Status.RUNNING:
                raise EngineError(f"instance {instance_id} is {instance.status}, not running")
            workflow = self.load(instance)
            moves.cancel(workflow)
            step = Step(self, session, instance, workflow, actor)
            step.log("instance_cancelled", reason=reason, **details)
            self.write(step, status=Status.CANCELLED)
            return instance

    def withdraw(self, session: Session, instance_id: int, actor: str, reason: str) -> Instance:
        """Close a running PEP early, with the reason, as a person who may (caselife.WITHDRAWERS)."""
        if not caselife.may_withdraw(session, actor):
            raise NotAllowed("only the VS Administrator or the VS Head may withdraw a PEP")
        problem = caselife.withdrawal_reason_problem(reason or "")
        if problem:
            raise FormInvalid({"reason": problem})
        return self.cancel(session, instance_id, actor, reason.strip(), withdrawn=True)

    # ---- timers ---------------------------------------------------------------------------

    def fire_due(self, session: Session, instance_id: int, now: datetime) -> int | None:
        """The sweep's step for one instance: take it (locked, and passed over while another sweeper or
        a person's step holds it), fire its timers due before `now` and run on to its next wait; how
        many fired, or None when it is not to be had or no longer due."""
        instance = session.scalar(due_for_sweep(instance_id, now))
        if instance is None:
            return None
        fired = self.fire_timers(session, instance, locked=True)
        if instance.next_timer_at is not None and instance.next_timer_at < now and instance.status == Status.RUNNING:
            raise RuntimeError(f"timer due at {instance.next_timer_at.isoformat()} did not fire")
        return fired

    def fire_timers(self, session: Session, instance: Instance, locked: bool = False) -> int:
        """Fire this instance's due timers and run on to the next wait; return how many fired.
        `locked`: the instance was read FOR UPDATE in this transaction (`fire_due`)."""
        with self.instant():
            workflow = self.load(instance)
            step = Step(self, session, instance, workflow, SYSTEM, locked=locked)
            moves.timers(workflow, step.advance)
            self.write(step)
            return step.timers_fired

    def record_incident(
        self,
        session: Session,
        instance_id: int | None,
        source: str,
        exc: BaseException,
        child_id: str | None = None,
        pause_timers: bool = True,
    ) -> Incident:
        """Record a step that failed, and tell the VS administrators (engine/incidents.py)."""
        with self.instant():
            return incidents.record(self, session, instance_id, source, exc, child_id, pause_timers)

    def resolve_incident(self, session: Session, incident_id: int, actor: str, note: str = "") -> Incident:
        """Mark an incident dealt with; a PEP it paused has its timers again (engine/incidents.py)."""
        with self.instant():
            return incidents.resolve(self, session, incident_id, actor, note)

    def record_fault(self, session: Session, fault: ProcessFault, source: str) -> Incident:
        """Record a person's (or a message's) step that the diagram could not run; nothing of it was applied."""
        return self.record_incident(
            session, fault.instance_id, source, fault, child_id=fault.child_id, pause_timers=False
        )

    # ---- writing a step and delivering what it threw --------------------------------------

    def write(self, step: Step, status: str | None = None) -> None:
        """Write the step, then hand each message its instance threw to the child's other PEPs."""
        for thrown in step.save(status):
            self._deliver(
                step.session,
                thrown.name,
                step.instance.child_id,
                thrown.payload,
                step.actor,
                exclude=step.instance.id,
                depth=step.depth + 1,
            )

    def _deliver(self, session, name, child_id, payload, actor, exclude, depth=0) -> list[Instance]:
        """Hand a message to the child's waiting instances and start the processes it starts."""
        payload = as_recorded(payload, new=True)
        starts = deployments.started_by(session, name)
        if starts:
            child = _child(session, child_id)
            for definition in starts:
                refusal = caselife.duplicate_refusal(session, child, definition)
                if refusal:
                    raise EngineError(refusal)
        candidates = session.scalars(
            select(Instance)
            .where(Instance.child_id == child_id, Instance.status == Status.RUNNING)
            .order_by(Instance.id)
            .options(*LEAN_INSTANCE, defer(Instance.state))  # read if it waits for this
        ).all()
        caught = []
        for instance in candidates:
            if instance.id == exclude or name not in (instance.waiting_messages or []):
                continue
            workflow = self.load(instance)
            step = Step(self, session, instance, workflow, actor, depth)
            step.log("message_received", message=name, data=payload)
            moves.message(workflow, name, payload, step.advance)
            self.write(step)
            caught.append(instance)
        for definition in starts:
            caught.append(self._start_by_message(session, definition, child_id, name, payload, actor, exclude, depth))
        return caught

    def _start_by_message(self, session, definition, child_id, name, payload, actor, previous, depth) -> Instance:
        if depth > MAX_MESSAGE_DEPTH:
            raise EngineError(
                f'message "{name}" keeps starting processes ({MAX_MESSAGE_DEPTH} deep): check the diagrams for a loop'
            )
        step = self._begin(
            session, definition, _child(session, child_id), actor, previous, depth, message=name, data=payload
        )
        moves.start(step.workflow, payload, step.advance, message=name)
        step.record_answers()
        self.write(step)
        return step.instance

    # ---- reading --------------------------------------------------------------------------

    def _instance(self, session, instance_id) -> Instance:
        instance = session.get(Instance, instance_id, options=LEAN_INSTANCE)
        if instance is None:
            raise NotFound(f"no instance {instance_id}")
        return instance

    def spec(self, definition: ProcessDefinition):
        """The parsed spec (and sub-process specs) of a deployed definition, cached by definition."""
        return self.specs.get(definition)

    def parse_newest(self, session: Session) -> int:
        """Parse the newest deployment's specs ahead of the first step that needs them (a server or a
        sweeper process starting); return how many."""
        definitions = deployments.newest_definitions(session)
        for definition in definitions:
            self.spec(definition)
        return len(definitions)

    def load(self, instance: Instance) -> BpmnWorkflow:
        """Rebuild an instance's workflow from its stored state on its definition's spec."""
        spec, subprocess_specs = self.spec(instance.definition)
        return self.serializer.state_from_dict(instance.state, spec, subprocess_specs, self.script_engine)

    def _log(self, session, instance, actor, kind, task_id=None, **data):
        history.append(
            session,
            instance.child_id,
            [{"kind": kind, "actor": actor, "instance_id": instance.id, "task_id": task_id, "data": data}],
            self.now(),
        )


def _ledger_lines(session: Session, instance_id: int) -> list[dict]:
    """The PP+ ledger's lines of one PEP so far (what its decisions weigh)."""
    return [
        {
            "child_id": r.child_id,
            "instance_id": r.instance_id,
            "entry": r.entry,
            "source": r.source,
            "step_seq": r.step_seq,
            "amount": r.amount_pence,
        }
        for r in session.execute(LEDGER_OF, {"instance_id": instance_id})
    ]


def _child(session: Session, child_id: str) -> Child:
    child = session.get(Child, child_id)
    if child is None:
        raise NotFound(f"no child {child_id}")
    return child
