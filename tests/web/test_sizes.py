"""How much one person can send: each answer, all the answers of one form, each file, and the files of a
day are bounded. What is too large is refused with a plain message, next to its field where it has one,
with what was typed kept on the page and nothing saved (no draft, no file, nothing in the history)."""

from __future__ import annotations

import io
import json
import re

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from engine import clock as clocks
from engine.deploy import deploy_changes, latest_bundle
from engine.history import events
from engine.models import Attachment, TaskDraft

from ..test_runtime import MEETING, complete, only_task, start_review
from .conftest import csrf_token
from .test_routes import date_fields

MB = 1024 * 1024


@pytest.fixture
def evidence_form(deployed_app, council, clock):
    """The meeting form asks for a file of evidence as well."""
    form = "forms/arrange_meeting.schema.json"
    with clocks.using(clock), council.begin() as s:
        schema = json.loads(latest_bundle(s).files[form])
        schema["properties"]["evidence"] = {"type": "string", "x-widget": "attachment", "title": "Evidence"}
        deploy_changes(s, {form: json.dumps(schema)}, "owner@demo.test")
    return deployed_app


def nothing_saved(council):
    with council() as s:
        assert s.scalars(select(TaskDraft)).all() == [] and s.scalars(select(Attachment)).all() == []
        assert [e.kind for e in events(s, "C001")].count("task_completed") == 0


def test_an_answer_too_long_is_refused_at_its_field_and_kept_on_the_page(deployed_app, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    venue = "Oak Primary " + "x" * 50_000
    response = browser("sw@demo.test").post(
        url, {"_do": "submit", "venue": venue, **date_fields("meeting_date", "2026-03-10")}, page_url=url
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Venue must be 50,000 characters or less" in html and 'href="#f-venue"' in html
    assert f'value="{venue}"' in html and 'value="10"' in html  # everything typed is still there
    nothing_saved(council)


def test_a_draft_too_large_is_not_saved(deployed_app, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    response = browser("sw@demo.test").post(url, {"_do": "save", "venue": "x" * 60_000}, page_url=url)
    assert response.status_code == 422 and "Venue must be 50,000 characters or less" in response.get_data(as_text=True)
    nothing_saved(council)


def test_answers_too_large_together_are_refused_for_the_whole_form(deployed_app, browser, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    url = f"/tasks/{only_task(council).id}"
    targets = {}
    for n in range(5):  # five targets of 45,000 characters: each may be that long, not all of them
        targets |= {
            f"targets.{n}._item": "1",
            f"targets.{n}.what": f"Target {n} " + "y" * 45_000,
            **date_fields(f"targets.{n}.by_when", "2026-05-29"),
        }
    response = browser("dt@demo.test").post(url, {"_do": "submit", "attendance_percent": "95", **targets}, page_url=url)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Your answers are too long to save (226 KB): one form can take up to 200 KB" in html
    assert "Target 4 yyy" in html
    with council() as s:
        assert [e.kind for e in events(s, "C001")].count("task_completed") == 1  # only the meeting's
        assert s.scalars(select(TaskDraft)).all() == []


def test_a_young_persons_link_refuses_an_answer_too_long_and_still_works(deployed_app, browser, engine, council, app):
    with council.begin() as s:
        engine.start(s, "test_views", "C001")
    created = browser("sw@demo.test").post(f"/tasks/{only_task(council).id}/link", page_url="/children/C001")
    url = re.search(r"<code>http://[^/]+(/l/[^<]+)</code>", created.get_data(as_text=True)).group(1)
    young_person = app.test_client()
    token = csrf_token(young_person.get(url).get_data(as_text=True))
    refused = young_person.post(url, data={"enjoy": "Art", "help_needed": "z" * 50_001, "csrf_token": token})
    assert refused.status_code == 422
    assert "What would help you? must be 50,000 characters or less" in refused.get_data(as_text=True)
    thanks = young_person.post(url, data={"enjoy": "Art", "help_needed": "A quiet place to read", "csrf_token": token})
    assert thanks.status_code == 200 and "Thank you" in thanks.get_data(as_text=True)


def test_a_reported_change_too_long_is_refused_at_its_field(deployed_app, browser, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", MEETING)
    url = "/children/C001/changes/meeting_rescheduled"
    response = browser("sw@demo.test").post(
        url, {**date_fields("meeting_date", "2026-03-24"), "reason": "r" * 50_001}, page_url=url
    )
    assert response.status_code == 422 and "must be 50,000 characters or less" in response.get_data(as_text=True)


def upload(person, url, content: bytes, name="ehcp.pdf", mimetype="application/pdf"):
    """Save the meeting form as a draft with a file, the request's body encoded beforehand (in memory)."""
    token = csrf_token(person.get(url).get_data(as_text=True))
    boundary, body = encode_multipart(
        MultiDict(
            {
                "_do": "save",
                "venue": "Oak Primary",
                "csrf_token": token,
                "evidence": FileStorage(io.BytesIO(content), name, content_type=mimetype),
            }
        )
    )
    return person.client.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def test_a_file_larger_than_10_mb_is_refused_at_its_field(evidence_form, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    response = upload(browser("sw@demo.test"), url, b"%PDF" + b"0" * (10 * MB))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "The selected file must be smaller than 10 MB" in html and 'value="Oak Primary"' in html
    nothing_saved(council)


def test_a_file_of_a_kind_not_allowed_or_empty_is_refused_at_its_field(evidence_form, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    sw = browser("sw@demo.test")
    refused = upload(sw, url, b"MZ...", name="setup.exe", mimetype="application/x-msdownload")
    assert refused.status_code == 422 and "The selected file must be a PDF" in refused.get_data(as_text=True)
    empty = upload(sw, url, b"")
    assert empty.status_code == 422 and "The selected file is empty" in empty.get_data(as_text=True)
    nothing_saved(council)


def test_a_form_and_files_larger_than_the_server_takes_get_a_plain_page(evidence_form, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    response = upload(browser("sw@demo.test"), url, b"%PDF" + b"0" * (13 * MB))
    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "File too large" in html and "A file can be up to 10 MB" in html and "nothing was saved" in html
    nothing_saved(council)


def test_a_person_uploads_no_more_than_their_daily_allowance(evidence_form, browser, engine, council, clock):
    evidence_form.config["UPLOAD_DAILY_BYTES"] = 5 * MB
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    sw = browser("sw@demo.test")
    assert upload(sw, url, b"%PDF" + b"1" * (3 * MB)).status_code == 302
    refused = upload(sw, url, b"%PDF" + b"2" * (3 * MB))
    assert refused.status_code == 422
    assert "You can upload up to 5 MB of files in a day" in refused.get_data(as_text=True)
    clock.advance(days=1)
    assert upload(browser("sw@demo.test"), url, b"%PDF" + b"2" * (3 * MB)).status_code == 302  # the next day
    with council() as s:
        assert len(s.scalars(select(Attachment.id)).all()) == 2
