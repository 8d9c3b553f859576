"""A child's data reaches only people who may see that child: never the process owner or an auditor
through a notification, never someone who has left the child's case team."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import Bundle, DeploymentRejected, deploy
from engine.models import Notification, User
from engine.people import add_user, set_case_team

from ..conftest import BASIC_BUNDLE
from .conftest import PASSWORD_HASH


def notice(council, clock, subject: str, **to) -> None:
    with council.begin() as s:
        s.add(Notification(child_id="C001", kind="notice", subject=subject, body=subject, created_at=clock.now(), **to))


@pytest.mark.parametrize("role", ["Process Owner", "Auditor"])
def test_a_diagram_may_not_tell_a_role_that_sees_no_child_of_a_childs_pep(council, clock, role):
    bundle = Bundle.from_dirs(BASIC_BUNDLE)
    path = "processes/deadlines.bpmn"
    bundle.files[path] = bundle.files[path].replace('value="VS Head, Social Worker, Carer"', f'value="{role}"')
    with pytest.raises(DeploymentRejected, match="sees no child's record"), clocks.using(clock), council.begin() as s:
        deploy(s, bundle, actor="owner@demo.test")


def test_nor_give_such_a_role_a_childs_task(council, clock):
    bundle = Bundle.from_dirs(BASIC_BUNDLE)
    path = "processes/deadlines.bpmn"
    bundle.files[path] = bundle.files[path].replace(
        '<bpmn:lane id="initial_vsh" name="Virtual School Head">', '<bpmn:lane id="initial_vsh" name="Process Owner">'
    )
    with (
        pytest.raises(DeploymentRejected, match="cannot be given a child's work"),
        clocks.using(clock),
        council.begin() as s,
    ):
        deploy(s, bundle, actor="owner@demo.test")


def test_the_process_owner_never_reads_a_childs_answer_in_a_notification(app, council, clock, browser):
    with clocks.using(clock), council.begin() as s:
        add_user(s, "owner@demo.test", "Olu Owner", roles=["Process Owner"], password_hash=PASSWORD_HASH)
    notice(council, clock, "Confidential: Alex disclosed something", role_key="process_owner")
    page = browser("owner@demo.test").get("/notifications").get_data(as_text=True)
    assert "Confidential" not in page


def test_someone_who_left_the_case_team_no_longer_reads_its_notifications(app, council, clock, browser):
    with council.begin() as s:
        dt = s.scalar(select(User.id).where(User.email == "dt@demo.test"))
    notice(council, clock, "Alex's attendance has dropped", user_id=dt)
    assert "attendance has dropped" in browser("dt@demo.test").get("/notifications").get_data(as_text=True)
    with clocks.using(clock), council.begin() as s:
        set_case_team(s, "C001", {"Designated Teacher": "other.dt@demo.test"})
    assert "attendance has dropped" not in browser("dt@demo.test").get("/notifications").get_data(as_text=True)
