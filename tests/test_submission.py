"""A submission is one pass through the engine: one locked read finds the task and checks the person may do
it, the answers are read with the form it returns, and the files given with them are kept only once the
answers pass the form and the diagram's own rule."""

from __future__ import annotations

import pytest

from engine.errors import FormInvalid, NotAllowed
from engine.history import events

from .test_runtime import MEETING, only_task, start_review


class Page:
    """What a web page gives `complete_task`: a reader of its answers and a keeper of its files."""

    def __init__(self, answers: dict) -> None:
        self.answers, self.forms, self.kept = answers, [], []

    def read(self, form: dict) -> dict:
        self.forms.append(form)
        return self.answers

    def keep(self, answers: dict) -> None:
        self.kept.append(dict(answers))


def submit(engine, sessions, task_id: str, actor: str, page: Page):
    with sessions.begin() as s:
        return engine.complete_task(s, task_id, actor, page.read, keep=page.keep)


def test_the_answers_are_read_with_the_form_once_the_person_may_do_the_task(deployed, engine, council):
    start_review(engine, council)
    task = only_task(council)
    page = Page(MEETING)
    submit(engine, council, task.id, "sw@demo.test", page)
    [form] = page.forms
    assert form["task"].id == task.id and form["form_schema"]["properties"]["venue"]["title"] == "Venue"
    assert page.kept == [MEETING]  # accepted: its files kept, once
    with council() as s:
        [done] = [e for e in events(s, "C001") if e.kind == "task_completed"]
    assert done.data["data"] == MEETING and only_task(council).name == "Complete the PEP"


def test_a_person_who_may_not_do_the_task_has_nothing_read_and_nothing_kept(deployed, engine, council):
    start_review(engine, council)
    page = Page(MEETING)
    with pytest.raises(NotAllowed):
        submit(engine, council, only_task(council).id, "dt@demo.test", page)
    assert page.forms == [] and page.kept == []


def test_answers_the_form_refuses_keep_no_files(deployed, engine, council):
    start_review(engine, council)
    page = Page({"venue": "Oak Primary"})
    with pytest.raises(FormInvalid) as caught:
        submit(engine, council, only_task(council).id, "sw@demo.test", page)
    assert caught.value.errors == {"meeting_date": "Enter meeting date"}
    assert len(page.forms) == 1 and page.kept == []


def test_answers_the_diagrams_own_rule_refuses_keep_no_files(deployed, engine, council):
    start_review(engine, council)
    page = Page({**MEETING, "meeting_date": "2026-04-03"})  # Good Friday: the diagram's validate rule
    with pytest.raises(FormInvalid) as caught:
        submit(engine, council, only_task(council).id, "sw@demo.test", page)
    assert caught.value.errors == {"meeting_date": "Choose a working day: schools and offices are closed then"}
    assert page.kept == [] and only_task(council).name == "Arrange the PEP meeting"
