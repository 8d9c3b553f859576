"""Careless or hostile input gets a clear answer, never a server error, and changes nothing."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import Bundle, DeploymentRejected, deploy
from engine.models import AccessGrant, Attachment, Incident, TaskDraft, User
from engine.people import add_user
from engine.timers import fire_due_timers

from ..conftest import BASIC_BUNDLE, ROOT
from ..test_runtime import complete, only_task, open_tasks, start_review
from .conftest import PASSWORD_HASH, csrf_token, one_step_per_form


@pytest.fixture
def teacher_task(deployed_app, engine, council):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", {"meeting_date": "2026-03-10", "venue": "Oak"})
    return only_task(council)


@pytest.mark.parametrize(
    "posted",
    [
        {"_version": "abc"},
        {"_version": "9" * 40},
        {"_do": "add:no_such_field"},
        {"_do": "add:attendance_percent"},
        {"_do": "remove:targets.99999999999999999"},
        {"_do": "add:targets.0.what"},
    ],
)
def test_a_garbled_or_altered_task_page_is_answered_without_a_server_error(teacher_task, browser, posted):
    dt = browser("dt@demo.test")
    url = f"/tasks/{teacher_task.id}"
    response = dt.post(url, posted, page_url=url)
    assert response.status_code < 500, (posted, response.status_code)


def test_a_meeting_on_the_last_day_there_is_is_refused_with_the_form_and_nothing_runs(
    deployed_app, browser, engine, council
):
    start_review(engine, council)
    task = only_task(council)
    url = f"/tasks/{task.id}"
    refused = browser("sw@demo.test").post(
        url,
        {"meeting_date-day": "31", "meeting_date-month": "12", "meeting_date-year": "9999", "venue": "Oak"},
        page_url=url,
    )
    assert refused.status_code == 422 and "Meeting date must be between 1900 and 2199" in refused.get_data(as_text=True)
    with council() as s:
        assert s.scalars(select(Incident)).all() == [] and only_task(council).id == task.id


def test_a_year_longer_than_any_date_holds_is_shown_back_as_typed_with_its_error(
    deployed_app, browser, engine, council
):
    start_review(engine, council)
    url = f"/tasks/{only_task(council).id}"
    refused = browser("sw@demo.test").post(
        url,
        {"meeting_date-day": "1", "meeting_date-month": "3", "meeting_date-year": "9" * 30, "venue": "Oak"},
        page_url=url,
    )
    assert refused.status_code == 422 and "Meeting date must be a real date" in refused.get_data(as_text=True)
    assert 'value="999999999999999999999999999999"' in refused.get_data(as_text=True)


def test_chasing_a_late_pep_by_more_days_than_any_number_holds_is_refused_with_the_form(
    deployed_app, browser, engine, council
):
    start_review(engine, council)
    complete(engine, council, only_task(council), "sw@demo.test", {"meeting_date": "2026-02-02", "venue": "Oak"})
    fire_due_timers(engine, council)  # the PEP was due a month ago
    chase = next(t for t in open_tasks(council) if t.spec_id == "chase_late_pep")
    url = f"/tasks/{chase.id}"
    refused = browser("ea@demo.test").post(url, {"extra_days": "1e20"}, page_url=url)
    assert refused.status_code == 422
    assert "Working days to give the school must be 15 digits or fewer" in refused.get_data(as_text=True)
    with council() as s:
        assert s.get(TaskDraft, (chase.id, s.scalar(select(User.id).where(User.email == "ea@demo.test")))).data == {
            "extra_days": 1e20
        }  # kept as typed, to be corrected


def test_an_answer_holding_a_nul_character_is_refused_plainly_and_nothing_is_kept(teacher_task, browser, council):
    url = f"/tasks/{teacher_task.id}"
    for action in ("submit", "save", "add:targets"):
        refused = browser("dt@demo.test").post(
            url, {"attendance_percent": "90", "targets.0.what": "Read\x00", "_do": action}, page_url=url
        )
        assert refused.status_code == 400 and "not text (NUL)" in refused.get_data(as_text=True)
    with council() as s:
        assert s.scalars(select(TaskDraft)).all() == []


@pytest.mark.parametrize("url", ["/children/C001%00", "/children?q=Alex%00", "/inbox?child=%00", "/tasks/%00"])
def test_an_address_holding_a_nul_character_is_no_page(deployed_app, browser, url):
    refused = browser("sw@demo.test").get(url)
    assert refused.status_code == 400 and "not text (NUL)" in refused.get_data(as_text=True)


def test_signing_in_with_a_nul_character_is_refused_plainly(app, browser):
    person = browser()
    page = person.get("/sign-in").get_data(as_text=True)
    refused = person.client.post(
        "/sign-in", data={"email": "sw@demo.test\x00", "password": "x", "csrf_token": csrf_token(page)}
    )
    assert refused.status_code == 400 and "not text (NUL)" in refused.get_data(as_text=True)


@pytest.mark.parametrize("url", ["/inbox", "/tasks/any", "/sign-in"])
def test_a_form_field_whose_name_cannot_be_read_is_refused_plainly(deployed_app, browser, url):
    broken = b"--xyz\r\nContent-Disposition: form-data; name\r\n\r\nvalue\r\n--xyz--\r\n"  # no browser sends this
    refused = browser("sw@demo.test").client.post(url, data=broken, content_type="multipart/form-data; boundary=xyz")
    assert refused.status_code == 400 and "cannot be read" in refused.get_data(as_text=True)


@pytest.fixture
def pep_to_send(app, council, clock, engine):
    """The first child's Social Worker is to attach the PEP and confirm it is sent (a shipped form)."""
    form = "allages_send_to_sw.schema.json"
    bundle = Bundle(
        {
            f"forms/{form}": (ROOT / "forms" / form).read_text(encoding="utf-8"),
            "processes/send.bpmn": one_step_per_form([form]),
        }
    )
    with clocks.using(clock), council.begin() as s:
        deploy(s, bundle, actor="owner@demo.test")
        engine.start(s, "form_allages_send_to_sw", "C001", actor="sw@demo.test")
    return only_task(council)


