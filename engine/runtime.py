"""Run PEP processes: start, complete a task, claim, send a message, fire timers, cancel.

Called by the CLI, the web app, the timer sweep and the simulator. Every public method works in the
caller's session and only flushes: the caller owns the transaction, so one step is one commit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import orjson
from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition as BaseMessage
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, func, inspect, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, defer, joinedload, lazyload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from . import calendar, caselife, clock, depth, history, limits, overdue, oversight, ppplus, statutory
from .attachments import unknown_files
from .clock import FrozenClock, SystemClock, install_spiff_clock
from .db import connection_lost, json_rows, pipelined
from .deploy import FALLBACK_PROPERTY, SENT_BACK_PROPERTY
from .forms import field_errors, size_errors, text_errors
from .mail import one_line
from .models import (
    CaseTeamMember,
    Child,
    Deployment,
    Incident,
    Instance,
    Notification,
    OpenTask,
    PpplusEntry,
    ProcessDefinition,
    User,
    UserRole,
)
from .people import INCIDENT_ROLE, holds_role_for, needs_person_notice
from .roles import RoleDirectory
from .scripting import ScriptError, make_script_engine, render_instructions
from .serializer import Serializer, state_digest

SYSTEM = "system"
MAX_MESSAGE_DEPTH = 10
# Load an instance without its definition's spec (the engine caches specs) and without every file
# and spec of its deployment: reading those on each step cost more than running the step.
LEAN_DEFINITION = (joinedload(ProcessDefinition.deployment).options(lazyload(Deployment.files),
                                                                   lazyload(Deployment.definitions)),)
LEAN_INSTANCE = (joinedload(Instance.definition).options(defer(ProcessDefinition.spec), *LEAN_DEFINITION),)
# A step's reads and writes of the projections, built once (their compiled form is cached by SQLAlchemy)
_OPEN, _TEAM, _CHILD, _INSTANCE = OpenTask.__table__, CaseTeamMember.__table__, Child.__table__, Instance.__table__
# the columns set are the parameters' other keys; it lands only on the version the step loaded
WRITE_INSTANCE = _INSTANCE.update().where(_INSTANCE.c.id == bindparam("instance_id"),
                                          _INSTANCE.c.version == bindparam("loaded_version"))
OPEN_TASKS_OF = select(_OPEN.c.id, _OPEN.c.spec_id, _OPEN.c.name).where(_OPEN.c.instance_id == bindparam("instance_id"))
CLOSE_TASK = _OPEN.delete().where(_OPEN.c.id == bindparam("task_id"))
INSERT_ROWS = {OpenTask: _OPEN.insert().inline(), Notification: Notification.__table__.insert().inline()}  # no id read back
CASE_TEAM = select(_TEAM.c.role_key, _TEAM.c.user_id).where(_TEAM.c.child_id == bindparam("child_id"))
CHILD_SCHOOL = select(_CHILD.c.school).where(_CHILD.c.id == bindparam("child_id"))
INSERT_LEDGER = PpplusEntry.__table__.insert().inline()
LEDGER_OF = (select(PpplusEntry.child_id, PpplusEntry.instance_id, PpplusEntry.entry, PpplusEntry.source,
                    PpplusEntry.step_seq, PpplusEntry.amount_pence).where(PpplusEntry.instance_id == bindparam("instance_id")))
CHILD_FOR_STEP = (select(_CHILD.c.name, _CHILD.c.history_seq, _CHILD.c.history_head)
                  .where(_CHILD.c.id == bindparam("child_id")).with_for_update())

# A task with its instance, and in the same statement what deciding who may act and running the step
# need: the acting user (e-mails are stored lower-case, so the unique index finds them) and their
# roles, the child's case team, the instance's open tasks, the child's name and history tip.
_SIBLING = _OPEN.alias("sibling")
_ACTOR = select(User.id).where(User.email == bindparam("email"), User.active)
TASK_FOR_ACTOR = (
    select(OpenTask, Instance, _ACTOR.scalar_subquery().label("actor_id"),
           select(json_rows(UserRole.role_key)).where(UserRole.user_id == _ACTOR.scalar_subquery()).scalar_subquery().label("actor_roles"),
           select(json_rows(_TEAM.c.role_key, _TEAM.c.user_id)).where(_TEAM.c.child_id == _OPEN.c.child_id)
           .scalar_subquery().label("team"),
           select(json_rows(_SIBLING.c.id, _SIBLING.c.spec_id, _SIBLING.c.name))
           .where(_SIBLING.c.instance_id == _OPEN.c.instance_id).scalar_subquery().label("open_tasks"),
           _CHILD.c.name.label("child_name"), _CHILD.c.history_seq, _CHILD.c.history_head)
    .join(Instance, Instance.id == OpenTask.instance_id).join(_CHILD, _CHILD.c.id == OpenTask.child_id)
    .where(OpenTask.id == bindparam("task_id"))
    # the definition without its spec or deployment: forms are cached by deployment id (_form_source)
    .options(joinedload(Instance.definition).options(defer(ProcessDefinition.spec), lazyload(ProcessDefinition.deployment)))
)
# ...to complete it: the instance and the child are locked (in that order, as every step takes them)
# where the database has row locks, so that the step's writes need not read anything back
TASK_FOR_STEP = TASK_FOR_ACTOR.with_for_update(of=[Instance, _CHILD])


def _ledger_lines(session: Session, instance_id: int) -> list[dict]:
    """The PP+ ledger's lines of one PEP so far (what its decisions weigh)."""
    return [{"child_id": r.child_id, "instance_id": r.instance_id, "entry": r.entry, "source": r.source,
             "step_seq": r.step_seq, "amount": r.amount_pence}
            for r in session.execute(LEDGER_OF, {"instance_id": instance_id})]


