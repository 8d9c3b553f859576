"""The operations on a person's task: show it, complete it with their answers, claim it from its pool and
give it back. `Engine` holds them (engine/runtime.py); each works in the caller's session, as every
operation does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast
from uuid import UUID

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from . import answers, deployments, moves, ppplus, statutory, tree
from .errors import (
    Conflict,
    EngineError,
    FormInvalid,
    NotAllowed,
    ProcessFault,
    Raced,
    TaskNotReady,
    diagram_failure,
)
from .models import Incident, Instance, OpenTask
from .moves import as_recorded, cleared_answers
from .scripting import ScriptError, render_instructions
from .statements import LEDGER_OF, task_for_actor
from .step import Step
from .vocabulary import INSTRUCTIONS

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from datetime import datetime
    from typing import Any

    from SpiffWorkflow.bpmn import BpmnWorkflow

    from .runtime import Engine
    from .serializer import Serializer


class TaskOperations:
    """What a person does with a task: a part of `Engine`, which gives it what steps share (below)."""

    if TYPE_CHECKING:
        forms: deployments.Forms
        serializer: Serializer
        script_engine: Any

        def instant(self) -> AbstractContextManager[None]: ...
        def load(self, instance: Instance) -> BpmnWorkflow: ...
        def now(self) -> datetime: ...
        def write(self, step: Step, status: str | None = None) -> None: ...
        def record_incident(
            self,
            session: Session,
            instance_id: int | None,
            source: str,
            exc: BaseException,
            child_id: str | None = None,
            pause_timers: bool = True,
        ) -> Incident: ...
        def _instance(self, session: Session, instance_id: int) -> Instance: ...
        def _log(self, session, instance, actor, kind, task_id=None, **data) -> None: ...

    def complete_task(
        self,
        session: Session,
        task_id: str,
        actor_email: str,
        data: dict | Callable[[dict], dict],
        expected_version: int | None = None,
        basis: str | None = None,
        link_issued_by: str | None = None,
        keep: Callable[[dict], object] | None = None,
    ) -> Instance:
        """Validate the answers against the task's form and complete it as `actor_email` (through a
        single-use link that `link_issued_by` issued, when that is how it came), in one pass: one locked
        read of the task that checks the person may do it.

        `data` is the answers, or a reader of them: given the task's form (as `task_form` returns it)
        once that read has found the person may do the task, it returns them (a page's answers are
        read with the form they were posted from, without a read of their own). `keep(answers)` is
        called once the answers pass the form and the task's own rule, before the move: it stores the
        files given with them, under the ids the answers already name, so that nothing is stored for
        answers that are refused. Each is called once, whatever happens.

        `expected_version` and `basis` are the instance's version and the task's `page_basis` when the
        person's page was read. Only a change to what the page was built from refuses the answers
        (`Conflict`): another branch of the PEP moving on meanwhile (someone else's task, a timer)
        does not. Without a basis, any change of version refuses them (a page from before bases)."""
        given = _Once(data, keep)
        with self.instant():
            try:
                return self._complete_task(
                    session, task_id, actor_email, given, expected_version, basis, link_issued_by
                )
            except Raced:
                # SQLite: another step of this PEP committed between this one's read and its write.
                # The refused write took the database's write lock, so the step is taken again from
                # what the other left, which nothing can change before commit: a task still ready,
                # with its page's basis unchanged, goes through as if it had come second
                return self._complete_task(
                    session, task_id, actor_email, given, expected_version, basis, link_issued_by, again=True
                )

    def _complete_task(
        self, session, task_id, actor_email, given: _Once, expected_version, basis, link_issued_by, again=False
    ) -> Instance:
        open_task, instance, user_id, known = task_for_actor(session, task_id, actor_email, lock=True, fresh=again)
        data = given.answers(lambda: self._form_of(open_task, instance))
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
        errors = answers.refusals(source, data)
        if errors:
            raise FormInvalid(errors)
        schema = self.forms.schema(instance.definition, open_task.form) if source else None
        step = Step(cast("Engine", self), session, instance, workflow, actor_email, known=known, locked=True)
        data = {**cleared_answers(source, data, task.data), **data}
        answers.check_rules(self.script_engine, step, task, data)
        given.keep(data)
        answers.files_refused(session, instance.child_id, schema, data)
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
        """The task's form (its JSON Schema, none for a task without one) and the instance's version."""
        form = json.loads(self.forms.source(instance.definition, open_task.form)) if open_task.form else None
        return {"task": open_task, "instance_version": instance.version, "form_schema": form}

    def instance_data(self, session: Session, instance_id: int) -> dict:
        """The process data of an instance as it stands now (after its last completed step)."""
        with self.instant():
            return tree.process_data(self.load(self._instance(session, instance_id)))


class _Once:
    """The answers of one `complete_task` and the keeping of their files, each done once, though SQLite
    may take the step twice (`Raced`: nothing of the first was rolled back, so what was kept stays)."""

    def __init__(self, data: dict | Callable[[dict], dict], keep: Callable[[dict], object] | None) -> None:
        self._data, self._keep, self._kept = data, keep, False

    def answers(self, form: Callable[[], dict]) -> dict:
        if callable(self._data):
            self._data = self._data(form())
        return self._data

    def keep(self, data: dict) -> None:
        if self._keep is not None and not self._kept:
            self._kept = True
            self._keep(data)


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
