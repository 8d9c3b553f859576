"""Moving running PEPs to a new version of their process: only when nothing done or under way changes."""

from __future__ import annotations

import pytest
from lxml import etree
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from engine import history, migration, replay
from engine.deploy import deploy_changes
from engine.models import Instance, ProcessDefinition

from .conftest import BASIC_BUNDLE
from .helpers import sweep
from .test_cli import pep  # noqa: F401 - `pep(*args)` runs the command line on `database_url`
from .test_runtime import MEETING, PEP, complete, only_task, start_review

REVIEW = (BASIC_BUNDLE / "processes" / "review.bpmn").read_text(encoding="utf-8")
DEADLINES = (BASIC_BUNDLE / "processes" / "deadlines.bpmn").read_text(encoding="utf-8")


def with_filing_step(xml: str) -> str:
    """The review with a new last step: the VS adviser files the signed-off PEP."""
    return (
        xml.replace(
            '<bpmn:sequenceFlow id="f_accepted" sourceRef="qa_outcome" targetRef="done" />',
            '<bpmn:sequenceFlow id="f_accepted" sourceRef="qa_outcome" targetRef="file_pep" />'
            '<bpmn:manualTask id="file_pep" name="File the signed-off PEP">'
            "<bpmn:incoming>f_accepted</bpmn:incoming><bpmn:outgoing>f_filed</bpmn:outgoing></bpmn:manualTask>"
            '<bpmn:sequenceFlow id="f_filed" sourceRef="file_pep" targetRef="done" />',
        )
        .replace(
            "<bpmn:incoming>f_accepted</bpmn:incoming>\n    </bpmn:endEvent>",
            "<bpmn:incoming>f_filed</bpmn:incoming>\n    </bpmn:endEvent>",
        )
        .replace(
            "<bpmn:flowNodeRef>done</bpmn:flowNodeRef>",
            "<bpmn:flowNodeRef>done</bpmn:flowNodeRef><bpmn:flowNodeRef>file_pep</bpmn:flowNodeRef>",
        )
    )


def with_review_record(xml: str) -> str:
    """The review window process with a step after the review: the social worker records it."""
    return (
        xml.replace(
            '<bpmn:sequenceFlow id="w6" sourceRef="hold_review" targetRef="window_done" />',
            '<bpmn:sequenceFlow id="w6" sourceRef="hold_review" targetRef="record_review" />'
            '<bpmn:manualTask id="record_review" name="Record the review">'
            "<bpmn:incoming>w6</bpmn:incoming><bpmn:outgoing>w7</bpmn:outgoing></bpmn:manualTask>"
            '<bpmn:sequenceFlow id="w7" sourceRef="record_review" targetRef="window_done" />',
        )
        .replace(
            '<bpmn:endEvent id="window_done"><bpmn:incoming>w6</bpmn:incoming>',
            '<bpmn:endEvent id="window_done"><bpmn:incoming>w7</bpmn:incoming>',
        )
        .replace(
            "<bpmn:flowNodeRef>window_done</bpmn:flowNodeRef>",
            "<bpmn:flowNodeRef>window_done</bpmn:flowNodeRef><bpmn:flowNodeRef>record_review</bpmn:flowNodeRef>",
        )
    )


def without(xml: str, *element_ids: str) -> str:
    """The diagram with some elements (and their lane entries) taken out."""
    root = etree.fromstring(xml.encode("utf-8"))
    for node in list(root.iter()):
        if node.get("id") in element_ids or (node.text or "").strip() in element_ids:
            node.getparent().remove(node)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode("utf-8")


def deploy_edit(sessions, path: str, xml: str) -> int:
    """Deploy the newest files with one diagram replaced; return the new version number."""
    with sessions.begin() as s:
        deployment, created = deploy_changes(s, {path: xml}, actor="owner@demo.test", note="edited")
        assert created
        return deployment.version


def definition(session, process_id: str, version: int) -> ProcessDefinition:
    return next(
        d
        for d in session.scalars(select(ProcessDefinition).where(ProcessDefinition.process_id == process_id))
        if d.deployment.version == version
    )