class ChildTip(NamedTuple):
    """The child's name and the end of its history chain, as a step reads them."""

    name: str
    history_seq: int
    history_head: str


class Known(NamedTuple):
    """What a step's first read already found, so the step does not read it again."""

    team: dict[str, int]
    open_tasks: dict[str, tuple[str, str]]  # task id → (spec id, name)
    child: ChildTip | None  # only when read under the child's row lock


class EngineError(Exception):
    """A request the engine refuses; the message is meant for the person who made it."""


class NotFound(EngineError):
    pass


class NotAllowed(EngineError):
    pass


class TaskNotReady(EngineError):
    pass


class Conflict(EngineError):
    """Someone else changed this PEP at the same moment: reload and try again."""


class Raced(Conflict):
    """Another step of this PEP was written between this step's read and its write (SQLite, which has
    no row locks). Nothing of the step was written, and the refused write holds the database's write
    lock: `complete_task` takes the step once more from the PEP as it now stands."""


class ProcessFault(EngineError):
    """The diagram could not run this step: its own code failed or went past one of its limits. Nothing
    of the step is applied (the caller rolls back), the caller records it (`Engine.record_incident`),
    and the person is told plainly (`PLAIN`); the owner reads what happened in the incident."""

    PLAIN = "This step could not run; the Virtual School has been told."

    instance_id: int | None = None  # the instance whose step failed, when it was stored before the step
    child_id: str | None = None

    def __init__(self, process_id: str | None, element_id: str | None, cause: str, limit: str | None = None):
        self.process_id, self.element_id, self.cause, self.limit = process_id, element_id, cause, limit
        where = f"process {process_id or '?'}, element {element_id or '?'}"
        what = f"{limit} limit" if limit else "error"
        super().__init__(f"{where}: {what}: {cause}")


def diagram_failure(exc: BaseException, process_id: str | None, element_id: str | None = None) -> EngineError:
    """What a failure of a diagram's code means: an `assert` in a script is the diagram refusing the
    answers (said to the person as it is written); anything else is a fault of the diagram."""
    if isinstance(exc, EngineError):
        return exc
    limit, seen = None, exc
    while seen is not None:
        if isinstance(seen, AssertionError):
            return EngineError(str(seen) or "the answers were refused by a check in the process")
        if isinstance(seen, (ScriptError, limits.LimitExceeded)) and seen.limit:
            limit = seen.limit
        task_spec = getattr(getattr(seen, "task", None), "task_spec", None)
        if element_id is None and task_spec is not None:
            element_id = task_spec.bpmn_id or task_spec.name
        seen = seen.__cause__ or seen.__context__
    return ProcessFault(process_id, element_id, _describe(exc), limit)


