"""The engine's operations: start a PEP, show and complete a person's task, claim and release it,
report a change in a child's life, fire the timers that are due, cancel or withdraw a PEP.

Called by the CLI, the web app, the timer sweep and the simulator. Every operation works in the
caller's session and only flushes: the caller owns the transaction, so one step is one commit. Each
input makes its move on the workflow (engine/moves.py, as replay makes it too), in a step that writes
what it did (engine/step.py); the messages a step throws are delivered here, after it is written.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

from SpiffWorkflow.bpmn import BpmnWorkflow
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from . import (
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
)
from .clock import FrozenClock, SystemClock, install_spiff_clock
from .errors import (
    EngineError,
    FormInvalid,
    NotAllowed,
    NotFound,
    ProcessFault,
)
from .forms import size_errors, text_errors
from .models import Child, Incident, Instance, ProcessDefinition
from .moves import as_recorded, child_context
from .roles import RoleDirectory
from .scripting import make_script_engine
from .serializer import Serializer
from .statements import LEAN_INSTANCE, due_for_sweep
from .step import Step
from .tasks import TaskOperations
from .vocabulary import SYSTEM, Status

MAX_MESSAGE_DEPTH = 10


class Engine(TaskOperations):
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


def _child(session: Session, child_id: str) -> Child:
    child = session.get(Child, child_id)
    if child is None:
        raise NotFound(f"no child {child_id}")
    return child
