"""The process owners' modeller and forms editor, route by route: only process owners get in, every save
is validated like a deployment, a valid one is the next version, and nobody's later change is overwritten."""

from __future__ import annotations

import json
import re
from html import unescape

import pytest
from sqlalchemy import func, select

from engine.deploy import deploy_changes, file_name_problem
from engine.errors import NotFound
from engine.models import Deployment, Instance
from engine.people import add_user

from ..test_runtime import start_review
from .conftest import PASSWORD_HASH, csrf_token

OWNER = "owner@demo.test"
REVIEW = "processes/review.bpmn"


@pytest.fixture
def owner(deployed_app, council, browser):
    """A signed-in process owner, with the basic bundle deployed as version 1."""
    with council.begin() as s:
        add_user(s, OWNER, "Olu Owner", roles=["Process Owner"], password_hash=PASSWORD_HASH)
    person = browser(OWNER)
    person.token = csrf_token(person.get("/processes/forms/new").get_data(as_text=True))
    return person


def review_xml(council, version: int | None = None) -> str:
    with council() as s:
        query = select(Deployment).order_by(Deployment.version.desc())
        deployment = s.scalars(query.where(Deployment.version == version) if version else query).first()
        return next(f.content for f in deployment.files if f.path == REVIEW)


def post_json(person, url: str, body: dict):
    return person.client.post(url, json=body, headers={"X-CSRFToken": person.token})


def versions(council) -> int:
    with council() as s:
        return s.scalar(select(func.max(Deployment.version)))


# ---- who may use it ---------------------------------------------------------------------------


def test_only_process_owners_reach_the_modeller_and_its_json_endpoints(owner, browser, council):
    pages = [
        "/processes",
        "/processes/test_review/edit",
        "/processes/test_review/diagram.json",
        "/processes/vocabulary.json",
        "/processes/forms",
        "/processes/forms/qa.schema.json",
        "/processes/forms/qa.schema.json/edit",
        "/processes/forms/new",
    ]
    for url in pages:
        assert owner.get(url).status_code == 200, url
    for email in ("sw@demo.test", "admin@demo.test", "ea@demo.test"):
        person = browser(email)
        for url in pages:
            assert person.get(url).status_code == 403, (email, url)
        token = csrf_token(person.get("/inbox").get_data(as_text=True))
        for url in ("/processes/test_review/check", "/processes/test_review/deploy"):
            response = person.client.post(url, json={"xml": "<x/>", "version": 1}, headers={"X-CSRFToken": token})
            assert response.status_code == 403, (email, url)
    assert versions(council) == 1


def test_process_owners_find_processes_in_the_navigation(owner, browser):
    assert 'href="/processes"' in owner.get("/inbox").get_data(as_text=True)
    assert 'href="/processes"' not in browser("sw@demo.test").get("/inbox").get_data(as_text=True)


def test_a_save_without_the_csrf_header_is_refused(owner):
    response = owner.client.post("/processes/test_review/check", json={"xml": "<x/>", "version": 1})
    assert response.status_code == 400


# ---- the processes and the editor's data ------------------------------------------------------


def test_the_processes_page_lists_each_deployed_process_with_who_changed_it_last(owner):
    page = owner.get("/processes").get_data(as_text=True)
    assert "Test termly review" in page and "test_review" in page
    assert "Version 1, by owner@demo.test" in page
    assert 'href="/processes/test_review/edit"' in page


def test_the_editor_opens_the_newest_diagram_with_its_version(owner, council):
    diagram = owner.get("/processes/test_review/diagram.json").get_json()
    assert diagram == {"process_id": "test_review", "file": REVIEW, "version": 1, "xml": review_xml(council)}
    assert owner.get("/processes/no_such_process/edit").status_code == 404


def test_the_vocabulary_has_roles_forms_messages_and_calendar_functions(owner):
    vocabulary = owner.get("/processes/vocabulary.json").get_json()
    social_worker = next(r for r in vocabulary["roles"] if r["key"] == "social_worker")
    assert social_worker["label"] == "Social Worker" and "SW" in social_worker["aliases"]
    assert "qa.schema.json" in vocabulary["forms"]
    assert {"meeting_rescheduled", "child_leaves_care"} <= set(vocabulary["messages"])
    working_days = next(f for f in vocabulary["functions"] if f["name"] == "working_days")
    assert working_days["signature"] == "working_days(n, start)" and "working days after" in working_days["help"]


# ---- check and deploy -------------------------------------------------------------------------