class FormInvalid(EngineError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("the form has errors: " + "; ".join(errors.values()))


class Engine:
    """Holds what is shared between steps: the clock, the spec cache and the script engine."""

    def __init__(self, clock_=None, spec_cache_size: int = 64):
        install_spiff_clock()
        depth.install()  # task trees of any depth: long diagrams, long-running loops
        self.clock = clock_ or SystemClock()
        self.serializer = Serializer()
        self.script_engine = make_script_engine(calendar.EXPRESSION_FUNCTIONS)
        self._specs: OrderedDict[int, tuple] = OrderedDict()
        self._spec_cache_size = spec_cache_size
        self._forms: dict[tuple[int, str], str] = {}
        self._schemas: dict[tuple[int, str], dict] = {}
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

    def start(self, session: Session, process_id: str, child_id: str, actor: str = SYSTEM,
              data: dict | None = None, previous_instance_id: int | None = None) -> Instance:
        """Start the newest deployed version of `process_id` for a child."""
        with self.instant():
            child = _child(session, child_id)
            definition = self.latest_definition(session, process_id)
            refusal = caselife.duplicate_refusal(session, child, definition)
            if refusal:
                raise EngineError(refusal)
            data = as_recorded(data or {}, new=True)
            step = self._begin(session, definition, child, actor, previous_instance_id, data=data)
            for task in step.workflow.get_tasks(state=TaskState.READY):
                task.set_data(**data)
            step.advance()
            step.record_answers()
            step.save()
            return step.instance

    def _begin(self, session, definition, child, actor, previous_instance_id, depth=0, **log) -> Step:
        """Create a new instance of `definition` for the child, holding the child's details as data."""
        spec, subprocess_specs = self.spec(definition)
        workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=self.script_engine)
        context = _child_context(child)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.set_data(child=context)
        now = self.now()
        instance = Instance(child_id=child.id, definition_id=definition.id, state={}, status="running",
                            previous_instance_id=previous_instance_id, started_at=now, started_by=actor,
                            updated_at=now)
        instance.definition = definition
        session.add(instance)
        step = Step(self, session, instance, workflow, actor, depth)
        step.new = True
        step.log("instance_started", process_id=definition.process_id, process_name=definition.name,
                 deployment_version=definition.deployment.version, definition_id=definition.id,
                 previous_instance_id=previous_instance_id, child=context, **log)
        return step

    def latest_definition(self, session: Session, process_id: str) -> ProcessDefinition:
        """The process in the newest deployment; a process that a later version retired starts no more."""
        newest = select(func.max(Deployment.version)).scalar_subquery()
        definition = session.scalar(
            select(ProcessDefinition).join(Deployment)
            .where(ProcessDefinition.process_id == process_id, Deployment.version == newest)
        )
        if definition is None:
            last = session.scalar(select(func.max(Deployment.version)).join(ProcessDefinition)
                                  .where(ProcessDefinition.process_id == process_id))
            if last is None:
                raise NotFound(f'no deployed process "{process_id}" (run `pep deploy` first)')
            raise NotFound(f'process "{process_id}" was retired in version {last + 1}: it can no longer be started')
        return definition

    # ---- human tasks ----------------------------------------------------------------------

    def complete_task(self, session: Session, task_id: str, actor_email: str, data: dict,
                      expected_version: int | None = None, basis: str | None = None,
                      link_issued_by: str | None = None) -> Instance:
        """Validate `data` against the task's form and complete it as `actor_email` (through a
        single-use link that `link_issued_by` issued, when that is how it came).

        `expected_version` and `basis` are the instance's version and the task's `page_basis` when the
        person's page was read. Only a change to what the page was built from refuses the answers
        (`Conflict`): another branch of the PEP moving on meanwhile (someone else's task, a timer)
        does not. Without a basis, any change of version refuses them (a page from before bases)."""
        with self.instant():
            try:
                return self._complete_task(session, task_id, actor_email, data, expected_version, basis,
                                           link_issued_by)
            except Raced:
                # SQLite: another step of this PEP committed between this one's read and its write.
                # The refused write took the database's write lock, so the step is taken again from
                # what the other left, which nothing can change before commit: a task still ready,
                # with its page's basis unchanged, goes through as if it had come second
                return self._complete_task(session, task_id, actor_email, data, expected_version, basis,
                                           link_issued_by, again=True)

    def _complete_task(self, session, task_id, actor_email, data, expected_version, basis, link_issued_by,
                       again=False) -> Instance:
        open_task, instance, user_id, known = self._task_for_actor(session, task_id, actor_email, lock=True,
                                                                   fresh=again)
        moved = expected_version is not None and instance.version != expected_version
        if moved and basis is None:
            raise Conflict("this PEP was changed by someone else since you opened it: reload the page")
        source = self._form_source(instance, open_task.form) if open_task.form else None
        workflow = self.load(instance)
        task = workflow.get_task_from_id(UUID(task_id))
        if task is None or task.state != TaskState.READY:
            raise TaskNotReady(f"task {task_id} is not ready (it may have been completed already)")
        if moved and basis != self.page_basis(task, source):
            raise Conflict("what this page shows was changed by someone else since you opened it: reload the page")
        errors = (text_errors(data, source) or size_errors(data, source)
                  or (field_errors(source, data) if source else {})
                  or (unknown_files(session, instance.child_id, self._form_schema(instance, open_task.form), data)
                      if source else {}))
        if errors:
            raise FormInvalid(errors)
        step = Step(self, session, instance, workflow, actor_email, known=known, locked=True)
        data = {**cleared_answers(source, data, task.data), **data}
        self._check_rules(step, task, data)
        data = as_recorded(data, new=True)
        task.set_data(**data)
        try:
            task.run()
        except SQLAlchemyError:
            raise
        except Exception as exc:  # the diagram refused the answers, or its code failed
            failure = step.failure(exc, open_task.spec_id)
            if type(failure) is EngineError:
                failure = EngineError(f"the process could not run {open_task.name}: {failure}")
            raise failure from exc
        step.log("task_completed", task_id=task_id, task=open_task.spec_id, name=open_task.name,
                 role=open_task.role_key, lane=open_task.lane, form=open_task.form, data=data,
                 due_at=open_task.due_at.isoformat() if open_task.due_at else None,
                 late=bool(open_task.due_at and self.now() > open_task.due_at), user_id=user_id,
                 **({"link_issued_by": link_issued_by} if link_issued_by else {}))
        schema = self._form_schema(instance, open_task.form) if source else None
        for event in statutory.form_events(schema, data):
            step.log(event.pop("kind"), task_id=task_id, task=open_task.spec_id, name=open_task.name, **event)
        if ppplus.declares(schema):
            asked = ppplus.pending(_ledger_lines(session, instance.id))
            for line in ppplus.form_lines(schema, data, asked):
                step.log(ppplus.EVENT_KIND, task_id=task_id, task=open_task.spec_id, name=open_task.name, **line)
        step.completed(task)
        step.advance()
        step.save()
        return instance

    def page_basis(self, task, form_source: str | None) -> str:
        """A digest of what a ready task's page is built from: its form, its instructions and the
        process data it shows and pre-fills (the task's own copy, as stored). Another branch moving on
        leaves it as it was; a new version of the process can change its form."""
        digest = hashlib.sha256((form_source or "").encode())
        digest.update(b"\0" + (task.task_spec.extensions.get("instructionsForEndUser") or "").encode())
        digest.update(b"\0" + orjson.dumps(self.serializer.registry.convert(task.data),
                                           option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))
        return digest.hexdigest()[:32]

    def claim(self, session: Session, task_id: str, actor_email: str) -> OpenTask:
        """Take a pooled task into the actor's own inbox."""
        with self.instant():
            open_task, instance, user_id, _known = self._task_for_actor(session, task_id, actor_email)
            if open_task.assignee_id == user_id:
                return open_task
            if not open_task.pooled or open_task.assignee_id is not None:
                raise NotAllowed(f"{open_task.name} is not in a pool to claim")
            open_task.assignee_id = user_id
            self._log(session, instance, actor_email, "task_claimed", task_id=task_id, name=open_task.name,
                      user_id=user_id)
            return open_task

    def release(self, session: Session, task_id: str, actor_email: str) -> OpenTask:
        """Give a claimed pooled task back to its pool."""
        with self.instant():
            open_task, instance, user_id, _known = self._task_for_actor(session, task_id, actor_email)
            if not open_task.pooled or open_task.assignee_id != user_id:
                raise NotAllowed(f"{open_task.name} is not claimed by you")
            open_task.assignee_id = None
            self._log(session, instance, actor_email, "task_released", task_id=task_id, name=open_task.name,
                      user_id=user_id)
            return open_task

    def task_view(self, session: Session, task_id: str, actor_email: str) -> dict:
        """What a person needs to do a task: its form, rendered instructions and current data."""
        with self.instant():
            open_task, instance, _user_id, _known = self._task_for_actor(session, task_id, actor_email)
            task = self.load(instance).get_task_from_id(UUID(task_id))
            template = task.task_spec.extensions.get("instructionsForEndUser") or ""
            instructions, fault = "", None
            try:
                instructions = render_instructions(template, task.data) if template else ""
            except ScriptError as exc:  # the task can still be done: it is shown without its instructions
                fault = diagram_failure(exc, instance.definition.process_id, open_task.spec_id)
                fault.instance_id, fault.child_id = instance.id, instance.child_id
                if not session.scalar(select(Incident.id).where(Incident.instance_id == instance.id,
                                                                Incident.source == "instructions",
                                                                Incident.resolved_at.is_(None))):
                    self.record_incident(session, instance.id, "instructions", fault, pause_timers=False)
            source = self._form_source(instance, open_task.form) if open_task.form else None
            return {**self._form_of(open_task, instance), "data": dict(task.data), "instructions": instructions,
                    "instructions_fault": fault, "basis": self.page_basis(task, source)}

    def task_form(self, session: Session, task_id: str, actor_email: str) -> dict:
        """The task's form and the instance version, without rebuilding the workflow: what reading a
        submission needs (`task_view` adds the instructions and current data, for showing the page)."""
        open_task, instance, _user_id, _known = self._task_for_actor(session, task_id, actor_email)
        return self._form_of(open_task, instance)

    def _form_of(self, open_task: OpenTask, instance: Instance) -> dict:
        form = json.loads(self._form_source(instance, open_task.form)) if open_task.form else None
        return {"task": open_task, "instance_version": instance.version, "form_schema": form}

    def _check_rules(self, step: Step, task, data: dict) -> None:
        """Run the task's `validate` rule over the process data with the answers; refuse on errors."""
        expression = task.task_spec.extensions.get("properties", {}).get("validate")
        if not expression:
            return
        try:
            errors = self.script_engine.environment.check(expression, {**task.data, **data})
        except Exception as exc:  # a broken rule is the diagram's fault
            raise step.failure(exc, task.task_spec.bpmn_id) from exc
        if errors:
            if not isinstance(errors, dict):
                raise step.failure(TypeError("the validate rule must give a dict of field: message"),
                                   task.task_spec.bpmn_id)
            raise FormInvalid({str(k): str(v) for k, v in errors.items()})

    def instance_data(self, session: Session, instance_id: int) -> dict:
        """The process data of an instance as it stands now (after its last completed step)."""
        with self.instant():
            workflow = self.load(self._instance(session, instance_id))
            if workflow.is_completed() and workflow.data:
                return dict(workflow.data)
            return dict(workflow.last_task.data) if workflow.last_task is not None else {}

    # ---- messages, cancellation -----------------------------------------------------------

    def send_message(self, session: Session, name: str, child_id: str, data: dict | None = None,
                     actor: str = SYSTEM) -> list[Instance]:
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
                self._check_sender(session, name, child_id, actor)
            refusal = caselife.report_refusal(session, child, name)
            if refusal:
                raise EngineError(refusal)
            caught = self._deliver(session, name, child_id, data or {}, actor, exclude=None)
            # after the PEPs' steps: locks go instance, then child
            caselife.record_report(session, child, name, as_recorded(data or {}, new=True), actor, self.now(),
                                   [instance.id for instance in caught])
            if name == caselife.COMING_INTO_CARE:  # the PEPs it started were projected before the day was written
                for instance in caught:
                    if (row := oversight.recompute(session, instance.id)) is not None:
                        session.execute(oversight.UPDATE_PROJECTION, {"pep_instance_id": instance.id, **row})
            return caught

    def _check_sender(self, session: Session, name: str, child_id: str, actor: str) -> None:
        """Refuse a person who holds none of the roles that the message's form says may send it."""
        newest = session.scalar(select(Deployment).order_by(Deployment.version.desc()).limit(1))
        form = newest.file(f"forms/message_{name}.schema.json") if newest else None
        senders = json.loads(form.content).get("x-sent-by") if form else None
        if not senders:
            return
        user = session.scalar(select(User).where(User.email == actor.strip().lower(), User.active))
        if user is None or not holds_role_for(session, user, child_id, senders):
            raise NotAllowed(f"only the child's {', '.join(senders)} may report this")

    def cancel(self, session: Session, instance_id: int, actor: str, reason: str = "", **details) -> Instance:
        """Stop a running instance; its open tasks and timers go with it."""
        with self.instant():
            instance = self._instance(session, instance_id)
            if instance.status not in ("running",):
                raise EngineError(f"instance {instance_id} is {instance.status}, not running")
            workflow = self.load(instance)
            workflow.cancel()
            step = Step(self, session, instance, workflow, actor)
            step.log("instance_cancelled", reason=reason, **details)
            step.save(status="cancelled")
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

    def fire_timers(self, session: Session, instance: Instance, locked: bool = False) -> int:
        """Fire this instance's due timers and run on to the next wait; return how many fired.
        `locked`: the caller read the instance FOR UPDATE in this transaction."""
        with self.instant():
            workflow = self.load(instance)
            step = Step(self, session, instance, workflow, SYSTEM, locked=locked)
            workflow.refresh_timers()
            step.advance()
            step.save()
            return step.timers_fired

    def record_incident(self, session: Session, instance_id: int | None, source: str, exc: BaseException,
                        child_id: str | None = None, pause_timers: bool = True) -> Incident:
        """Record that a step failed (in a transaction of its own: the step's was rolled back) and tell
        the VS administrators. An unattended step's instance (`pause_timers`) waits for someone to act;
        a person's step failed before it changed anything, so its instance runs on as it was."""
        with self.instant():
            instance = self._instance(session, instance_id) if instance_id is not None else None
            child_id = instance.child_id if instance is not None else child_id
            message = str(exc) if isinstance(exc, ProcessFault) else _describe(exc)
            incident = Incident(instance_id=instance_id, child_id=child_id, at=self.now(), source=source,
                                message=message, details="".join(traceback.format_exception(exc))[-4000:])
            session.add(incident)
            if instance is not None and pause_timers:
                instance.next_timer_at = None
            session.flush()
            session.add(Notification(
                user_id=None, role_key=INCIDENT_ROLE, child_id=child_id, task_id=None, kind="incident",
                subject=one_line(f"A step of {getattr(exc, 'process_id', None) or 'a PEP'} for "
                                 f"{_child(session, child_id).name} could not run (incident {incident.id})"),
                body=f"A {source} step could not run and was not applied. {message[:2000]}",
                created_at=self.now(), sent_at=None))
            history.append(session, child_id, [
                {"kind": "incident", "actor": SYSTEM, "instance_id": instance_id, "task_id": None,
                 "data": {"source": source, "message": message, "incident_id": incident.id}}
            ], self.now())
            return incident

    def resolve_incident(self, session: Session, incident_id: int, actor: str, note: str = "") -> Incident:
        """Mark an incident dealt with (the diagram fixed and the PEP moved to it, or the cause gone); an
        instance whose timers it paused has them again, from its stored state, so the next sweep tries
        again. Written to the child's history."""
        with self.instant():
            incident = session.get(Incident, incident_id)
            if incident is None:
                raise NotFound(f"no incident {incident_id}")
            if incident.resolved_at is not None:
                raise EngineError(f"incident {incident_id} was resolved already")
            incident.resolved_at = self.now()
            instance = self._instance(session, incident.instance_id) if incident.instance_id else None
            if instance is not None and instance.status == "running" and instance.next_timer_at is None:
                timers, _messages = _waiting(self.load(instance))
                instance.next_timer_at = min(timers) if timers else None
            history.append(session, incident.child_id, [
                {"kind": "incident_resolved", "actor": actor, "instance_id": incident.instance_id, "task_id": None,
                 "data": {"incident_id": incident.id, "note": note[:500]}}
            ], self.now())
            return incident

    def record_fault(self, session: Session, fault: ProcessFault, source: str) -> Incident:
        """Record a person's (or a message's) step that the diagram could not run; nothing of it was applied."""
        return self.record_incident(session, fault.instance_id, source, fault, child_id=fault.child_id,
                                    pause_timers=False)

    # ---- internals ------------------------------------------------------------------------

    def _deliver(self, session, name, child_id, payload, actor, exclude, depth=0) -> list[Instance]:
        """Hand a message to the child's waiting instances and start the processes it starts."""
        payload = as_recorded(payload, new=True)
        starts = self._started_by(session, name)
        if starts:
            child = _child(session, child_id)
            for definition in starts:
                refusal = caselife.duplicate_refusal(session, child, definition)
                if refusal:
                    raise EngineError(refusal)
        candidates = session.scalars(
            select(Instance).where(Instance.child_id == child_id, Instance.status == "running")
            .order_by(Instance.id).options(*LEAN_INSTANCE, defer(Instance.state))  # read if it waits for this
        ).all()
        caught = []
        for instance in candidates:
            if instance.id == exclude or name not in (instance.waiting_messages or []):
                continue
            workflow = self.load(instance)
            step = Step(self, session, instance, workflow, actor, depth)
            workflow.send_event(BpmnEvent(MessageEventDefinition(name), payload=payload))
            step.log("message_received", message=name, data=payload)
            step.advance()
            step.save()
            caught.append(instance)
        for definition in starts:
            caught.append(self._start_by_message(session, definition, child_id, name, payload, actor, exclude, depth))
        return caught

    def _started_by(self, session, name) -> list[ProcessDefinition]:
        """Definitions of the newest deployment whose start event waits for this message."""
        newest = select(func.max(Deployment.version)).scalar_subquery()
        starts = session.execute(  # the start messages only: a definition's spec is read when it runs
            select(ProcessDefinition.id, ProcessDefinition.start_messages).join(Deployment)
            .where(Deployment.version == newest).order_by(ProcessDefinition.id)
        ).all()
        return [session.get(ProcessDefinition, id_, options=[defer(ProcessDefinition.spec), *LEAN_DEFINITION])
                for id_, messages in starts if name in (messages or [])]

    def _start_by_message(self, session, definition, child_id, name, payload, actor, previous, depth) -> Instance:
        if depth > MAX_MESSAGE_DEPTH:
            raise EngineError(f'message "{name}" keeps starting processes ({MAX_MESSAGE_DEPTH} deep): check the diagrams for a loop')
        step = self._begin(session, definition, _child(session, child_id), actor, previous, depth, message=name, data=payload)
        step.workflow.do_engine_steps()
        step.workflow.send_event(BpmnEvent(MessageEventDefinition(name), payload=payload))
        step.advance()
        step.record_answers()
        step.save()
        return step.instance

    def _task_for_actor(self, session, task_id, actor_email, lock=False, fresh=False):
        """The open task, its instance, the acting user's id and what the step will need, if the user
        may act on the task; `lock` (to complete it) holds the instance and the child until commit;
        `fresh` reads the task and instance again over what the session holds of them."""
        statement = TASK_FOR_STEP if lock else TASK_FOR_ACTOR
        if fresh:
            statement = statement.execution_options(populate_existing=True)
        row = session.execute(statement, {"task_id": task_id, "email": actor_email.strip().lower()}).first()
        if row is None:
            raise TaskNotReady(f"task {task_id} is not open (it may have been completed or withdrawn)")
        open_task, instance = row.OpenTask, row.Instance
        if row.actor_id is None:
            raise NotAllowed(f"no active user {actor_email}")
        team = {role_key: user_id for role_key, user_id in row.team or ()}
        if not may_act(row.actor_id, {key for (key,) in row.actor_roles or ()}, team, open_task):
            raise NotAllowed(f"{actor_email} does not hold the role {open_task.lane} for child {open_task.child_id}")
        locked = lock and _locks_rows(session)  # SQLite's is read again under its write lock
        known = Known(team, {task: (spec_id, name) for task, spec_id, name in row.open_tasks or ()},
                      ChildTip(row.child_name, row.history_seq, row.history_head) if locked else None)
        return open_task, instance, row.actor_id, known

    def _instance(self, session, instance_id) -> Instance:
        instance = session.get(Instance, instance_id, options=LEAN_INSTANCE)
        if instance is None:
            raise NotFound(f"no instance {instance_id}")
        return instance

    def spec(self, definition: ProcessDefinition):
        """The parsed spec (and sub-process specs) of a deployed definition, cached by definition."""
        cached = self._specs.get(definition.id)
        if cached is None:
            cached = self.serializer.spec_from_dict(definition.spec)
            self._specs[definition.id] = cached
            while len(self._specs) > self._spec_cache_size:
                self._specs.popitem(last=False)
        else:
            self._specs.move_to_end(definition.id)
        return cached

    def parse_newest(self, session: Session) -> int:
        """Parse the newest deployment's specs ahead of the first step that needs them (a server or a
        sweeper process starting); return how many."""
        newest = select(func.max(Deployment.version)).scalar_subquery()
        definitions = session.scalars(select(ProcessDefinition).join(Deployment).where(Deployment.version == newest)
                                      .options(lazyload(ProcessDefinition.deployment))).all()
        for definition in definitions:
            self.spec(definition)
        return len(definitions)

    def load(self, instance: Instance) -> BpmnWorkflow:
        """Rebuild an instance's workflow from its stored state on its definition's spec."""
        spec, subprocess_specs = self.spec(instance.definition)
        return self.serializer.state_from_dict(instance.state, spec, subprocess_specs, self.script_engine)

    def _form_source(self, instance: Instance, form: str) -> str:
        key = (instance.definition.deployment_id, form)
        if key not in self._forms:  # deployments never change, so their forms are read once
            deployment = instance.definition.deployment
            file = deployment.file(f"forms/{form}")
            if file is None:
                raise NotFound(f"form {form} is missing from deployment {deployment.version}")
            self._forms[key] = file.content
        return self._forms[key]

    def _form_schema(self, instance: Instance, form: str) -> dict:
        """The task's form as a dict (read once per deployment and form, like its source)."""
        key = (instance.definition.deployment_id, form)
        if key not in self._schemas:
            self._schemas[key] = json.loads(self._form_source(instance, form))
        return self._schemas[key]

    def _log(self, session, instance, actor, kind, task_id=None, **data):
        history.append(session, instance.child_id, [
            {"kind": kind, "actor": actor, "instance_id": instance.id, "task_id": task_id, "data": data}
        ], self.now())


