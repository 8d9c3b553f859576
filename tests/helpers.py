"""What the scenario tests share: `Council`, the one driver of a council's diagrams (its people do their
tasks, the clock moves, the history is read), and small steps of the engine tests (move the clock and
sweep, list a child's open tasks). A diagram's scenario test file holds its policy only: its fixture
deploys the diagram on a `Council`, and its tests say what each person does and what follows."""

from __future__ import annotations

import re
from typing import NamedTuple

import pytest
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from engine import clock as clocks
from engine.attachments import store
from engine.deploy import Bundle, deploy
from engine.errors import EngineError, FormInvalid
from engine.history import events
from engine.models import Attachment, Instance, Notification, OpenTask, ProcessDefinition, User
from engine.timers import fire_due_timers


def sweep(engine, sessions, when: str):
    """Move the clock to `when` and fire every timer due by then."""
    engine.clock.set(when)
    return fire_due_timers(engine, sessions)


def open_tasks(sessions, child="Y5") -> list[OpenTask]:
    """The child's open tasks, oldest first."""
    with sessions() as s:
        return s.scalars(select(OpenTask).where(OpenTask.child_id == child).order_by(OpenTask.ready_at)).all()


def files_named(session, child_id: str, data, at) -> None:
    """Store a small file for each answer naming one ("upload-..."), as the web app would have when it
    was attached: the engine refuses answers that name no file of the child."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += item.values()
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str) and item.startswith("upload-") and session.get(Attachment, item) is None:
            store(session, child_id, f"{item}.pdf", "application/pdf", b"%PDF-1.4", "test@demo.test", at, item)


def start_anew(engine, session, process_id: str, child_id: str, **start) -> Instance:
    """Start `process_id` for the child, ending the one of that kind already running (one runs at a
    time): for tests that play the same process again and again."""
    running = session.scalars(
        select(Instance)
        .join(ProcessDefinition)
        .where(Instance.child_id == child_id, Instance.status == "running", ProcessDefinition.process_id == process_id)
    )
    for instance in running.all():
        engine.cancel(session, instance.id, "admin@demo.test", "the test starts it again")
    return engine.start(session, process_id, child_id, **start)


def recorded_after_the_fact(engine, session, task_id: str, actor: str, data: dict) -> None:
    """A person records what was done (a meeting held, a form sent) on or after the day it was done: the
    clock moves to the afternoon of the latest such date among the answers (`"x-when": "past"`), if
    that day is still to come. A task the person may not do is left to refuse them."""
    try:
        schema = engine.task_form(session, task_id, actor)["form_schema"] or {}
    except EngineError:
        return
    done = sorted(_past_dates(schema, data))
    if done and engine.clock.now().date().isoformat() < done[-1]:
        engine.clock.set(f"{done[-1]}T16:00:00+00:00")


def _past_dates(schema: dict, value):
    if isinstance(value, str) and schema.get("x-when") == "past" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        yield value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _past_dates((schema.get("properties") or {}).get(name) or {}, item)
    elif isinstance(value, list):
        for item in value:
            yield from _past_dates(schema.get("items") or {}, item)


class Notice(NamedTuple):
    """A queued notification: to a person (`email`) or a role's pool (`role`)."""

    email: str | None
    role: str | None
    subject: str

    @property
    def to(self) -> str:
        """The person's e-mail, or "pool:<role>"."""
        return self.email or f"pool:{self.role}"


