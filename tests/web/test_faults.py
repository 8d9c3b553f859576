"""A step the diagram cannot run, seen from the web: the person is told plainly, loses nothing they
typed, and the Virtual School is told."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine import limits
from engine.deploy import Bundle, deploy
from engine.models import Incident, Instance, Notification, OpenTask, TaskDraft, User
from tests.test_limits import FORM, after_a_day

HOSTILE_TASK = """<bpmn:userTask id="hostile" name="Write a note">
      <bpmn:extensionElements>
        <spiffworkflow:instructionsForEndUser>{instructions}</spiffworkflow:instructionsForEndUser>
        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="note.schema.json" />
        </spiffworkflow:properties>
        <spiffworkflow:postScript>while True:
    n = 1</spiffworkflow:postScript>
      </bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f_end</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f_end" sourceRef="hostile" targetRef="done" />"""
LANE = """<bpmn:laneSet id="lanes"><bpmn:lane id="sw_lane" name="Social Worker">
      <bpmn:flowNodeRef>hostile</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"""


@pytest.fixture
def hostile_task(app, council, clock, engine):
    """A note for the social worker whose post-script never ends (and, in a second process, whose
    instructions cannot be shown)."""
    with limits.using(limits.Limits(evaluation_seconds=0.3, step_seconds=0.6)):
        xml = after_a_day(HOSTILE_TASK.format(instructions="Write a note for {{ child.name }}"), lane=LANE)
        with clocks.using(clock), council.begin() as s:
            deploy(s, Bundle({"processes/hostile.bpmn": xml, "forms/note.schema.json": FORM}), actor="owner@demo.test")
            instance = engine.start(s, "hostile_process", "C001")
        clock.advance(days=2)
        with council.begin() as s:
            engine.fire_timers(s, s.get(Instance, instance.id))
        with council() as s:
            yield s.scalars(select(OpenTask)).one()


def test_a_step_that_cannot_run_tells_the_social_worker_plainly_and_keeps_the_note(hostile_task, browser, council):
    sw = browser("sw@demo.test")
    url = f"/tasks/{hostile_task.id}"
    with limits.using(limits.Limits(evaluation_seconds=0.3, step_seconds=0.6)):
        page = sw.post(url, {"note": "Alex read every day this week", "_version": "2"}, page_url=url)
    html = page.get_data(as_text=True)
    assert page.status_code == 500
    assert "This step could not run; the Virtual School has been told." in html
    assert "Alex read every day this week" in html  # the answer is still on the page
    assert "while True" not in html and "hostile_process" not in html  # no diagram internals for a social worker
    with council() as s:
        assert s.get(OpenTask, hostile_task.id) is not None  # nothing applied: the task is still to do
        sw_id = s.scalar(select(User.id).where(User.email == "sw@demo.test"))
        assert s.get(TaskDraft, (hostile_task.id, sw_id)).data["note"] == "Alex read every day this week"
        incident = s.scalars(select(Incident)).one()
        assert incident.source == "task" and "element hostile" in incident.message and "time limit" in incident.message
        assert (
            s.scalars(select(Notification.role_key).where(Notification.kind == "incident")).one() == "vs_administrator"
        )


def test_the_vs_administrator_sees_the_incident_and_marks_it_resolved(hostile_task, browser, council):
    sw = browser("sw@demo.test")
    url = f"/tasks/{hostile_task.id}"
    with limits.using(limits.Limits(evaluation_seconds=0.3, step_seconds=0.6)):
        sw.post(url, {"note": "Alex read every day this week"}, page_url=url)
    assert sw.get("/admin/incidents").status_code == 403  # the VS administrator's page only
    admin = browser("admin@demo.test")
    page = admin.get("/admin/incidents").get_data(as_text=True)
    assert "Alex Example" in page and "element hostile" in page and "Mark as resolved" in page
    with council() as s:
        incident_id = s.scalars(select(Incident.id)).one()
    done = admin.post(
        f"/admin/incidents/{incident_id}/resolve",
        {"note": "Fixed in version 2"},
        page_url="/admin/incidents",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert f"Incident {incident_id} is resolved" in done
    with council() as s:
        assert s.get(Incident, incident_id).resolved_at is not None
    audit = admin.get("/audit/children/C001").get_data(as_text=True)
    assert f"Incident {incident_id} resolved: Fixed in version 2" in audit


def test_the_menu_marks_only_the_section_shown(deployed_app, browser):
    admin = browser("admin@demo.test")
    incidents = admin.get("/admin/incidents").get_data(as_text=True)
    assert 'aria-current="page">Incidents' in incidents and 'aria-current="page">People' not in incidents
    people = admin.get("/admin/users").get_data(as_text=True)
    assert 'aria-current="page">People' in people and 'aria-current="page">Incidents' not in people