class Step:
    """One step of one instance: runs the engine, then writes state, projections and history together."""

    def __init__(self, engine: Engine, session: Session, instance: Instance, workflow: BpmnWorkflow, actor: str,
                 depth: int = 0, known: Known | None = None, locked: bool = False):
        self.engine, self.session, self.instance, self.workflow, self.actor = engine, session, instance, workflow, actor
        # the instance row is locked by this transaction since it was read (SELECT ... FOR UPDATE),
        # so its version cannot have moved: it is written without reading the outcome back
        self.locked = locked and _locks_rows(session)
        self.depth = depth  # how many messages deep this step was caused; guards against message loops
        self.entries: list[dict] = []
        self.path: list[str] = []
        self.timers_fired = 0
        self.deadlines: dict[str, dict] = {}  # guarded element id → the interrupting timer that ended it
        self._team = known.team if known else None
        self._open_tasks = known.open_tasks if known else None
        self._child = known.child if known else None
        self.rows: dict[type, list[dict]] = {OpenTask: [], Notification: []}  # inserted together in save
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
        return self.engine.roles(self.session).resolve(name) or self.engine.roles(self.session, refresh=True).resolve(name)

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
        if _is_timer(task):
            self.timers_fired += 1
            due = task.internal_data.get("event_value") if isinstance(task.internal_data.get("event_value"), str) else None
            self.log("timer_fired", timer=spec.bpmn_id, name=spec.bpmn_name or spec.bpmn_id, due=due,
                     **self._guards(task, due))
        if properties.get(ppplus.EVENT_PROPERTY):
            try:
                line = ppplus.element_line(properties, lambda source: self.workflow.script_engine.evaluate(task, source))
            except Exception as exc:  # the diagram's amount or decision expression failed
                raise self.failure(exc, spec.bpmn_id) from exc
            if line:
                self.log(ppplus.EVENT_KIND, element=spec.bpmn_id, name=spec.bpmn_name or spec.bpmn_id,
                         source=spec.bpmn_id, **line)
        if properties.get(statutory.STATUTORY_EVENT_PROPERTY):
            self.log(properties[statutory.STATUTORY_EVENT_PROPERTY], element=spec.bpmn_id,
                     name=spec.bpmn_name or spec.bpmn_id, **({"date": calendar.today()}
                                                            if properties[statutory.STATUTORY_EVENT_PROPERTY] == "meeting_held" else {}))

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
        deadline = self._due_at(guarded) if spec.manual else None
        late = deadline is not None and due is not None and _as_datetime(due) >= deadline
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
            self.rows[Notification].append(dict(
                user_id=member, role_key=None if member else role.key, child_id=child_id, task_id=None,
                kind=properties.get("notifyKind", "notice"), subject=one_line(subject), body=body,
                created_at=self.engine.now(), sent_at=None))
            sent_to.append(role.key)
        self.log("notified", element=task.task_spec.bpmn_id, roles=sent_to, nobody_in=unheld, subject=subject)

    def save(self, status: str | None = None) -> None:
        """Write the instance (with its optimistic version check first, unless the row is locked), the
        task projection and history. The writes that need nothing read back go in one pipeline, in
        the order that lets the server work while the step does: the projection's rows while the
        locked instance's state is serialized, then the instance while its state is hashed."""
        session, instance, workflow, now = self.session, self.instance, self.workflow, self.engine.now()
        finished = status or ("completed" if workflow.is_completed() else None)
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
        if finished == "completed":
            self.log("instance_completed")
        if self.path and not self.entries:
            self.log("engine_step")
        for entry in self.entries:
            entry["instance_id"] = instance.id
        # the Virtual School's row of this PEP, as the step's history changes it (engine/oversight.py)
        projected = oversight.project_step(session, instance.id, instance.child_id, self.entries, now, self.new)
        child = self.child()  # the last read: nothing is read once the writes are under way
        ledger = self._ledger_rows(child, now)
        with pipelined(session) as writes:  # the step's other writes, none of which is read back
            if projected:
                writes.execute(*projected)
            if gone:
                writes.execute(CLOSE_TASK, [{"task_id": task_id} for task_id in gone])
            for model, rows in self.rows.items():  # one INSERT per table for the step (tasks before notices)
                if rows:
                    writes.execute(INSERT_ROWS[model], rows)
            if unchecked:
                state = self.engine.serializer.state_to_dict(workflow)
                self._write_instance(self._values(state, finished, now), writes)
            self._attach_step(state_digest(state))
            history.append(session, instance.child_id, self.entries, now, tip=(child.history_seq, child.history_head),
                           writes=writes)
            if ledger:  # the PP+ ledger's lines, in the transaction that records them (engine/ppplus.py)
                writes.execute(INSERT_LEDGER, ledger)
        for thrown in self.workflow.get_events():
            if isinstance(thrown.event_definition, BaseMessage):
                self.engine._deliver(session, thrown.event_definition.name, instance.child_id,
                                     thrown.payload or {}, self.actor, exclude=instance.id, depth=self.depth + 1)

    def _ledger_rows(self, child: ChildTip, now: datetime) -> list[dict]:
        """The `ppplus_entry` rows of the step's PP+ events, with the child's school (read only then)."""
        if not any(entry["kind"] == ppplus.EVENT_KIND for entry in self.entries):
            return []
        school = self.session.execute(CHILD_SCHOOL, {"child_id": self.instance.child_id}).scalar()
        return ppplus.rows_of_step(self.entries, child.history_seq + 1, self.instance.child_id, self.instance.id,
                                   now, school)

    def _values(self, state: dict, finished: str | None, now: datetime) -> dict:
        """The instance row's new values: its state, when its next timer falls due, what it waits for."""
        timers, messages = _waiting(self.workflow) if not finished else ([], [])
        values = dict(state=state, updated_at=now, next_timer_at=min(timers) if timers else None,
                      waiting_messages=messages)
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
        ready = {} if finished else {str(t.id): t for t in ready_human_tasks(self.workflow)}
        gone = [task_id for task_id in existing if task_id not in ready]
        for task_id in gone:
            if not any(e["task_id"] == task_id and e["kind"] == "task_completed" for e in self.entries):
                spec_id, name = existing[task_id]
                deadline = self.deadlines.get(spec_id)
                self.log("task_withdrawn", task_id=task_id, task=spec_id, name=name,
                         **({"by_deadline": deadline} if deadline else {}))
        for task_id, task in ready.items():
            if task_id not in existing:
                self._open(task_id, task)
        return gone

    def _open(self, task_id, task) -> None:
        """Queue the row of a newly ready task and the notice of it: to the holder of its lane's role for
        the child, else that role's pool, else its fallback's (`RoleDirectory.assignment`); a task that
        finds nobody waits on the VS administrator's "needs a person" list, and they are told."""
        instance, spec, now = self.instance, task.task_spec, self.engine.now()
        lane_role = self.role(spec.lane)
        if lane_role is None:
            raise EngineError(f'lane "{spec.lane}" of {spec.bpmn_id} is not a known role')
        properties = spec.extensions.get("properties", {})
        taken = self.engine.roles(self.session).assignment(lane_role, self.team(), properties.get(FALLBACK_PROPERTY))
        role, assignee, pooled = taken.role, taken.assignee, taken.pooled
        name, due_at, sent_back = spec.bpmn_name or spec.bpmn_id, self._due_at(task), self._sent_back(task)
        try:
            lateness = overdue.plan(self.engine.overdue_policy, properties, role, due_at,
                                    [at for at, _ends in _boundary_timers(task)], self.role)
        except LookupError as exc:
            raise EngineError(f"{spec.bpmn_id}: {exc}") from exc
        self.rows[OpenTask].append(dict(
            id=task_id, instance_id=instance.id, child_id=instance.child_id, spec_id=spec.bpmn_id, name=name,
            lane=spec.lane, role_key=role.key, form=properties.get("formJsonSchemaFilename"), assignee_id=assignee,
            pooled=pooled, due_at=due_at, ready_at=now, sent_back=sent_back, **lateness))
        self.log("task_ready", task_id=task_id, task=spec.bpmn_id, name=name, role=role.key, lane=spec.lane,
                 assignee_id=assignee, pooled=pooled, due_at=due_at.isoformat() if due_at else None,
                 **({"sent_back": sent_back} if sent_back else {}),
                 **({"fallback_from": taken.fallback_from} if taken.fallback_from else {}),
                 **({"needs_person": True} if taken.needs_person else {}))
        child = self.child()
        due = f" by {due_at:%d %b %Y}" if due_at else ""
        if taken.needs_person:
            self.rows[Notification].append(needs_person_notice(instance.child_id, task_id, name, role.label,
                                                               child.name, now))
            return
        self.rows[Notification].append(dict(
            user_id=assignee, role_key=None if assignee else role.key, child_id=instance.child_id, task_id=task_id,
            kind="task_assigned" if assignee else "task_pooled", subject=f"{name} for {child.name}{due}",
            body=f"{name} ({role.label}) for {child.name} is ready{due}.", created_at=now, sent_at=None,
        ))

    def _sent_back(self, task) -> str | None:
        """Why the diagram sent this task back to be done again (its `sentBack` expression), if it did."""
        expression = task.task_spec.extensions.get("properties", {}).get(SENT_BACK_PROPERTY)
        if not expression:
            return None
        try:
            reason = self.engine.script_engine.environment.evaluate(expression, task.data)
        except ScriptError as exc:
            if isinstance(exc.__cause__, NameError):
                return None  # what would say why (a rating, feedback) is not in the data yet: opened the first time
            raise self.failure(exc, task.task_spec.bpmn_id) from exc
        reason = " ".join(str(reason).split()) if reason else ""
        return reason[:2000] or None

    def _due_at(self, task) -> datetime | None:
        """The task's deadline: its dueDate expression, else its interrupting boundary timer."""
        expression = task.task_spec.extensions.get("properties", {}).get("dueDate")
        value = None
        if expression:
            try:
                value = self.workflow.script_engine.evaluate(task, expression)
            except Exception as exc:  # the diagram's due date expression failed
                raise self.failure(exc, task.task_spec.bpmn_id) from exc
        else:
            value = min((at for at, ends in _boundary_timers(task) if ends), default=None)
        return _as_datetime(value) if value else None


