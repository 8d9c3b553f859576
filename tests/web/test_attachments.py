"""Files attached to a task: every file a person attaches, in any field, is kept with the child's record,
listed on the child's page and in the PEP, downloadable by those who see the child, removable before the
answers are submitted, and kept with the draft when the answers are refused. No answer ever names a file
that does not exist or is another child's."""

from __future__ import annotations

import io
import json
import re
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, event, select

from engine import clock as clocks
from engine.attachments import remove_from_draft, store
from engine.deploy import deploy_changes, latest_bundle
from engine.errors import FormInvalid
from engine.history import events
from engine.models import Attachment, Instance, TaskDraft

from ..test_runtime import MEETING, complete, only_task, start_review
from .conftest import csrf_token
from .test_routes import date_fields

FILES = {
    "evidence": {"type": "string", "x-widget": "attachment", "title": "Evidence"},
    "documents": {
        "type": "array",
        "title": "Other documents",
        "items": {"type": "string", "title": "Document", "x-widget": "attachment"},
    },
    "ehcp": {
        "type": "object",
        "title": "EHCP",
        "properties": {
            "file": {"type": "string", "x-widget": "attachment", "title": "The EHCP"},
            "note": {"type": "string", "title": "Note"},
        },
    },
    "reports": {
        "type": "array",
        "title": "Reports",
        "items": {
            "type": "object",
            "title": "Report",
            "properties": {
                "title": {"type": "string", "title": "Title"},
                "file": {"type": "string", "x-widget": "attachment", "title": "File"},
            },
        },
    },
}


@pytest.fixture
def files_form(deployed_app, council, clock):
    """The meeting form asks for files: one alone, a list of them, one in a group, one in each report."""
    form = "forms/arrange_meeting.schema.json"
    with clocks.using(clock), council.begin() as s:
        schema = json.loads(latest_bundle(s).files[form])
        schema["properties"].update(FILES)
        deploy_changes(s, {form: json.dumps(schema)}, "owner@demo.test")
    return deployed_app


def pdf(name: str, content: bytes = b"%PDF-1.4 synthetic"):
    return (io.BytesIO(content), name, "application/pdf")


def post(person, url, data):
    """Post the task page's form (multipart, as a browser does when the form has file fields)."""
    token = csrf_token(person.get(url).get_data(as_text=True))
    return person.client.post(url, data={**data, "csrf_token": token}, content_type="multipart/form-data")


def completed_data(council, child_id="C001") -> dict:
    with council() as s:
        return [e for e in events(s, child_id) if e.kind == "task_completed"][-1].data["data"]


def stored(council) -> dict[str, Attachment]:
    with council() as s:
        return {a.filename: a for a in s.scalars(select(Attachment))}


