"""Web fixtures: the app on the test database, signed-in clients for each person of the demo council."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import Bundle, deploy
from engine.models import (
    Attachment,
    Deployment,
    Event,
    Incident,
    Instance,
    Notification,
    OpenTask,
    TaskDraft,
    TaskLink,
    User,
)
from webui import create_app
from webui.auth import hash_password

from ..conftest import BASIC_BUNDLE, ROOT

PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)  # Argon2 is slow on purpose: hash once for the whole run


@pytest.fixture
def app(db, clock, council):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": db.url.render_as_string(hide_password=False),
            "CLOCK": clock,
            "SECRET_KEY": "test-secret",
            "SESSION_COOKIE_SECURE": False,
            "SERVER_NAME": "localhost",
        }
    )
    with council.begin() as s:
        for user in s.query(User):
            user.password_hash = PASSWORD_HASH
    yield app
    app.extensions["pep"].sessions.kw["bind"].dispose()


@pytest.fixture
def deployed_app(app, council, clock):
    with clocks.using(clock), council.begin() as s:
        deploy(s, Bundle.from_dirs(BASIC_BUNDLE), actor="owner@demo.test")
    return app


def snapshot(sessions) -> dict:
    """Everything a request could change, but record views (which every look at a child writes)."""
    with sessions() as s:
        return {
            "events": set(
                s.execute(select(Event.child_id, Event.seq, Event.kind).where(Event.kind != "record_viewed"))
            ),
            "instances": dict(s.execute(select(Instance.id, Instance.version)).all()),
            "tasks": set(s.execute(select(OpenTask.id, OpenTask.assignee_id, OpenTask.pooled))),
            "drafts": {(d.task_id, d.user_id): d.data for d in s.scalars(select(TaskDraft))},
            "attachments": set(s.scalars(select(Attachment.id))),
            "links": set(s.execute(select(TaskLink.token_hash, TaskLink.used_at))),
            "incidents": set(s.scalars(select(Incident.id))),
            "notifications": set(s.scalars(select(Notification.id))),
            "deployments": set(s.scalars(select(Deployment.version))),
        }


def changed(before: dict, after: dict) -> set[str]:
    return {key for key in before if before[key] != after[key]}


def one_step_per_form(forms: list[str]) -> str:
    """A diagram with one process per form, `form_<name>`: the child's Social Worker fills the form in, and
    that is all."""
    processes = []
    for form in forms:
        key = "form_" + form.removesuffix(".schema.json")
        processes.append(f"""
  <bpmn:process id="{key}" name="Fill in {form}" isExecutable="true">
    <bpmn:laneSet id="{key}_lanes"><bpmn:lane id="{key}_sw" name="Social Worker">
      <bpmn:flowNodeRef>{key}_start</bpmn:flowNodeRef><bpmn:flowNodeRef>{key}_task</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>{key}_end</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="{key}_start"><bpmn:outgoing>{key}_in</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="{key}_in" sourceRef="{key}_start" targetRef="{key}_task" />
    <bpmn:userTask id="{key}_task" name="Fill in {form}">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="formJsonSchemaFilename" value="{form}" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>{key}_in</bpmn:incoming><bpmn:outgoing>{key}_out</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="{key}_out" sourceRef="{key}_task" targetRef="{key}_end" />
    <bpmn:endEvent id="{key}_end"><bpmn:incoming>{key}_out</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>""")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions '
        'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="every_form" '
        f'targetNamespace="http://example.org/pep-fuzz">{"".join(processes)}\n</bpmn:definitions>\n'
    )


def shipped_form_task(council, clock, engine, form: str, child_id: str = "C001"):
    """A one-step process whose step is the council's shipped `form`, started for the child: its open task
    (the child's Social Worker, sw@demo.test, fills it in)."""
    from ..test_runtime import only_task

    name = f"{form}.schema.json"
    bundle = Bundle(
        {
            f"forms/{name}": (ROOT / "forms" / name).read_text(encoding="utf-8"),
            "processes/one_form.bpmn": one_step_per_form([name]),
        }
    )
    with clocks.using(clock), council.begin() as s:
        deploy(s, bundle, actor="owner@demo.test")
        engine.start(s, f"form_{form}", child_id, actor="sw@demo.test")
    return only_task(council, child_id)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


class Browser:
    """A test client that signs in and posts forms with their CSRF token, like a person would."""

    def __init__(self, app, email: str | None = None):
        self.client = app.test_client()
        self.email = email
        if email:
            self.sign_in(email)

    def sign_in(self, email: str, password: str = PASSWORD):
        page = self.client.get("/sign-in")
        return self.client.post(
            "/sign-in",
            data={"email": email, "password": password, "csrf_token": csrf_token(page.get_data(as_text=True))},
        )

    def get(self, url, **kwargs):
        return self.client.get(url, **kwargs)

    def post(self, url, data=None, page_url=None, **kwargs):
        """Post `data` with the CSRF token of `page_url` (default: the inbox)."""
        page = self.client.get(page_url or "/inbox")
        return self.client.post(
            url, data={**(data or {}), "csrf_token": csrf_token(page.get_data(as_text=True))}, **kwargs
        )


@pytest.fixture
def browser(app):
    return lambda email=None: Browser(app, email)