def test_a_file_sent_with_answers_that_are_refused_is_kept_and_the_draft_names_it(pep_to_send, browser, council):
    url = f"/tasks/{pep_to_send.id}"
    refused = browser("sw@demo.test").post(
        url,
        {"pep_document": (io.BytesIO(b"%PDF"), "pep.pdf", "application/pdf")},
        page_url=url,
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    assert "Select the file again" not in refused.get_data(as_text=True) and ">pep.pdf</a>" in refused.get_data(
        as_text=True
    )
    with council() as s:
        [kept] = s.scalars(select(Attachment)).all()
        assert kept.child_id == "C001" and kept.content == b"%PDF"
        assert s.scalars(select(TaskDraft.data)).all() == [{"pep_document": kept.id}]  # a file that exists


def test_a_page_altered_to_name_another_childs_file_attaches_nothing(pep_to_send, browser, council, engine):
    with council.begin() as s:
        s.add(
            Attachment(
                id="c" * 36,
                child_id="C002",
                filename="Blair's EHCP.pdf",
                content_type="application/pdf",
                size=4,
                sha256="x",
                content=b"%PDF",
                uploaded_by="sw@demo.test",
                uploaded_at=engine.now(),
            )
        )
    url = f"/tasks/{pep_to_send.id}"
    page = browser("sw@demo.test").post(url, {"pep_document": "c" * 36, "_do": "save"}, page_url=url)
    assert page.status_code == 302
    with council() as s:
        assert s.scalars(select(TaskDraft.data)).all() == [{}]
    assert "Blair" not in browser("sw@demo.test").get(url).get_data(as_text=True)


def test_a_search_longer_than_any_name_is_refused_plainly(deployed_app, browser):
    sw = browser("sw@demo.test")
    for url in ("/children?q=" + "a" * 60_000, "/inbox?child=" + "b" * 60_000, "/audit?person=" + "c" * 60_000):
        response = sw.get(url)
        assert response.status_code == 400 and "too long" in response.get_data(as_text=True), url


def test_an_attachment_named_with_a_line_break_can_still_be_downloaded(deployed_app, browser, council, engine):
    with council.begin() as s:
        s.add(
            Attachment(
                id="b" * 36,
                child_id="C001",
                filename='report\r\nSet-Cookie: x=1".pdf',
                content_type="application/pdf",
                size=4,
                sha256="x",
                content=b"%PDF",
                uploaded_by="sw@demo.test",
                uploaded_at=engine.now(),
            )
        )
    download = browser("sw@demo.test").get("/attachments/" + "b" * 36)
    assert download.status_code == 200 and download.data == b"%PDF"
    assert "Set-Cookie" not in download.headers or "x=1" not in download.headers.get("Set-Cookie", "")
    assert download.headers["Content-Disposition"].startswith('attachment; filename="report__Set-Cookie: x=1_.pdf"')


def test_the_last_day_there_is_is_no_server_error_in_audit_filters_or_grants(deployed_app, browser, council, clock):
    with clocks.using(clock), council.begin() as s:
        add_user(s, "auditor@demo.test", "Aud Inspector", roles=["Auditor"], password_hash=PASSWORD_HASH)
    admin = browser("admin@demo.test")
    assert admin.get("/audit/children/C001?from=9999-12-31&to=9999-12-31").status_code == 200
    refused = admin.post(
        "/admin/grants",
        {
            "auditor": "auditor@demo.test",
            "scope": "all",
            "reason": "Inspection",
            "expires-day": "31",
            "expires-month": "12",
            "expires-year": "9999",
        },
        page_url="/admin/grants",
    )
    assert refused.status_code == 422 and "Last day of access must be between" in refused.get_data(as_text=True)
    with council() as s:
        assert s.scalars(select(AccessGrant)).all() == []


def test_ids_and_versions_too_large_for_the_database_are_no_page(deployed_app, browser, council, clock):
    with clocks.using(clock), council.begin() as s:
        add_user(s, "owner@demo.test", "Olu Owner", roles=["Process Owner"], password_hash=PASSWORD_HASH)
    owner = browser("owner@demo.test")
    assert owner.get("/processes/test_review/diff?a=1&b=" + "9" * 30).status_code == 200
    assert owner.get("/processes/test_review/versions/" + "9" * 30 + "/download").status_code == 404
    assert browser("sw@demo.test").get("/children/C001/peps/" + "9" * 30).status_code == 404


def test_the_modeller_answers_deeply_nested_or_broken_json_plainly(deployed_app, browser, council, clock):
    with clocks.using(clock), council.begin() as s:
        add_user(s, "owner@demo.test", "Olu Owner", roles=["Process Owner"], password_hash=PASSWORD_HASH)
    owner = browser("owner@demo.test")
    token = csrf_token(owner.get("/processes/forms/new").get_data(as_text=True))
    for body in (
        "[" * 100_000 + "]" * 100_000,
        "{not json",
        "[1, 2]",
        '{"xml": "<x/>", "version": ' + "9" * 5000 + "}",
    ):
        response = owner.client.post(
            "/processes/test_review/check", data=body, content_type="application/json", headers={"X-CSRFToken": token}
        )
        assert response.status_code in (400, 422), (body[:20], response.status_code)


def test_a_diagram_in_an_unknown_encoding_is_refused_with_its_file_and_line(council, clock):
    bundle = Bundle.from_dirs(BASIC_BUNDLE)
    path = "processes/views.bpmn"
    bundle.files[path] = bundle.files[path].replace('encoding="UTF-8"', 'encoding="x-no-such-encoding"', 1)
    with pytest.raises(DeploymentRejected) as caught, clocks.using(clock), council.begin() as s:
        deploy(s, bundle, actor="owner@demo.test")
    (error,) = caught.value.errors
    assert (error.file, error.line) == (path, 1) and "save it as UTF-8" in error.message