def _boundary_timers(task) -> list[tuple[datetime, bool]]:
    """When each boundary timer attached to a task falls due, and whether it ends the task (interrupting)."""
    return [(_as_datetime(sibling.internal_data["event_value"]), bool(getattr(sibling.task_spec, "cancel_activity", False)))
            for sibling in task.parent.children
            if sibling is not task and isinstance(getattr(sibling.task_spec, "event_definition", None), TimerEventDefinition)
            and isinstance(sibling.internal_data.get("event_value"), str)]


def cleared_answers(form_source: str | None, data: dict, before: dict) -> dict:
    """The form's questions left unanswered that hold an answer from before (an earlier attempt of a
    task sent back, a pre-filled value): each as None, so that a cleared answer stays cleared."""
    if not form_source:
        return {}
    return {name: None for name in _questions(form_source)
            if name not in data and before.get(name) not in (None, "", [], {})}


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
    floats = {"parse_float": history.json_float} if new else {}
    return json.loads(json.dumps(data, sort_keys=True, default=str), **floats)


def ready_human_tasks(workflow: BpmnWorkflow) -> list:
    """The workflow's READY user tasks (sub-processes included) in task-tree order, as
    `get_tasks(state=READY)` gives them, without walking the tree when fewer than two are ready."""
    ready = [t for wf in (workflow, *workflow.subprocesses.values()) for t in wf.tasks.values()
             if t.state == TaskState.READY and t.task_spec.manual]
    if len(ready) < 2:
        return ready
    return [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]