def test_check_names_the_element_of_each_error(owner, council):
    xml = review_xml(council).replace('name="Designated Teacher"', 'name="Head Teacher"')
    xml = xml.replace(">working_days(-2, pep_due)<", ">working_days(-2, pep_due<")
    response = post_json(owner, "/processes/test_review/check", {"xml": xml, "version": 1})
    assert response.status_code == 422
    errors = {e["element"]: e for e in response.get_json()["errors"]}
    assert set(errors) == {"lane_dt", "reminder"}
    assert 'lane "Head Teacher" is not a known role' in errors["lane_dt"]["message"]
    assert errors["reminder"]["file"] == REVIEW and errors["reminder"]["message"].startswith("timeDate")
    assert versions(council) == 1


def test_check_of_a_valid_diagram_stores_nothing(owner, council):
    response = post_json(owner, "/processes/test_review/check", {"xml": review_xml(council), "version": 1})
    assert response.status_code == 200 and response.get_json()["ok"] is True
    assert versions(council) == 1


def test_a_deploy_becomes_the_next_version_and_running_peps_keep_theirs(owner, council, engine):
    running = start_review(engine, council)
    xml = review_xml(council).replace('name="Arrange the PEP meeting"', 'name="Arrange the review meeting"')
    response = post_json(owner, "/processes/test_review/deploy", {"xml": xml, "version": 1, "note": ""})
    assert response.status_code == 200 and response.get_json()["version"] == 2
    with council() as s:
        newest = s.scalars(select(Deployment).where(Deployment.version == 2)).one()
        assert (newest.created_by, newest.note) == (OWNER, "Changed review.bpmn in the modeller")
        assert s.get(Instance, running).definition.deployment.version == 1
    assert review_xml(council, 2) == xml
    started = start_review(engine, council, "C002")
    with council() as s:
        assert s.get(Instance, started).definition.deployment.version == 2


def test_the_owners_note_is_kept_with_the_version(owner, council):
    xml = review_xml(council).replace('name="Rating?"', 'name="What rating?"')
    post_json(owner, "/processes/test_review/deploy", {"xml": xml, "version": 1, "note": "Clearer gateway name"})
    with council() as s:
        assert s.scalar(select(Deployment.note).where(Deployment.version == 2)) == "Clearer gateway name"


def test_a_note_holding_a_nul_character_is_refused_and_nothing_is_deployed(owner, council):
    xml = review_xml(council).replace('name="Rating?"', 'name="What rating?"')
    response = post_json(owner, "/processes/test_review/deploy", {"xml": xml, "version": 1, "note": "Fixed\x00"})
    assert response.status_code == 400 and "not text" in response.get_json()["message"]
    assert versions(council) == 1  # PostgreSQL could not have stored the note: a server error, before


@pytest.mark.parametrize("route", ["check", "deploy"])
def test_a_diagram_holding_half_a_character_is_refused_plainly(owner, council, route):
    body = '{"xml": "<bpmn:definitions>\\ud800</bpmn:definitions>", "version": 1}'  # a lone surrogate, escaped
    response = owner.client.post(
        f"/processes/test_review/{route}",
        data=body,
        content_type="application/json",
        headers={"X-CSRFToken": owner.token},
    )
    assert response.status_code == 400 and "not text" in response.get_json()["message"]
    assert versions(council) == 1


@pytest.mark.parametrize("version", [10**30, 0, -1, 1.5, "1"])
def test_a_save_from_a_version_there_cannot_be_is_refused_plainly(owner, council, version):
    xml = review_xml(council).replace('name="Rating?"', 'name="What rating?"')
    response = post_json(owner, "/processes/test_review/deploy", {"xml": xml, "version": version})
    assert response.status_code == 400 and "version" in response.get_json()["message"]  # 10**30: a server error
    assert versions(council) == 1  # on PostgreSQL, before


def test_an_invalid_deploy_stores_nothing_and_says_why(owner, council):
    xml = review_xml(council).replace('value="qa.schema.json"', 'value="missing.schema.json"')
    response = post_json(owner, "/processes/test_review/deploy", {"xml": xml, "version": 1})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["element"] == "qa"
    assert versions(council) == 1


def test_a_deploy_over_someone_elses_later_change_is_refused(owner, council):
    with council.begin() as s:
        deploy_changes(
            s, {REVIEW: review_xml(council).replace('name="Rating?"', 'name="QA rating?"')}, "other@demo.test"
        )
    xml = review_xml(council, 1).replace('name="Review due"', 'name="Termly review due"')
    response = post_json(owner, "/processes/test_review/deploy", {"xml": xml, "version": 1})
    assert response.status_code == 409
    assert "reload the page" in response.get_json()["message"]
    assert versions(council) == 2


