"""A long form (x-sections) as GOV.UK's task list, without JavaScript: each section a page of its own with its
status, answers kept in the draft section by section, Check your answers only once every section is
completed, and a submission the engine refuses taking the person to the section that holds the problem."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.models import Event, TaskDraft, User
from webui.sample import sample_answers

from .conftest import shipped_form_task


@pytest.fixture
def epep(deployed_app, council, clock, engine):
    return shipped_form_task(council, clock, engine, "review_complete_epep")


def _statuses(html: str) -> list[str]:
    import re

    return [
        re.sub(r"<[^>]+>", "", s).strip()
        for s in re.findall(r'class="govuk-task-list__status[^"]*"[^>]*>(.*?)</div>', html, re.S)
    ]


def _draft(council):
    with council() as s:
        return s.scalars(select(TaskDraft)).one()


def test_the_task_list_shows_each_section_and_its_status(epep, browser):
    sw, url = browser("sw@demo.test"), f"/tasks/{epep.id}"
    html = sw.get(url).get_data(as_text=True)
    assert "You have completed 0 of 7 sections." in html
    assert _statuses(html) == ["Not yet started"] * 7 + ["Cannot start yet"]
    assert f'href="{url}/sections/1"' in html and f'href="{url}/check' not in html
    section = sw.get(f"{url}/sections/5").get_data(as_text=True)
    assert '<h1 class="govuk-heading-l">Views of the child and carers</h1>' in section
    assert 'name="child_views"' in section and 'name="meeting_date-day"' not in section  # only its own questions


def test_answers_are_kept_section_by_section_and_completed_once_checked(epep, browser, council):
    sw, url = browser("sw@demo.test"), f"/tasks/{epep.id}"
    views = f"{url}/sections/5"
    saved = sw.post(views, {"_do": "save", "child_views": "I like art"}, page_url=views)
    assert saved.status_code == 302 and saved.location.endswith(url)
    assert _statuses(sw.get(url).get_data(as_text=True))[4] == "In progress"
    refused = sw.post(views, {"_do": "continue", "child_views": "I like art"}, page_url=views)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "govuk-error-summary" in html
    assert (
        "Enter carers&#39; views" in html and "Enter the name of the person who chaired" not in html
    )  # this section's only
    assert _draft(council).data["child_views"] == "I like art"
    done = sw.post(views, {"_do": "continue", "child_views": "I like art", "carer_views": "Doing well"}, page_url=views)
    assert done.status_code == 302
    meeting = f"{url}/sections/1"
    sw.post(meeting, {"_do": "save", "chaired_by": "Dana Teacher"}, page_url=meeting)
    draft = _draft(council)
    assert draft.sections_done == [5]
    assert draft.data["child_views"] == "I like art" and draft.data["chaired_by"] == "Dana Teacher"  # both kept
    statuses = _statuses(sw.get(url).get_data(as_text=True))
    assert statuses[0] == "In progress" and statuses[4] == "Completed" and statuses[-1] == "Cannot start yet"
    again = sw.post(views, {"_do": "save", "child_views": "", "carer_views": "Doing well"}, page_url=views)
    assert again.status_code == 302 and 5 not in _draft(council).sections_done  # changed: to be checked again


def test_every_section_completed_then_submitted_and_a_refusal_goes_to_its_section(epep, browser, council, engine):
    sw, url = browser("sw@demo.test"), f"/tasks/{epep.id}"
    with council.begin() as s:
        answers = sample_answers(engine.task_form(s, epep.id, "sw@demo.test")["form_schema"], engine.now().date())
        answers.update(
            meeting_date="2026-02-27",
            next_meeting_date="2026-04-20",
            moving_school=False,
            sen_status="None",
            targets=[{**answers["targets"][0], "pp_plus_funded": False, "pp_plus_amount": 300}],
        )
        answers.pop("ehcp_attachment", None)
        answers.pop("other_attachments", None)
        s.add(
            TaskDraft(
                task_id=epep.id,
                user_id=s.scalar(select(User.id).where(User.email == "sw@demo.test")),
                data=answers,
                saved_at=engine.now(),
                sections_done=[1, 2, 3, 4, 5, 6, 7],
            )
        )
    html = sw.get(url).get_data(as_text=True)
    assert _statuses(html) == ["Completed"] * 7 + ["Not yet started"] and f'href="{url}/check' in html
    assert f'href="{url}/sections/6"' in sw.get(f"{url}/check").get_data(as_text=True)  # Change
    with council.begin() as s:  # someone's answer no longer stands: the chair left out
        draft = s.scalars(select(TaskDraft)).one()
        draft.data = {k: v for k, v in draft.data.items() if k != "chaired_by"}
    refused = sw.post(url, {"_do": "confirm"}, page_url=f"{url}/check")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert '<h1 class="govuk-heading-l">The meeting</h1>' in html and "Enter the name of the person who chaired" in html
    assert _draft(council).sections_done == [2, 3, 4, 5, 6, 7]
    with council.begin() as s:  # the chair named again (its page is tested above)
        draft = s.scalars(select(TaskDraft)).one()
        draft.data, draft.sections_done = {**answers, "chaired_by": "Dana Teacher"}, [1, 2, 3, 4, 5, 6, 7]
    done = sw.post(url, {"_do": "confirm"}, page_url=f"{url}/check")
    assert done.status_code == 302 and done.location.endswith("/inbox"), done.get_data(as_text=True)
    with council() as s:
        stored = s.scalars(select(Event).where(Event.kind == "task_completed")).all()[-1].data["data"]
    assert stored["chaired_by"] == "Dana Teacher"
    assert "pp_plus_amount" not in stored["targets"][0]  # not funded by PP+: the amount is not asked, nor kept


def test_a_reveal_inside_each_target(epep, browser, council):
    sw, url = browser("sw@demo.test"), f"/tasks/{epep.id}/sections/6"
    html = sw.post(url, {"_do": "add:targets"}, page_url=url).get_data(as_text=True)
    assert 'data-aria-controls="conditional-f-targets-0-pp_plus_funded"' in html  # "Yes" reveals the amount
    posted = {
        "_do": "continue",
        "targets.0._item": "1",
        "targets.0.pp_plus_funded": "yes",
        "targets.1._item": "1",
        "targets.1.pp_plus_funded": "no",
        "targets.1.pp_plus_amount": "50",
    }
    html = sw.post(url, posted, page_url=url).get_data(as_text=True)
    assert "Target 1: enter Pupil Premium Plus (£)" in html
    assert "Target 2: enter Pupil Premium Plus" not in html
    assert "pp_plus_amount" in _draft(council).data["targets"][1]  # kept in the draft as typed; dropped when sent


def test_a_section_that_does_not_exist_is_not_found(epep, browser):
    sw = browser("sw@demo.test")
    assert sw.get(f"/tasks/{epep.id}/sections/8").status_code == 404
    assert sw.get(f"/tasks/{epep.id}/sections/0").status_code == 404
