"""The database lost under the web app (a failover, a restart): the person is told in one plain page
(503), loses nothing they typed, and the next try succeeds."""

from __future__ import annotations

import logging

import psycopg
import pytest
from sqlalchemy import event, select, text

from engine.models import Instance, OpenTask, TaskDraft, User
from engine.runtime import Step

from ..conftest import PG_URL
from ..test_faults import terminate, terminated_mid_step
from ..test_runtime import only_task, start_review
from .test_routes import date_fields

pytestmark = pytest.mark.skipif(
    not PG_URL,
    reason="a database connection to lose is PostgreSQL's (SQLite runs in the process): set PEP_TEST_DATABASE_URL",
)

ANSWERS = {"_do": "submit", "venue": "Oak Primary, the library", **date_fields("meeting_date", "2026-03-10")}


def refuse(*_args):
    """New connections are refused, as while the server restarts."""
    raise psycopg.OperationalError("connection failed: connection refused")


def draft_of(council, task_id):
    with council() as s:
        sw_id = s.scalar(select(User.id).where(User.email == "sw@demo.test"))
        draft = s.get(TaskDraft, (task_id, sw_id))
        return draft.data if draft else None


def nothing_applied(council, instance_id, task_id):
    with council() as s:
        assert s.get(Instance, instance_id).version == 1
        assert s.get(OpenTask, task_id) is not None


def test_a_submission_whose_connection_is_lost_keeps_the_answers_as_a_draft_and_the_next_try_succeeds(
    deployed_app, browser, engine, council, db, monkeypatch, caplog
):
    instance_id = start_review(engine, council)
    task = only_task(council)
    sw, url = browser("sw@demo.test"), f"/tasks/{task.id}"
    terminated = terminated_mid_step(db, monkeypatch, step=1)

    page = sw.post(url, ANSWERS, page_url=url)
    html = page.get_data(as_text=True)
    assert terminated == [1] and page.status_code == 503
    assert "The service lost its connection to its database, so your answers were not submitted." in html
    assert "Your answers are saved as a draft" in html and 'value="Oak Primary, the library"' in html
    assert "Traceback" not in html
    nothing_applied(council, instance_id, task.id)
    assert draft_of(council, task.id)["venue"] == "Oak Primary, the library"
    lost = [r for r in caplog.records if "connection was lost" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING and lost[0].exc_info is None

    again = sw.post(url, ANSWERS, page_url=url)
    assert again.status_code == 302 and again.location.endswith("/inbox")
    assert only_task(council).name == "Complete the PEP" and draft_of(council, task.id) is None


def test_while_the_database_is_out_of_reach_the_answers_stay_on_the_page(
    deployed_app, app, browser, engine, council, db, monkeypatch
):
    """The draft cannot be saved either: the page is shown again from what the request had read."""
    instance_id = start_review(engine, council)
    task = only_task(council)
    sw, url = browser("sw@demo.test"), f"/tasks/{task.id}"
    app_db = app.extensions["pep"].sessions.kw["bind"]

    saving, terminated = Step.save, []

    def save(step, *args, **kwargs):  # the database goes away as the step saves, and stays away
        if not terminated:
            event.listen(app_db, "do_connect", refuse)
            terminated.append(terminate(db, pid=step.session.scalar(text("SELECT pg_backend_pid()"))))
        return saving(step, *args, **kwargs)

    monkeypatch.setattr(Step, "save", save)
    try:
        page = sw.post(url, ANSWERS, page_url=url)
    finally:
        event.remove(app_db, "do_connect", refuse)
    html = page.get_data(as_text=True)
    assert terminated == [1] and page.status_code == 503
    assert "could not be saved yet, so keep this page open" in html
    assert 'value="Oak Primary, the library"' in html and "Arrange the PEP meeting" in html
    nothing_applied(council, instance_id, task.id)
    assert draft_of(council, task.id) is None

    again = sw.post(url, ANSWERS, page_url=url)
    assert again.status_code == 302


def test_a_connection_left_dead_in_the_pool_is_replaced_before_the_page_does_anything(
    deployed_app, browser, db, caplog
):
    """After a failover every pooled connection is dead: the first read of the next request finds it,
    and reads again on a fresh connection; the person sees their page."""
    sw = browser("sw@demo.test")
    assert terminate(db, named="pep-web") >= 1  # the app's pooled connections
    assert sw.get("/inbox").status_code == 200
    lost = [r.getMessage() for r in caplog.records if "connection was lost" in r.getMessage()]
    assert len(lost) == 1 and lost[0].startswith("reading the signed-in person: the database connection was lost")


def test_any_page_says_plainly_when_the_database_is_out_of_reach_and_works_when_it_is_back(
    deployed_app, app, browser, db
):
    sw = browser("sw@demo.test")
    app_db = app.extensions["pep"].sessions.kw["bind"]
    event.listen(app_db, "do_connect", refuse)
    try:
        terminate(db, named="pep-web")
        page = sw.get("/inbox")
    finally:
        event.remove(app_db, "do_connect", refuse)
    assert page.status_code == 503
    html = page.get_data(as_text=True)
    assert "The service lost its connection to its database. Try again in a minute." in html and "Traceback" not in html
    assert sw.get("/inbox").status_code == 200


def test_saving_a_draft_when_the_connection_is_lost_keeps_the_answers(
    deployed_app, browser, engine, council, db, monkeypatch
):
    from webui import inbox

    start_review(engine, council)
    task = only_task(council)
    sw, url = browser("sw@demo.test"), f"/tasks/{task.id}"
    saving, terminated = inbox._save_draft, []

    def save_draft(task_id, data):
        if not terminated:  # the connection is lost as the draft is written; the database is back at once
            terminated.append(terminate(db, named="pep-web"))
        return saving(task_id, data)

    monkeypatch.setattr(inbox, "_save_draft", save_draft)
    page = sw.post(url, {**ANSWERS, "_do": "save"}, page_url=url)
    assert page.status_code == 503 and "Your answers are saved as a draft" in page.get_data(as_text=True)
    assert draft_of(council, task.id)["venue"] == "Oak Primary, the library"