def test_a_change_to_another_file_since_opening_does_not_block_a_deploy(owner, council):
    with council.begin() as s:
        deploy_changes(s, {"forms/extra.schema.json": '{"type": "object", "properties": {}}'}, "other@demo.test")
    xml = review_xml(council, 1).replace('name="Review due"', 'name="Termly review due"')
    response = post_json(owner, "/processes/test_review/deploy", {"xml": xml, "version": 1})
    assert response.status_code == 200 and response.get_json()["version"] == 3


def test_a_malformed_save_is_refused_with_its_reason(owner):
    response = post_json(owner, "/processes/test_review/check", {"version": "one"})
    assert response.status_code == 400
    assert "xml" in response.get_json()["message"] and response.get_json()["ok"] is False


# ---- deleting a diagram: an explicit retirement -------------------------------------------------


def test_deleting_a_diagram_must_be_confirmed_and_retires_its_process(owner, council, engine):
    listing = owner.get("/processes").get_data(as_text=True)
    assert 'href="/processes/test_views/delete"' in listing
    page = owner.get("/processes/test_views/delete").get_data(as_text=True)
    retiring = re.search(r'id="retiring">(.*?)</ul>', page, re.S).group(1)
    assert "Test student views" in retiring and "new PEPs can no longer start it" in retiring

    unconfirmed = owner.post("/processes/test_views/delete", {"version": 1}, page_url="/processes/test_views/delete")
    assert unconfirmed.status_code == 400 and "Confirm that views.bpmn is to be deleted" in unconfirmed.get_data(
        as_text=True
    )
    assert versions(council) == 1

    confirmed = owner.post(
        "/processes/test_views/delete",
        {"version": 1, "confirm": "yes", "note": "Views move into the review"},
        page_url="/processes/test_views/delete",
    )
    assert confirmed.status_code == 302 and confirmed.location.endswith("/processes")
    with council() as s:
        newest = s.scalar(select(Deployment).where(Deployment.version == 2))
        assert (newest.retired, newest.note, newest.file("processes/views.bpmn")) == (
            ["test_views"],
            "Views move into the review",
            None,
        )
        with pytest.raises(NotFound, match="retired in version 2"):
            engine.start(s, "test_views", "C001")
    listing = owner.get("/processes").get_data(as_text=True)
    assert 'href="/processes/test_views/edit"' not in listing
    retired = re.search(r'id="retired-processes">(.*?)</ul>', listing, re.S).group(1)
    assert "test_views, retired in version 2" in retired and 'href="/processes/test_views/versions"' in retired
    assert owner.get("/processes/test_views/delete").status_code == 404


def test_a_diagram_that_holds_several_processes_is_deleted_with_all_of_them(owner, council):
    page = owner.get("/processes/test_cycle/delete").get_data(as_text=True)
    retiring = re.search(r'id="retiring">(.*?)</ul>', page, re.S).group(1)
    assert all(pid in retiring for pid in ("test_cycle", "test_fragile", "test_initial_meeting", "test_window"))
    assert "review_due" in retiring  # the message that starts test_cycle, and will not
    owner.post(
        "/processes/test_cycle/delete", {"version": 1, "confirm": "yes"}, page_url="/processes/test_cycle/delete"
    )
    with council() as s:
        newest = s.scalar(select(Deployment).where(Deployment.version == 2))
        assert newest.retired == ["test_cycle", "test_fragile", "test_initial_meeting", "test_window"]
        assert newest.note == (
            "Deleted deadlines.bpmn in the modeller, retiring test_cycle, test_fragile, "
            "test_initial_meeting, test_window"
        )


def test_only_process_owners_delete_a_diagram(owner, council, browser):
    social_worker = browser("sw@demo.test")
    assert social_worker.get("/processes/test_views/delete").status_code == 403
    assert social_worker.post("/processes/test_views/delete", {"version": 1, "confirm": "yes"}).status_code == 403
    assert versions(council) == 1


# ---- forms ------------------------------------------------------------------------------------


def test_the_forms_are_listed_and_shown_as_people_see_them(owner):
    listing = owner.get("/processes/forms").get_data(as_text=True)
    assert 'href="/processes/forms/qa.schema.json"' in listing
    page = owner.get("/processes/forms/qa.schema.json").get_data(as_text=True)
    assert "QA rating" in page and 'name="rating"' in page
    assert owner.get("/processes/forms/nothing.schema.json").status_code == 404


def preview(owner, content: str) -> str:
    return owner.client.post("/processes/forms/preview", data={"content": content, "csrf_token": owner.token}).get_data(
        as_text=True
    )


