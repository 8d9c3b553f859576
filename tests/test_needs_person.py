"""No task without a person: a lane whose role the child's case team names nobody for goes to the role's
fallback (config/roles.yaml, or the task's own `fallback`), else to the VS administrator's "needs a
person" list, and they are told; naming someone in the case team gives them the task."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import (
    Bundle,
    DeploymentRejected,
    DeployWarning,
    deploy_changes,
    lane_warnings,
    latest_bundle,
)
from engine.errors import NotAllowed
from engine.history import events
from engine.models import Notification, OpenTask, User
from engine.people import add_child, set_case_team
from engine.roles import RoleDirectory

from .conftest import BASIC_BUNDLE, seat_case_team
from .test_runtime import MEETING, PEP, complete, only_task, start_review


@pytest.fixture
def unplaced(council, clock):
    """C003, a child with no school place: a social worker, and nobody as Designated Teacher."""
    with clocks.using(clock), council.begin() as s:
        add_child(s, "C003", "Harper Unplaced", date(2012, 8, 1), None)
        seat_case_team(s, "C003", {"Social Worker": "sw@demo.test"})
    return council


@pytest.fixture
def unallocated(council, clock):
    """C004, a child whose case team names nobody yet: no social worker, no teacher."""
    with clocks.using(clock), council.begin() as s:
        add_child(s, "C004", "Robin Newcomer", date(2013, 4, 2), "Oak Primary")
    return council


def task_ready(sessions, child_id, spec_id):
    with sessions() as s:
        return [e for e in events(s, child_id) if e.kind == "task_ready" and e.data["task"] == spec_id][-1]


def notices(sessions, child_id, kind):
    with sessions() as s:
        return s.scalars(
            select(Notification)
            .where(Notification.child_id == child_id, Notification.kind == kind)
            .order_by(Notification.id)
        ).all()


def test_a_dt_task_for_a_child_with_no_school_place_goes_to_the_vs_education_adviser_pool(deployed, engine, unplaced):
    start_review(engine, unplaced, "C003")
    complete(engine, unplaced, only_task(unplaced, "C003"), "sw@demo.test", MEETING)
    task = only_task(unplaced, "C003")
    assert (task.spec_id, task.lane, task.role_key, task.pooled, task.assignee_id) == (
        "complete_pep",
        "Designated Teacher",
        "vs_education_adviser",
        True,
        None,
    )
    ready = task_ready(unplaced, "C003", "complete_pep")
    assert ready.data["fallback_from"] == "designated_teacher" and ready.data["role"] == "vs_education_adviser"
    assert "needs_person" not in ready.data
    assert [n.role_key for n in notices(unplaced, "C003", "task_pooled")] == ["vs_education_adviser"]
    with unplaced.begin() as s:  # any adviser may claim it and do it
        engine.claim(s, task.id, "ea2@demo.test")
    complete(engine, unplaced, task, "ea2@demo.test", PEP)
    assert only_task(unplaced, "C003").spec_id == "qa"


def test_a_lane_nobody_holds_without_a_fallback_is_on_the_needs_a_person_list_until_the_case_team_names_someone(
    deployed, engine, unallocated, clock
):
    start_review(engine, unallocated, "C004")
    task = only_task(unallocated, "C004")
    assert (task.spec_id, task.role_key, task.assignee_id, task.pooled) == (
        "arrange_meeting",
        "social_worker",
        None,
        False,
    )
    assert task_ready(unallocated, "C004", "arrange_meeting").data["needs_person"] is True
    told = notices(unallocated, "C004", "task_needs_person")
    assert [(n.role_key, n.user_id, n.task_id) for n in told] == [("vs_administrator", None, task.id)]
    assert told[0].subject == "Arrange the PEP meeting for Robin Newcomer needs a person: nobody is their Social Worker"
    assert not notices(unallocated, "C004", "task_pooled")  # not broadcast to every social worker
    with pytest.raises(NotAllowed), unallocated.begin() as s:
        engine.complete_task(s, task.id, "sw@demo.test", MEETING)

    with clocks.using(clock), unallocated.begin() as s:
        set_case_team(s, "C004", {"Social Worker": "sw@demo.test"}, actor="admin@demo.test")
    with unallocated() as s:
        moved = s.get(OpenTask, task.id)
        sw = s.scalar(select(User).where(User.email == "sw@demo.test"))
        assert (moved.assignee_id, moved.pooled) == (sw.id, False)
        change = [e for e in events(s, "C004") if e.kind == "case_team_changed"][-1]
    assert change.actor == "admin@demo.test"
    assert change.data == {"role": "social_worker", "from": None, "to": "sw@demo.test", "tasks": [task.id]}
    assert [n.user_id for n in notices(unallocated, "C004", "task_assigned")] == [sw.id]
    complete(engine, unallocated, task, "sw@demo.test", MEETING)


def test_removing_the_only_holder_of_a_role_without_a_fallback_puts_their_task_on_the_list(
    deployed, engine, council, clock
):
    start_review(engine, council)
    task = only_task(council)
    with clocks.using(clock), council.begin() as s:
        change = set_case_team(s, "C001", {"Social Worker": None}, actor="admin@demo.test")
    assert change == [
        {"role": "social_worker", "from": "sw@demo.test", "to": None, "tasks": [task.id], "needs_person": [task.id]}
    ]
    with council() as s:
        moved = s.get(OpenTask, task.id)
        assert (moved.assignee_id, moved.pooled) == (None, False)
    assert [n.task_id for n in notices(council, "C001", "task_needs_person")] == [task.id]


def test_a_task_may_name_its_own_fallback_in_place_of_the_roles(deployed, engine, unplaced, clock):
    with unplaced() as s:
        review = latest_bundle(s).files["processes/review.bpmn"]
    review = review.replace(
        '<spiffworkflow:property name="dueDate" value="pep_due" />',
        '<spiffworkflow:property name="dueDate" value="pep_due" />\n'
        '          <spiffworkflow:property name="fallback" value="Social Worker" />',
    )
    with clocks.using(clock), unplaced.begin() as s:
        deploy_changes(s, {"processes/review.bpmn": review}, actor="owner@demo.test")
    start_review(engine, unplaced, "C003")
    complete(engine, unplaced, only_task(unplaced, "C003"), "sw@demo.test", MEETING)
    task = only_task(unplaced, "C003")
    assert (task.role_key, task.pooled, task.lane) == ("social_worker", False, "Designated Teacher")
    assert task_ready(unplaced, "C003", "complete_pep").data["fallback_from"] == "designated_teacher"
    complete(engine, unplaced, task, "sw@demo.test", PEP)


def test_a_fallback_naming_an_unknown_role_or_one_that_sees_no_child_is_refused(deployed, council, clock):
    with council() as s:
        review = latest_bundle(s).files["processes/review.bpmn"]
    for name, problem in (
        ("Headmaster", 'fallback: "Headmaster" is not a known role'),
        ("Process Owner", "fallback: the Process Owner sees no child's record"),
    ):
        changed = review.replace(
            '<spiffworkflow:property name="dueDate" value="pep_due" />',
            f'<spiffworkflow:property name="fallback" value="{name}" />',
        )
        with pytest.raises(DeploymentRejected) as rejected, clocks.using(clock), council.begin() as s:
            deploy_changes(s, {"processes/review.bpmn": changed}, actor="owner@demo.test")
        assert [e.element_id for e in rejected.value.errors] == ["complete_pep"]
        assert problem in rejected.value.errors[0].message


def test_deploy_warns_of_lanes_that_may_have_nobody_but_not_of_pooled_roles_or_those_with_a_fallback(council):
    bundle = Bundle.from_dirs(BASIC_BUNDLE)
    with council() as s:
        roles = RoleDirectory.load(s)
    warned = {(w.file, w.element_id) for w in lane_warnings(bundle, roles)}
    # the Designated Teacher falls back to the VS Education Advisers' pool; their lane is a pool itself
    assert ("processes/review.bpmn", "lane_dt") not in warned and ("processes/review.bpmn", "lane_ea") not in warned
    assert ("processes/review.bpmn", "lane_sw") in warned and ("processes/views.bpmn", "views_yp") in warned
    assert all(isinstance(w, DeployWarning) for w in lane_warnings(bundle, roles))
    given = bundle.files["processes/views.bpmn"].replace(
        '<spiffworkflow:property name="formJsonSchemaFilename"',
        '<spiffworkflow:property name="fallback" value="VS Education Adviser" />\n'
        '          <spiffworkflow:property name="formJsonSchemaFilename"',
    )
    assert given != bundle.files["processes/views.bpmn"]
    bundle.files["processes/views.bpmn"] = given
    assert [w.element_id for w in lane_warnings(bundle, roles, ["processes/views.bpmn"])] == []