class Council:
    """A council's people and children (the `demo_council` fixture) running some of its diagrams, driven as
    its people would drive them: each step in a transaction of its own, through the engine's public calls.

    `child` is the child a call is about unless it names another; `process`, when given, limits the tasks
    looked at to that process's (a test's stand-in processes may have tasks of their own)."""

    def __init__(self, engine, sessions, child: str = "Y5", process: str | None = None):
        self.engine, self.sessions, self.child, self.process = engine, sessions, child, process

    def deployed(self, bundle: Bundle, actor: str = "owner@council.test") -> Council:
        """Deploy `bundle` (at the clock's time) and return the council."""
        with clocks.using(self.engine.clock), self.sessions.begin() as s:
            deploy(s, bundle, actor=actor)
        return self

    # ---- what starts a process, and the clock ------------------------------------------------------

    def send(
        self, message: str, data: dict | None = None, child: str | None = None, actor: str | None = None
    ) -> list[Instance]:
        """Send `message` for the child (as `actor`, else the engine's default): the instances it started."""
        by = {"actor": actor} if actor else {}
        with self.sessions.begin() as s:
            return self.engine.send_message(s, message, child or self.child, data or {}, **by)

    def sweep(self, when: str):
        """Move the clock to `when` and fire every timer due by then."""
        return sweep(self.engine, self.sessions, when)

    # ---- tasks --------------------------------------------------------------------------------------

    def open_tasks(self, child: str | None = None) -> list[OpenTask]:
        """The child's open tasks, oldest first."""
        query = select(OpenTask).where(OpenTask.child_id == (child or self.child))
        if self.process:
            query = query.join(Instance).where(Instance.definition.has(process_id=self.process))
        with self.sessions() as s:
            return s.scalars(query.order_by(OpenTask.ready_at, OpenTask.spec_id)).all()

    def task_ids(self, child: str | None = None) -> list[str]:
        """The spec ids of the child's open tasks, sorted."""
        return sorted(t.spec_id for t in self.open_tasks(child))

    def task(self, spec_id: str, child: str | None = None) -> OpenTask:
        """The child's open task `spec_id` (there must be exactly one)."""
        found = [t for t in self.open_tasks(child) if t.spec_id == spec_id]
        assert len(found) == 1, [t.spec_id for t in self.open_tasks(child)]
        return found[0]

    def only_task(self, spec_id: str | None = None, child: str | None = None) -> OpenTask:
        """The child's only open task (which must be `spec_id`, when given)."""
        tasks = self.open_tasks(child)
        assert len(tasks) == 1, [t.spec_id for t in tasks]
        if spec_id is not None:
            assert tasks[0].spec_id == spec_id, (tasks[0].spec_id, spec_id)
        return tasks[0]

    def complete(self, task: OpenTask, actor: str, data: dict):
        """`actor` completes `task` with `data`, on or after the day it records (`recorded_after_the_fact`),
        with a file stored for each answer naming one (as the web app stores uploads)."""
        with self.sessions() as s:
            recorded_after_the_fact(self.engine, s, task.id, actor, data)
        with self.sessions.begin() as s:
            files_named(s, task.child_id, data, self.engine.now())
            return self.engine.complete_task(s, task.id, actor, data)

    def do(self, spec_id: str, actor: str, data: dict, child: str | None = None):
        """`actor` completes the child's open task `spec_id` (exactly one open) with `data`."""
        return self.complete(self.task(spec_id, child), actor, data)

    def do_next(self, spec_id: str, actor: str, data: dict, child: str | None = None):
        """`actor` completes the child's only open task, which must be `spec_id`."""
        return self.complete(self.only_task(spec_id, child), actor, data)

    def refused(self, spec_id: str, actor: str, data: dict, child: str | None = None) -> dict[str, str]:
        """The field errors `data` is refused with for task `spec_id`; the task stays open."""
        with pytest.raises(FormInvalid) as caught:
            self.do(spec_id, actor, data, child)
        assert spec_id in self.task_ids(child)
        return caught.value.errors

    def view(self, task: OpenTask | str, actor: str, child: str | None = None) -> dict:
        """The task page `actor` is shown for `task` (or the child's open task of that spec id)."""
        task_id = (self.task(task, child) if isinstance(task, str) else task).id
        with self.sessions() as s:
            return self.engine.task_view(s, task_id, actor)

    def assignee(self, task: OpenTask) -> str | None:
        """The e-mail of the person `task` is assigned to, if anyone."""
        with self.sessions() as s:
            user = s.get(User, task.assignee_id) if task.assignee_id else None
            return user.email if user else None

    def user_id(self, email: str) -> int:
        with self.sessions() as s:
            return s.scalar(select(User.id).where(User.email == email))

    # ---- what happened ------------------------------------------------------------------------------

    def instance(self, instance_id: int) -> Instance:
        with self.sessions() as s:
            return s.get(Instance, instance_id)

    def instances(self, process_id: str, child: str | None = None) -> list[Instance]:
        """The child's instances of `process_id`, oldest first."""
        with self.sessions() as s:
            return s.scalars(
                select(Instance)
                .where(Instance.child_id == (child or self.child), Instance.definition.has(process_id=process_id))
                .order_by(Instance.id)
            ).all()

    def started_by(self, instance_id: int) -> list[Instance]:
        """The instances that instance started (a message it threw), oldest first."""
        with self.sessions() as s:
            return s.scalars(
                select(Instance).where(Instance.previous_instance_id == instance_id).order_by(Instance.id)
            ).all()

    def data(self, instance_id: int) -> dict:
        """The instance's process data: what its open task sees, else what its last step left."""
        with self.sessions() as s:
            workflow = self.engine.load(s.get(Instance, instance_id))
        ready = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
        return dict((ready[0] if ready else workflow.last_task).data)

    def result(self, instance_id: int) -> dict:
        """What a completed instance left (its last step's data); nothing while it runs."""
        with self.sessions() as s:
            instance = s.get(Instance, instance_id)
            return dict(self.engine.load(instance).last_task.data) if instance.status == "completed" else {}

    def history(self, child: str | None = None, instance_id: int | None = None) -> list:
        """The child's history (of one instance, when given), oldest first."""
        with self.sessions() as s:
            return list(events(s, child or self.child, instance_id))

    def path(self, instance_id: int) -> list[str]:
        """Every diagram element the instance has run, in order (each step records its path)."""
        child = self.instance(instance_id).child_id
        return [element for e in self.history(child, instance_id) for element in e.data.get("path", [])]

    def last_path(self, instance_id: int) -> list[str]:
        """The elements the instance's last step ran."""
        child = self.instance(instance_id).child_id
        return [e for e in self.history(child, instance_id) if "path" in e.data][-1].data["path"]

    def notices(
        self, kind: str | None = None, child: str | None = None, since: int = 0, every_child: bool = False
    ) -> list[Notice]:
        """The child's (or every child's) notifications of `kind` (any, when None) after id `since`, oldest first."""
        query = (
            select(Notification, User.email)
            .outerjoin(User, User.id == Notification.user_id)
            .where(Notification.id > since)
        )
        if not every_child:
            query = query.where(Notification.child_id == (child or self.child))
        if kind:
            query = query.where(Notification.kind == kind)
        with self.sessions() as s:
            return [Notice(email, n.role_key, n.subject) for n, email in s.execute(query.order_by(Notification.id))]

    def notes(
        self, kind: str | None = None, child: str | None = None, since: int = 0, every_child: bool = False
    ) -> list[tuple[str, str]]:
        """(to, subject) of each notification `notices` finds: to a person's e-mail or "pool:<role>"."""
        return [(n.to, n.subject) for n in self.notices(kind, child, since, every_child)]

    def told(self, subject_part: str = "", kind: str | None = None, child: str | None = None) -> set[str]:
        """Who was notified (e-mail or "pool:<role>") with `subject_part` in the subject."""
        return {n.to for n in self.notices(kind, child) if subject_part in n.subject}

    def notifications(self, kind: str | None = None, child: str | None = None) -> list[Notification]:
        """The child's notification rows of `kind` (any, when None), oldest first: for what a notice says."""
        query = select(Notification).where(Notification.child_id == (child or self.child))
        if kind:
            query = query.where(Notification.kind == kind)
        with self.sessions() as s:
            return s.scalars(query.order_by(Notification.id)).all()

    def last_notice_id(self) -> int:
        with self.sessions() as s:
            return max(s.scalars(select(Notification.id)).all(), default=0)
