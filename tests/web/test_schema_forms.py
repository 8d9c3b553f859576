"""Forms as the council's JSON Schema declares them, through the web pages: GOV.UK error messages with each
field's label, questions asked only for some answers, repeatable answers that may have none, amounts of
money, and a long form's sections with "Check your answers" before it is submitted."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.models import Event, TaskDraft, User
from webui.sample import sample_answers

from .conftest import shipped_form_task


@pytest.fixture
def epep(deployed_app, council, clock, engine):
    return shipped_form_task(council, clock, engine, "review_complete_epep")


@pytest.fixture
def ppg_meeting(deployed_app, council, clock, engine):
    return shipped_form_task(council, clock, engine, "ppg_arrange_meeting")


def test_errors_name_the_field_in_govuk_words(epep, browser):
    sw = browser("sw@demo.test")
    url = f"/tasks/{epep.id}"
    page = sw.post(
        url,
        {
            "_do": "check",
            "attendance_percent": "120",
            "sdq_score": "many",
            "meeting_date-day": "31",
            "meeting_date-month": "2",
            "meeting_date-year": "2026",
            "next_meeting_time": "2pm",
            "targets.0._item": "1",
            "targets.0.what": "Read",
            "targets.0.by_when-day": "4",
            "targets.0.by_when-year": "2026",
        },
        page_url=url,
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    for message in [
        "Enter the name of the person who chaired the meeting",  # the form's own x-error-required
        "Attendance this year (%) must be 100 or less",
        "Latest SDQ score must be a whole number",
        "Date the meeting was held must be a real date",
        "Next meeting time must be a time in hours and minutes, like 14:30",
        "Enter the child&#39;s or young person&#39;s views",
        "Enter academic needs",
        "Add at least 1 subject",  # attainment: its items are subjects
        "Target 1: enter strategies and support",
        "Target 1: select area",
        "Target 1: by when must be a real date",
        "Tick the box to confirm: Pupil Premium Plus spending follows the Virtual School policy",
        "Select targets shared with",
    ]:
        assert message in html, message
    assert "is required" not in html and "Item 1" not in html
    targets = f"{url}/sections/6"
    html = sw.post(
        targets,
        {
            "_do": "continue",
            "targets.0._item": "1",
            "targets.0.what": "Read",
            "targets.0.by_when-day": "4",
            "targets.0.by_when-year": "2026",
        },
        page_url=targets,
    ).get_data(as_text=True)
    assert 'href="#f-targets-0-by_when-month"' in html  # the box left empty, not the day typed
    html = sw.post(f"{url}/sections/3", {"_do": "continue"}, page_url=f"{url}/sections/3")
    assert html.status_code == 302  # none needed: a first PEP has no previous targets to review


def test_a_question_only_some_answers_ask_is_not_required_and_not_kept(ppg_meeting, browser, council, engine, clock):
    sw, url = browser("sw@demo.test"), f"/tasks/{ppg_meeting.id}"
    page = sw.get(url).get_data(as_text=True)
    assert 'data-aria-controls="conditional-f-carer_invited-2"' in page  # revealed by "No"
    with council() as s:
        answers = sample_answers(
            engine.task_form(s, ppg_meeting.id, "sw@demo.test")["form_schema"], engine.now().date()
        )
    form = {k: v for k, v in answers.items() if not isinstance(v, (bool, dict, list))}
    form.update({k: "yes" if v else "no" for k, v in answers.items() if isinstance(v, bool)})
    for key, value in answers.items():
        if isinstance(value, str) and len(value) == 10 and value[4] == "-":
            form.pop(key)
            form[f"{key}-year"], form[f"{key}-month"], form[f"{key}-day"] = value.split("-")
    refused = sw.post(url, {**form, "carer_invited": "no", "carer_not_invited_reason": ""}, page_url=url)
    assert refused.status_code == 422
    assert "Enter why the carer / parent is not invited" in refused.get_data(as_text=True)
    done = sw.post(
        url, {**form, "carer_invited": "yes", "carer_not_invited_reason": "Typed, then Yes chosen"}, page_url=url
    )
    assert done.status_code == 302, done.get_data(as_text=True)
    with council() as s:
        completed = s.scalars(select(Event).where(Event.kind == "task_completed")).all()[-1]
        assert completed.data["data"]["carer_invited"] is True
        assert "carer_not_invited_reason" not in completed.data["data"]


def test_a_long_form_is_checked_then_submitted_from_check_your_answers(epep, browser, council, engine):
    sw, url = browser("sw@demo.test"), f"/tasks/{epep.id}"
    page = sw.get(url).get_data(as_text=True)
    assert page.count('class="govuk-task-list__item govuk-task-list__item--with-link"') == 7
    with council.begin() as s:
        schema = engine.task_form(s, epep.id, "sw@demo.test")["form_schema"]
        answers = sample_answers(schema, engine.now().date())
        answers.update(
            meeting_date="2026-02-27",
            next_meeting_date="2026-04-20",
            moving_school=False,
            sen_status="None",
            pp_plus_spend=[{"item": "Tutoring", "amount": 1500.5, "linked_target": "Reading"}],
        )
        answers.pop("ehcp_attachment", None)
        answers.pop("other_attachments", None)
        answers["transition_plan"] = {"key_adult": "left over from a draft"}
        s.add(TaskDraft(task_id=epep.id, user_id=_user_id(s, "sw@demo.test"), data=answers, saved_at=engine.now()))
    check = sw.get(f"{url}/check")
    html = check.get_data(as_text=True)
    assert check.status_code == 200 and "Check your answers" in html
    assert "Targets and Pupil Premium Plus" in html and "£1,500.50" in html
    assert "left over from a draft" not in html  # not moving school: the transition plan is not asked
    done = sw.post(url, {"_do": "confirm"}, page_url=f"{url}/check")
    assert done.status_code == 302 and done.location.endswith("/inbox"), done.get_data(as_text=True)
    with council() as s:
        stored = s.scalars(select(Event).where(Event.kind == "task_completed")).all()[-1].data["data"]
        assert "transition_plan" not in stored and stored["pp_plus_spend"][0]["amount"] == 1500.5


def test_money_is_read_with_a_pound_sign_and_commas(epep, browser, council):
    sw, url = browser("sw@demo.test"), f"/tasks/{epep.id}"
    url = f"{url}/sections/6"
    sw.post(
        url,
        {
            "_do": "save",
            "pp_plus_spend.0._item": "1",
            "pp_plus_spend.0.amount": "£1,500",
            "targets.0._item": "1",
            "targets.0.pp_plus_funded": "yes",
            "targets.0.pp_plus_amount": "1,500.50",
        },
        page_url=url,
    )
    with council() as s:
        [draft] = s.scalars(select(TaskDraft)).all()
        assert draft.data["pp_plus_spend"][0]["amount"] == 1500 and draft.data["targets"][0]["pp_plus_amount"] == 1500.5
    page = sw.get(url).get_data(as_text=True)
    assert 'value="1,500.50"' in page and "govuk-input__prefix" in page


def test_items_are_named_by_the_form_and_added_without_javascript(epep, browser):
    sw, url = browser("sw@demo.test"), f"/tasks/{epep.id}/sections/6"
    page = sw.get(url).get_data(as_text=True)
    assert ">Add a target<" in page and ">Add a previous target<" in sw.get(f"/tasks/{epep.id}/sections/3").get_data(
        as_text=True
    )
    added = sw.post(url, {"_do": "add:targets"}, page_url=url).get_data(as_text=True)
    assert (
        ">Target 1<" in added
        and ">Add another target<" in added
        and 'Remove<span class="govuk-visually-hidden"> Target 1' in added
    )


def _user_id(session, email):
    return session.scalar(select(User.id).where(User.email == email))
