"""Answers the app holds are filled in, not asked again: whether the child has a school place (from the
child's record), the invitation list (the case team), and 'Sent to' offers the case team to choose from.
Each is declared in the form (`x-prefill`, `x-choices`)."""

from __future__ import annotations

import re

from sqlalchemy import select

from engine.models import OpenTask, User

from .conftest import Browser
from .test_plain_pages import council  # noqa: F401 - the demo council, on the shipped processes


def task_page(app, sessions, child_id: str, spec_id: str) -> str:
    with sessions() as s:
        task = s.scalars(select(OpenTask).where(OpenTask.child_id == child_id, OpenTask.spec_id == spec_id)).one()
        holder = s.get(User, task.assignee_id).email
    return Browser(app, holder).get(f"/tasks/{task.id}").get_data(as_text=True)


def test_the_school_place_and_the_invitations_come_from_the_childs_record_and_case_team(app, council):  # noqa: F811
    page = task_page(app, council, "D-1003", "call_meeting")
    assert re.search(r'<input[^>]*name="has_school_place"[^>]*value="yes"[^>]*checked', page)
    invited = dict(
        zip(
            re.findall(r'name="invitees\.\d+\.name"[^>]*value="([^"]*)"', page),
            re.findall(r'<option value="([^"]*)" selected', page),
            strict=False,
        )
    )
    assert invited == {"Cara Doyle": "Carer", "Eden Clarke": "Designated Teacher"}  # not the social worker herself


def test_sent_to_offers_the_case_team_and_still_takes_anyone_else(app, council):  # noqa: F811
    with council() as s:
        task = s.scalars(select(OpenTask).where(OpenTask.child_id == "D-1008")).first()
    page = task_page(app, council, "D-1008", task.spec_id)
    assert 'list="f-sent_to-choices"' in page
    options = re.findall(r'<option value="([^"]*)"></option>', page)
    assert "Dana Fletcher (Designated Teacher)" in options and "Cara Doyle (Carer)" in options
    assert re.search(r'name="setting_name"[^>]*value="Oak Primary School"', page)
