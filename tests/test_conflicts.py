"""Only a real conflict refuses a person's answers: another branch of the PEP moving on while their page
is open (someone else's task, a timer) does not; a change to what their page was built from does."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import migration
from engine.deploy import deploy_changes
from engine.errors import Conflict, TaskNotReady
from engine.models import Event, Instance, OpenTask

from .conftest import BASIC_BUNDLE
from .helpers import sweep
from .test_migration import definition
from .test_runtime import MEETING, PEP, complete, only_task, start_review

VIEWS = {"views": "Alex wants to keep going to the chess club"}


def start_parallel(engine, sessions) -> int:
    with sessions.begin() as s:
        return engine.start(s, "test_parallel_review", "C001", actor="sw@demo.test").id


def task_named(sessions, name: str) -> OpenTask:
    with sessions() as s:
        return s.scalars(select(OpenTask).where(OpenTask.name == name)).one()


def open_page(engine, sessions, task: OpenTask, actor: str) -> dict:
    """What the person's browser holds once the task page is open: the instance version and the basis."""
    with sessions() as s:
        view = engine.task_view(s, task.id, actor)
    return {"expected_version": view["instance_version"], "basis": view["basis"]}


def submit(engine, sessions, task: OpenTask, actor: str, data: dict, page: dict) -> Instance:
    with sessions.begin() as s:
        return engine.complete_task(s, task.id, actor, data, **page)


def completions(sessions) -> list[str]:
    with sessions() as s:
        return [
            e.data["name"] for e in s.scalars(select(Event).where(Event.kind == "task_completed").order_by(Event.id))
        ]


def test_the_sw_records_views_while_the_dts_epep_page_is_open_and_the_dts_submission_goes_through(parallel, engine):
    instance_id = start_parallel(engine, parallel)
    epep = task_named(parallel, "Complete the ePEP")
    page = open_page(engine, parallel, epep, "dt@demo.test")

    complete(engine, parallel, task_named(parallel, "Record the child's views"), "sw@demo.test", VIEWS)
    submit(engine, parallel, epep, "dt@demo.test", PEP, page)

    assert completions(parallel) == ["Record the child's views", "Complete the ePEP"]
    with parallel() as s:
        assert s.get(Instance, instance_id).version == page["expected_version"] + 2
        assert s.scalar(select(OpenTask)) is None  # only the timer's branch is left


def test_a_timer_on_another_branch_fires_while_the_dts_page_is_open_and_the_submission_goes_through(parallel, engine):
    instance_id = start_parallel(engine, parallel)
    epep = task_named(parallel, "Complete the ePEP")
    page = open_page(engine, parallel, epep, "dt@demo.test")

    assert sweep(engine, parallel, "2026-03-05T09:00:00+00:00").timers_fired == 1
    submit(engine, parallel, epep, "dt@demo.test", PEP, page)

    assert completions(parallel) == ["Complete the ePEP"]
    with parallel() as s:
        assert s.get(Instance, instance_id).version == page["expected_version"] + 2


def test_the_reminder_on_the_dts_own_task_fires_while_the_page_is_open_and_the_submission_goes_through(
    deployed, engine, council
):
    """A non-interrupting timer on the task itself runs on a branch of its own: the page is as it was."""
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    pep = only_task(council)
    page = open_page(engine, council, pep, "dt@demo.test")

    assert sweep(engine, council, "2026-03-14T08:00:00+00:00").timers_fired == 1  # two working days before the deadline
    submit(engine, council, pep, "dt@demo.test", PEP, page)

    assert only_task(council).name == "Quality-assure the PEP"


def test_the_dts_page_opened_before_the_form_it_shows_changed_is_refused_and_nothing_is_applied(parallel, engine):
    """The VS moves the PEP onto a version whose ePEP form asks a new question while the teacher's page
    (built from the old form) is open: their answers are refused and they are told to reload."""
    instance_id = start_parallel(engine, parallel)
    epep = task_named(parallel, "Complete the ePEP")
    page = open_page(engine, parallel, epep, "dt@demo.test")
    form = (
        (BASIC_BUNDLE / "forms" / "complete_pep.schema.json")
        .read_text()
        .replace('"properties": {', '"properties": {\n    "tutoring": {"type": "string", "title": "Tutoring"},', 1)
    )
    with parallel.begin() as s:
        deployment, _ = deploy_changes(s, {"forms/complete_pep.schema.json": form}, actor="owner@demo.test")
        new = definition(s, "test_parallel_review", deployment.version)
        migration.migrate(engine, s, instance_id, new.id, "owner@demo.test")
    assert task_named(parallel, "Complete the ePEP").id == epep.id  # the same task, still ready

    with pytest.raises(Conflict, match="reload"):
        submit(engine, parallel, epep, "dt@demo.test", PEP, page)

    assert completions(parallel) == []
    submit(engine, parallel, epep, "dt@demo.test", PEP, open_page(engine, parallel, epep, "dt@demo.test"))
    assert completions(parallel) == ["Complete the ePEP"]


def test_a_page_without_its_basis_is_refused_once_the_pep_moved_on(parallel, engine):
    """A page opened before pages carried their basis has only the version to go by."""
    start_parallel(engine, parallel)
    epep = task_named(parallel, "Complete the ePEP")
    page = open_page(engine, parallel, epep, "dt@demo.test")
    complete(engine, parallel, task_named(parallel, "Record the child's views"), "sw@demo.test", VIEWS)

    with pytest.raises(Conflict, match="reload"):
        submit(engine, parallel, epep, "dt@demo.test", PEP, {**page, "basis": None})


def test_a_page_whose_task_someone_else_completed_is_not_ready_whatever_its_basis(parallel, engine):
    start_parallel(engine, parallel)
    views = task_named(parallel, "Record the child's views")
    page = open_page(engine, parallel, views, "sw@demo.test")
    complete(engine, parallel, views, "sw@demo.test", VIEWS)

    with pytest.raises(TaskNotReady):
        submit(engine, parallel, views, "sw@demo.test", VIEWS, page)