def test_a_file_in_every_kind_of_field_is_kept_listed_and_downloadable(files_form, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    sw = browser("sw@demo.test")
    done = post(
        sw,
        url,
        {
            "_do": "submit",
            "venue": "Oak Primary",
            **date_fields("meeting_date", "2026-03-10"),
            "evidence": pdf("evidence.pdf"),
            "documents.0": pdf("school-report.pdf"),
            "documents.1": pdf("<b>sdq</b>.pdf"),
            "ehcp.file": pdf("ehcp.pdf"),
            "reports.0._item": "1",
            "reports.0.title": "Speech",
            "reports.0.file": pdf("salt.pdf"),
        },
    )
    assert done.status_code == 302
    files = stored(council)
    assert set(files) == {"evidence.pdf", "school-report.pdf", "<b>sdq</b>.pdf", "ehcp.pdf", "salt.pdf"}
    data = completed_data(council)
    assert data["evidence"] == files["evidence.pdf"].id
    assert data["documents"] == [files["school-report.pdf"].id, files["<b>sdq</b>.pdf"].id]
    assert data["ehcp"]["file"] == files["ehcp.pdf"].id and data["reports"][0]["file"] == files["salt.pdf"].id

    child_page = sw.get("/children/C001").get_data(as_text=True)
    listed = re.search(r'<ul class="govuk-list" id="attachments">(.*?)</ul>', child_page, re.S).group(1)
    for name in ("evidence.pdf", "school-report.pdf", "ehcp.pdf", "salt.pdf"):
        assert f">{name}</a>" in listed and f"/attachments/{files[name].id}" in listed
    assert "&lt;b&gt;sdq&lt;/b&gt;.pdf" in listed and "<b>sdq" not in child_page  # a file name is text, never markup
    assert "Arrange the PEP meeting" in listed and "not submitted yet" not in listed

    with council() as s:
        instance_id = s.scalar(select(Instance.id))
    pep = sw.get(f"/children/C001/peps/{instance_id}").get_data(as_text=True)
    assert all(f"/attachments/{a.id}" in pep for a in files.values()) and "<b>sdq" not in pep
    assert sw.get(f"/children/C001/peps/{instance_id}.pdf").status_code == 200

    download = sw.get(f"/attachments/{files['school-report.pdf'].id}")
    assert download.status_code == 200 and download.data == b"%PDF-1.4 synthetic"
    assert browser("other.dt@demo.test").get(f"/attachments/{files['salt.pdf'].id}").status_code == 404
    with council() as s:
        looks = [e.data for e in events(s, "C001") if e.kind == "record_viewed" and e.data["page"] == "attachment"]
    assert looks == [{"page": "attachment", "attachment": "school-report.pdf"}]


def test_add_a_document_then_choose_the_file_and_submit(files_form, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    sw = browser("sw@demo.test")
    added = post(sw, url, {"_do": "add:documents", "venue": "Oak Primary"})
    assert 'type="file"' in added.get_data(as_text=True) and 'name="documents.0"' in added.get_data(as_text=True)
    done = post(
        sw,
        url,
        {
            "_do": "submit",
            "venue": "Oak Primary",
            **date_fields("meeting_date", "2026-03-10"),
            "documents.0": pdf("school-report.pdf"),
        },
    )
    assert done.status_code == 302
    assert completed_data(council)["documents"] == [stored(council)["school-report.pdf"].id]


def test_a_refused_submission_keeps_its_files_with_the_draft(files_form, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    sw = browser("sw@demo.test")
    refused = post(
        sw,
        url,
        {
            "_do": "submit",
            "venue": "Oak Primary",  # no meeting date: refused
            "evidence": pdf("evidence.pdf"),
            "documents.0": pdf("school-report.pdf"),
        },
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Enter meeting date" in html
    assert "Select the file again" not in html and ">evidence.pdf</a>" in html and ">school-report.pdf</a>" in html
    files = stored(council)
    with council() as s:
        draft = s.scalars(select(TaskDraft)).one()
    assert draft.data["evidence"] == files["evidence.pdf"].id
    assert draft.data["documents"] == [files["school-report.pdf"].id]

    # the next submission sends the files the page holds, without choosing them again
    done = post(
        sw,
        url,
        {
            "_do": "submit",
            "venue": "Oak Primary",
            **date_fields("meeting_date", "2026-03-10"),
            "evidence": files["evidence.pdf"].id,
            "documents.0": files["school-report.pdf"].id,
        },
    )
    assert done.status_code == 302
    data = completed_data(council)
    assert data["evidence"] == files["evidence.pdf"].id and data["documents"] == [files["school-report.pdf"].id]


def test_a_file_can_be_removed_before_the_answers_are_submitted(files_form, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    sw = browser("sw@demo.test")
    assert post(sw, url, {"_do": "save", "venue": "Oak Primary", "evidence": pdf("wrong-child.pdf")}).status_code == 302
    file = stored(council)["wrong-child.pdf"]
    page = sw.get(url).get_data(as_text=True)
    assert 'value="detach:evidence"' in page and 'Remove<span class="govuk-visually-hidden"> wrong-child.pdf' in page

    removed = post(sw, url, {"_do": "detach:evidence", "venue": "Oak Primary", "evidence": file.id})
    assert removed.status_code == 200 and "wrong-child.pdf" not in removed.get_data(as_text=True)
    with council() as s:
        assert s.scalars(select(TaskDraft)).one().data == {"venue": "Oak Primary"}
        gone = s.get(Attachment, file.id)
        assert gone.removed_at is not None and gone.content == b""  # the row stays: the day's allowance counts it
    assert "wrong-child.pdf" not in sw.get("/children/C001").get_data(as_text=True)
    assert sw.get(f"/attachments/{file.id}").status_code == 404

    # a removed file cannot be sent back in by an altered page
    done = post(
        sw,
        url,
        {"_do": "submit", "venue": "Oak Primary", **date_fields("meeting_date", "2026-03-10"), "evidence": file.id},
    )
    assert done.status_code == 302 and "evidence" not in completed_data(council)


def test_a_file_replaced_or_in_a_removed_item_goes_and_a_submitted_one_stays(files_form, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    sw = browser("sw@demo.test")
    post(sw, url, {"_do": "save", "venue": "Oak Primary", "evidence": pdf("old.pdf"), "documents.0": pdf("draft.pdf")})
    files = stored(council)
    post(
        sw,
        url,
        {
            "_do": "remove:documents.0",
            "venue": "Oak Primary",
            "evidence": files["old.pdf"].id,
            "documents.0": files["draft.pdf"].id,
        },
    )
    post(
        sw,
        url,
        {
            "_do": "submit",
            "venue": "Oak Primary",
            **date_fields("meeting_date", "2026-03-10"),
            "evidence": pdf("new.pdf"),
        },
    )
    files = stored(council)
    assert files["old.pdf"].removed_at is not None and files["draft.pdf"].removed_at is not None
    assert completed_data(council)["evidence"] == files["new.pdf"].id
    with council.begin() as s:  # what an answer submitted is never removed: the history goes on naming it
        assert remove_from_draft(s, "C001", {files["new.pdf"].id}, "sw@demo.test", engine.now()) == []
        assert s.get(Attachment, files["new.pdf"].id).removed_at is None


def test_the_engine_refuses_answers_naming_a_file_that_is_missing_removed_or_another_childs(
    files_form, engine, council
):
    start_review(engine, council)
    task = only_task(council)
    with council.begin() as s:
        theirs = store(s, "C002", "theirs.pdf", "application/pdf", b"%PDF", "sw@demo.test", engine.now()).id
        removed = store(s, "C001", "removed.pdf", "application/pdf", b"%PDF", "sw@demo.test", engine.now())
        removed.removed_at = engine.now()
        mine = store(s, "C001", "mine.pdf", "application/pdf", b"%PDF", "sw@demo.test", engine.now()).id
    for answers, path in [
        ({"evidence": theirs}, "evidence"),
        ({"documents": [mine, "no-such-file"]}, "documents.1"),
        ({"ehcp": {"file": removed.id}}, "ehcp.file"),
        ({"reports": [{"title": "x", "file": theirs}]}, "reports.0.file"),
    ]:
        with pytest.raises(FormInvalid) as refused:
            complete(engine, council, task, "sw@demo.test", {**MEETING, **answers})
        assert refused.value.errors == {path: "The selected file could not be found. Select the file again"}
    complete(engine, council, task, "sw@demo.test", {**MEETING, "evidence": mine, "documents": [mine]})


def test_a_page_naming_another_childs_file_does_not_get_it_into_the_answers(files_form, browser, engine, council):
    start_review(engine, council)
    with council.begin() as s:
        theirs = store(s, "C002", "theirs.pdf", "application/pdf", b"%PDF", "sw@demo.test", engine.now()).id
    url = f"/tasks/{only_task(council).id}"
    done = post(
        browser("sw@demo.test"),
        url,
        {
            "_do": "submit",
            **{k: v for k, v in MEETING.items() if k == "venue"},
            **date_fields("meeting_date", "2026-03-10"),
            "evidence": theirs,
            "documents.0": theirs,
            "ehcp.file": theirs,
        },
    )
    assert done.status_code == 302
    assert not {"evidence", "documents", "ehcp"} & set(completed_data(council))


@pytest.fixture
def views_with_a_file(deployed_app, council, clock):
    """The young person's views (a single-use link's form) take a drawing too."""
    form = "forms/views.schema.json"
    with clocks.using(clock), council.begin() as s:
        schema = json.loads(latest_bundle(s).files[form])
        schema["properties"]["drawing"] = {"type": "string", "x-widget": "attachment", "title": "A drawing"}
        deploy_changes(s, {form: json.dumps(schema)}, "owner@demo.test")
    return deployed_app


def test_a_file_sent_through_a_single_use_link_is_kept_even_when_the_answers_are_refused(
    views_with_a_file, browser, engine, council, app
):
    with council.begin() as s:
        engine.start(s, "test_views", "C001")
    task = only_task(council)
    created = browser("sw@demo.test").post(f"/tasks/{task.id}/link", page_url="/children/C001").get_data(as_text=True)
    url = re.search(r"<code>http://[^/]+(/l/[^<]+)</code>", created).group(1)
    anonymous = app.test_client()
    page = anonymous.get(url).get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page
    token = csrf_token(page)
    refused = anonymous.post(
        url,
        data={"enjoy": "Art", "drawing": (io.BytesIO(b"\x89PNG"), "me.png", "image/png"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "me.png" in html and "/attachments/" not in html  # no link to sign in for
    drawing = stored(council)["me.png"]
    thanks = anonymous.post(
        url,
        data={"enjoy": "Art", "help_needed": "Quiet", "drawing": drawing.id, "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert thanks.status_code == 200
    assert completed_data(council)["drawing"] == drawing.id and drawing.uploaded_by == "yp@demo.test"


@contextmanager
def statements():
    """The SQL statements run meanwhile, as sent to the database."""
    ran: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        ran.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield ran
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


def test_a_submission_asks_once_whether_the_person_may_do_the_task(files_form, browser, engine, council):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    sw = browser("sw@demo.test")
    token = csrf_token(sw.get(url).get_data(as_text=True))
    answers = {"venue": "Oak Primary", **date_fields("meeting_date", "2026-03-10"), "evidence": pdf("evidence.pdf")}
    with statements() as ran:
        done = sw.client.post(url, data={**answers, "csrf_token": token}, content_type="multipart/form-data")
    assert done.status_code == 302
    assert len([statement for statement in ran if "actor_roles" in statement]) == 1  # the engine's locked read
    assert completed_data(council)["evidence"] == stored(council)["evidence.pdf"].id


def test_a_file_chosen_with_answers_the_diagrams_rule_refuses_is_kept_with_the_draft(
    files_form, browser, engine, council
):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    sw = browser("sw@demo.test")
    good_friday = {"venue": "Oak Primary", **date_fields("meeting_date", "2026-04-03")}
    refused = post(sw, url, {"_do": "submit", **good_friday, "evidence": pdf("evidence.pdf")})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "Choose a working day" in html and ">evidence.pdf</a>" in html
    [kept] = stored(council).values()
    with council() as s:
        assert s.scalars(select(TaskDraft)).one().data["evidence"] == kept.id
    assert kept.content == b"%PDF-1.4 synthetic" and kept.removed_at is None