def may_act(user_id: int, role_keys: set[str], team: dict[str, int], open_task: OpenTask) -> bool:
    """Whether the user holds the task's lane role for this child (case team, pool, or claim)."""
    if open_task.assignee_id is not None:
        return open_task.assignee_id == user_id
    if open_task.pooled and open_task.role_key in role_keys:
        return True
    return team.get(open_task.role_key) == user_id


def _locks_rows(session: Session) -> bool:
    """Whether the database locks rows (PostgreSQL); SQLite locks the whole database at the first write."""
    return session.get_bind().dialect.name != "sqlite"


def _waiting(workflow: BpmnWorkflow) -> tuple[list[datetime], list[str]]:
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
                    timers.append(_as_datetime(value))
            elif isinstance(part, BaseMessage):
                messages.add(part.name)
    return timers, sorted(messages)


def _is_timer(task) -> bool:
    """Whether a completed task is a timer that fired, also on an event-based gateway's branch
    (SpiffWorkflow keeps the branch events' definitions on the gateway)."""
    if isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition):
        return True
    gateway = getattr(task.parent.task_spec, "event_definition", None) if task.parent else None
    names = {task.task_spec.bpmn_name, task.task_spec.bpmn_id}
    return isinstance(gateway, MultipleEventDefinition) and any(
        isinstance(d, TimerEventDefinition) and d.name in names for d in gateway.event_definitions)


def _as_datetime(value) -> datetime:
    return TimerEventDefinition.get_datetime(value) if isinstance(value, str) else value


def _child(session: Session, child_id: str) -> Child:
    child = session.get(Child, child_id)
    if child is None:
        raise NotFound(f"no child {child_id}")
    return child


def _child_context(child: Child) -> dict:
    return {"id": child.id, "name": child.name, "school": child.school,
            "date_of_birth": child.date_of_birth.isoformat() if child.date_of_birth else None}


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:500]