def test_the_preview_renders_the_form_as_it_is_typed(owner):
    schema = {"type": "object", "properties": {"transport": {"type": "string", "title": "How does the child travel?"}}}
    html = preview(owner, json.dumps(schema))
    assert "How does the child travel? (optional)" in html and 'name="transport"' in html


def test_the_preview_names_what_is_wrong(owner):
    assert "is not valid JSON: Expecting" in preview(owner, '{"type": "object",')
    assert "is not a valid JSON Schema" in preview(owner, '{"type": "object", "properties": {"a": {"type": "text"}}}')
    assert "must have &#34;type&#34;: &#34;object&#34;" in preview(owner, '{"type": "string"}')


def test_a_changed_form_is_saved_as_a_new_version(owner, council):
    schema = json.loads(review_form(council, "qa.schema.json"))
    schema["properties"]["feedback"]["title"] = "Feedback for the school"
    response = owner.post(
        "/processes/forms/qa.schema.json/edit",
        {"content": json.dumps(schema, indent=2), "version": 1, "name": "qa.schema.json"},
        page_url="/processes/forms",
    )
    assert response.status_code == 302
    assert versions(council) == 2 and "Feedback for the school" in review_form(council, "qa.schema.json")
    with council() as s:
        assert (
            s.scalar(select(Deployment.note).where(Deployment.version == 2))
            == "Changed form qa.schema.json in the forms editor"
        )


def test_an_invalid_form_is_not_saved(owner, council):
    response = owner.post(
        "/processes/forms/qa.schema.json/edit",
        {"content": '{"type": "string"}', "version": 1},
        page_url="/processes/forms",
    )
    assert response.status_code == 400
    assert "a form schema must have" in response.get_data(as_text=True)
    assert versions(council) == 1


def test_a_new_form_is_added_to_the_deployment(owner, council):
    content = '{"type": "object", "properties": {"transport": {"type": "string"}}}'
    bad = owner.post(
        "/processes/forms/new",
        {"name": "Transport form", "content": content, "version": 1},
        page_url="/processes/forms",
    )
    assert bad.status_code == 400 and file_name_problem("forms/Transport form") in unescape(bad.get_data(as_text=True))
    taken = owner.post(
        "/processes/forms/new",
        {"name": "qa.schema.json", "content": content, "version": 1},
        page_url="/processes/forms",
    )
    assert taken.status_code == 400 and "already a form called qa.schema.json" in taken.get_data(as_text=True)
    response = owner.post(
        "/processes/forms/new",
        {"name": "transport.schema.json", "content": content, "version": 1},
        page_url="/processes/forms",
    )
    assert response.status_code == 302 and response.location.endswith("/processes/forms/transport.schema.json")
    assert versions(council) == 2 and review_form(council, "transport.schema.json") == content


def test_a_form_changed_by_someone_else_since_opening_is_not_overwritten(owner, council):
    with council.begin() as s:
        deploy_changes(
            s,
            {"forms/qa.schema.json": review_form(council, "qa.schema.json").replace("Feedback", "Notes")},
            "other@demo.test",
        )
    response = owner.post(
        "/processes/forms/qa.schema.json/edit",
        {"content": '{"type": "object"}', "version": 1},
        page_url="/processes/forms",
    )
    assert response.status_code == 400 and re.search(
        r"has changed since you opened version 1", response.get_data(as_text=True)
    )
    assert versions(council) == 2


def review_form(council, name: str) -> str:
    with council() as s:
        deployment = s.scalars(select(Deployment).order_by(Deployment.version.desc())).first()
        return next(f.content for f in deployment.files if f.path == f"forms/{name}")


def test_check_and_deploy_warn_of_a_lane_that_may_have_nobody_and_deploy_all_the_same(owner, council):
    xml = review_xml(council).replace('name="Arrange the PEP meeting"', 'name="Arrange the review meeting"')
    checked = post_json(owner, "/processes/test_review/check", {"xml": xml, "version": 1}).get_json()
    assert checked["ok"] is True and checked["message"].endswith("with 1 warning(s).")
    assert [(w["file"], w["element"]) for w in checked["warnings"]] == [(REVIEW, "lane_sw")]
    assert 'lane "Social Worker" may have nobody' in checked["warnings"][0]["message"]
    deployed = post_json(owner, "/processes/test_review/deploy", {"xml": xml, "version": 1, "note": ""})
    assert deployed.status_code == 200 and deployed.get_json()["version"] == 2
    assert [w["element"] for w in deployed.get_json()["warnings"]] == ["lane_sw"]
    assert versions(council) == 2