def at_complete_pep(engine, sessions) -> int:
    """A review whose meeting is arranged: the teacher holds the PEP, with its reminder and deadline set."""
    instance_id = start_review(engine, sessions)
    complete(engine, sessions, only_task(sessions), "sw@demo.test", MEETING)
    return instance_id


def migrate(engine, sessions, instance_id: int, process_id: str, version: int) -> Instance:
    with sessions.begin() as s:
        return migration.migrate(engine, s, instance_id, definition(s, process_id, version).id, "owner@demo.test")


def test_a_pep_waiting_for_the_teacher_moves_to_a_version_with_a_new_last_step_and_reaches_it(
    deployed, engine, council
):
    instance_id = at_complete_pep(engine, council)
    task_before = only_task(council)
    version = deploy_edit(council, "processes/review.bpmn", with_filing_step(REVIEW))
    with council() as s:
        assert migration.check(engine, s.get(Instance, instance_id), definition(s, "test_review", version)).safe

    moved = migrate(engine, council, instance_id, "test_review", version)

    assert moved.definition.deployment.version == version
    task = only_task(council)
    assert (task.id, task.name, task.assignee_id) == (task_before.id, "Complete the PEP", task_before.assignee_id)
    complete(engine, council, task, "dt@demo.test", PEP)
    complete(engine, council, only_task(council), "ea@demo.test", {"rating": "Green", "feedback": "Clear targets."})
    assert (only_task(council).name, only_task(council).lane) == ("File the signed-off PEP", "VS Education Adviser")


def test_a_pep_whose_current_step_changed_is_refused_with_the_reason(deployed, engine, council):
    instance_id = at_complete_pep(engine, council)
    version = deploy_edit(
        council,
        "processes/review.bpmn",
        REVIEW.replace('name="Complete the PEP"', 'name="Complete and submit the PEP"'),
    )
    with council() as s:
        verdict = migration.check(engine, s.get(Instance, instance_id), definition(s, "test_review", version))
    assert not verdict.safe
    assert verdict.reasons == ['"Complete the PEP" (complete_pep) is in progress and its name changed']

    with pytest.raises(migration.MigrationRefused, match="its name changed"):
        migrate(engine, council, instance_id, "test_review", version)
    with council() as s:
        assert s.get(Instance, instance_id).definition.deployment.version == 1


def test_a_pep_past_a_step_that_changed_cannot_move(deployed, engine, council):
    instance_id = at_complete_pep(engine, council)
    renamed = REVIEW.replace('name="Arrange the PEP meeting"', 'name="Plan the PEP meeting"')
    version = deploy_edit(council, "processes/review.bpmn", renamed)
    with council() as s:
        verdict = migration.check(engine, s.get(Instance, instance_id), definition(s, "test_review", version))
    assert verdict.reasons == ['"Arrange the PEP meeting" (arrange_meeting) is done and its name changed']


def test_a_pep_whose_running_reminder_was_removed_cannot_move(deployed, engine, council):
    instance_id = at_complete_pep(engine, council)
    version = deploy_edit(council, "processes/review.bpmn", without(REVIEW, "reminder", "f_reminder", "reminder_sent"))
    with council() as s:
        verdict = migration.check(engine, s.get(Instance, instance_id), definition(s, "test_review", version))
    assert '"Reminder before deadline" (reminder) is waiting and is not in the new version' in verdict.reasons


def test_a_waiting_timer_keeps_its_fire_time_when_the_pep_moves(deployed, engine, council):
    with council.begin() as s:
        instance_id = engine.start(s, "test_window", "C001").id  # the window opens in 3 days: 5 March, 09:00
    engine.clock.set("2026-03-04T12:00:00+00:00")  # restarting the timer now would move it to 7 March
    version = deploy_edit(council, "processes/deadlines.bpmn", with_review_record(DEADLINES))

    moved = migrate(engine, council, instance_id, "test_window", version)

    assert moved.next_timer_at.isoformat() == "2026-03-05T09:00:00+00:00"
    with council() as s:
        workflow = engine.load(s.get(Instance, instance_id))
        waiting = workflow.get_tasks(state=TaskState.WAITING)  # the event-based gateway holds the timer
        assert [t.internal_data["event_value"] for t in waiting] == ["2026-03-05T09:00:00+00:00"]
    assert sweep(engine, council, "2026-03-05T09:00:01+00:00").timers_fired == 1
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    assert only_task(council).name == "Record the review"


def test_the_childs_history_records_the_move_and_still_verifies_and_replays(deployed, engine, council):
    instance_id = at_complete_pep(engine, council)
    version = deploy_edit(council, "processes/review.bpmn", with_filing_step(REVIEW))
    migrate(engine, council, instance_id, "test_review", version)
    with council() as s:
        moved = [e for e in history.events(s, "C001") if e.kind == "instance_migrated"]
        assert len(moved) == 1 and moved[0].actor == "owner@demo.test" and moved[0].instance_id == instance_id
        assert {k: moved[0].data[k] for k in ("process_id", "from_version", "to_version")} == {
            "process_id": "test_review",
            "from_version": 1,
            "to_version": version,
        }
        assert history.verify(s, "C001").ok
    complete(engine, council, only_task(council), "dt@demo.test", PEP)
    with council() as s:
        replayed = replay.replay_child(s, engine, "C001")
    assert replayed.ok, replayed.problems


def test_peps_stay_on_their_version_until_moved(deployed, engine, council):
    first = at_complete_pep(engine, council)
    version = deploy_edit(council, "processes/review.bpmn", with_filing_step(REVIEW))
    second = start_review(engine, council, "C002")
    with council() as s:
        assert s.get(Instance, first).definition.deployment.version == 1
        assert s.get(Instance, second).definition.deployment.version == version


def test_a_pep_cannot_move_to_an_older_or_the_same_version(deployed, engine, council):
    instance_id = at_complete_pep(engine, council)
    with council() as s:
        verdict = migration.check(engine, s.get(Instance, instance_id), definition(s, "test_review", 1))
    assert verdict.reasons == ["the PEP is already on version 1"]


@pytest.fixture
def database_url(db):
    """The command line works on this test's database."""
    return db.url.render_as_string(hide_password=False)


def test_pep_migrate_moves_the_safe_peps_and_says_why_the_others_stay(deployed, engine, council, pep):  # noqa: F811
    waiting_to_arrange = start_review(engine, council, "C002")
    at_the_pep = at_complete_pep(engine, council)
    version = deploy_edit(
        council,
        "processes/review.bpmn",
        REVIEW.replace('name="Complete the PEP"', 'name="Complete and submit the PEP"'),
    )

    dry = pep("migrate", "test_review", "--as", "owner@demo.test", "--dry-run")
    assert f"instance {waiting_to_arrange} (child C002, version 1) can move" in dry.stdout
    assert f"instance {at_the_pep} (child C001, version 1) cannot move: " in dry.stdout
    moved = pep("migrate", "test_review", "--as", "owner@demo.test")
    assert moved.exit_code == 0 and f"moved instance {waiting_to_arrange} to version {version}" in moved.stdout
    refused = pep("migrate", "test_review", "--instance", str(at_the_pep), "--as", "owner@demo.test")
    assert refused.exit_code == 1 and "its name changed" in refused.stderr
    with council() as s:
        assert [s.get(Instance, i).definition.deployment.version for i in (waiting_to_arrange, at_the_pep)] == [
            version,
            1,
        ]


def test_the_reason_names_what_changed_in_the_step(deployed, engine, council):
    instance_id = at_complete_pep(engine, council)
    other_form = REVIEW.replace('value="complete_pep.schema.json"', 'value="views.schema.json"')
    version = deploy_edit(
        council,
        "processes/review.bpmn",
        other_form.replace(
            '<bpmn:lane id="lane_dt" name="Designated Teacher">', '<bpmn:lane id="lane_dt" name="Designated Person">'
        ),
    )
    with council() as s:
        verdict = migration.check(engine, s.get(Instance, instance_id), definition(s, "test_review", version))
    assert verdict.reasons == ['"Complete the PEP" (complete_pep) is in progress and its lane, form changed']
