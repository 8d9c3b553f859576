"""A process owner's versions pages: list, download, compare, upload, and moving running PEPs."""

from __future__ import annotations

import io
import json
import re
from html import unescape

import pytest
from lxml import etree
from SpiffWorkflow.spiff.parser import VALIDATOR, SpiffBpmnParser
from sqlalchemy import select

from engine import clock as clocks
from engine.deploy import Bundle, DeploymentRejected, deploy, deploy_changes, file_name_problem
from engine.migration import diff_diagrams
from engine.models import Deployment, Instance, OpenTask
from engine.people import add_user
from engine.serializer import Serializer

from ..conftest import BASIC_BUNDLE, ROOT
from ..test_migration import REVIEW, with_filing_step, without
from .conftest import PASSWORD_HASH

OWNER = "owner@demo.test"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
SHIPPED = sorted((ROOT / "processes").glob("*.bpmn"))
MEETING = {"meeting_date": "2026-03-10", "venue": "Oak Primary, meeting room 2"}


@pytest.fixture
def owner(app, council, clock, browser):
    """A process owner, signed in."""
    with clocks.using(clock), council.begin() as s:
        add_user(s, OWNER, "Olu Process-Owner", roles=["Process Owner"], password_hash=PASSWORD_HASH)
    return browser(OWNER)


def deploy_edit(sessions, clock, xml: str, note: str = "edited") -> int:
    with clocks.using(clock), sessions.begin() as s:
        return deploy_changes(s, {"processes/review.bpmn": xml}, actor=OWNER, note=note)[0].version


def upload(owner, name: str, content: bytes, note: str = ""):
    return owner.post(
        "/processes/upload",
        {"diagram": (io.BytesIO(content), name), "note": note},
        page_url="/processes/upload",
        content_type="multipart/form-data",
    )


def start_review(app, sessions, child_id="C001") -> int:
    with sessions.begin() as s:
        return app.extensions["pep"].engine.start(s, "test_review", child_id, actor="sw@demo.test").id


def arrange_meeting(app, sessions, child_id="C001"):
    engine = app.extensions["pep"].engine
    with sessions.begin() as s:
        task = s.scalar(select(OpenTask).where(OpenTask.child_id == child_id))
        engine.complete_task(s, task.id, "sw@demo.test", MEETING)


def version_of(sessions, instance_id: int) -> int:
    with sessions() as s:
        return s.get(Instance, instance_id).definition.deployment.version


def test_the_versions_list_says_who_deployed_each_when_and_what_runs_on_it(deployed_app, council, clock, owner):
    start_review(deployed_app, council)
    clock.set("2026-03-03T10:30:00+00:00")
    deploy_edit(council, clock, with_filing_step(REVIEW), note="File the PEP after sign-off")
    owner.sign_in(OWNER)  # the next day
    page = owner.get("/processes/test_review/versions").get_data(as_text=True)
    rows = re.findall(r'<tr class="govuk-table__row">(.*?)</tr>', page, re.S)[1:]
    assert len(rows) == 2
    newest, first = rows
    assert "3 March 2026" in newest and OWNER in newest and "File the PEP after sign-off" in newest
    assert "Changed" in newest and re.search(r"numeric\">0<", newest)
    assert "First version" in first and re.search(r"numeric\">1<", first)
    assert 'href="/processes/test_review/diff?a=1&amp;b=2"' in newest
    assert owner.get("/processes/no_such_process/versions").status_code == 404


def test_a_version_downloads_as_the_exact_file_deployed(deployed_app, owner):
    response = owner.get("/processes/test_review/versions/1/download")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="review.bpmn"'
    assert response.data == (BASIC_BUNDLE / "processes" / "review.bpmn").read_bytes()
    assert owner.get("/processes/test_review/versions/7/download").status_code == 404


def test_a_version_shows_read_only_on_its_own_page(deployed_app, owner):
    page = owner.get("/processes/test_review/versions/1").get_data(as_text=True)
    assert 'data-xml-url="/processes/test_review/versions/1/download"' in page
    assert "build/js/diff.js" in page


def test_the_diff_lists_what_was_added_removed_and_changed(deployed_app, council, clock, owner):
    edited = without(with_filing_step(REVIEW), "reminder", "f_reminder", "reminder_sent")
    deploy_edit(council, clock, edited.replace('name="Quality-assure the PEP"', 'name="Check the PEP"'))
    page = owner.get("/processes/test_review/diff?a=1&b=2").get_data(as_text=True)
    section = {
        kind: re.search(rf'id="diff-{kind}">(.*?)</ul>\s*(?:</li>\s*)?(?=<h3|<p|<noscript)', page, re.S).group(1)
        for kind in ("added", "removed", "changed")
    }
    assert "file_pep" in section["added"] and "File the signed-off PEP" in section["added"]
    assert "reminder_sent" in section["removed"] and "Reminder before deadline" in section["removed"]
    assert "name: “Quality-assure the PEP” → “Check the PEP”" in section["changed"]
    assert "to: “done” → “file_pep”" in section["changed"]
    markers = json.loads(
        re.search(r'<script type="application/json" id="diff-markers">(.*?)</script>', page, re.S).group(1)
    )
    assert set(markers["added"]) == {"file_pep", "f_filed"}
    assert set(markers["removed"]) == {"reminder", "f_reminder", "reminder_sent"}
    assert set(markers["changed"]) == {"qa", "f_accepted"}
    assert markers["a_url"].endswith("/versions/1/download") and markers["b_url"].endswith("/versions/2/download")


def test_a_valid_upload_becomes_the_next_version(deployed_app, council, owner):
    response = upload(
        owner, "review.bpmn", with_filing_step(REVIEW).encode("utf-8"), note="Filing step from Camunda Modeler"
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/processes/test_review/versions")
    with council() as s:
        newest = s.scalar(select(Deployment).order_by(Deployment.version.desc()).limit(1))
        assert (newest.version, newest.created_by, newest.note) == (2, OWNER, "Filing step from Camunda Modeler")
        assert newest.file("processes/review.bpmn").content == with_filing_step(REVIEW)


def test_an_invalid_upload_names_the_file_and_element_and_changes_nothing(deployed_app, council, owner):
    broken = REVIEW.replace('name="Designated Teacher"', 'name="Astronaut"')
    response = upload(owner, "review.bpmn", broken.encode("utf-8"))
    assert response.status_code == 422
    problems = re.search(r'id="upload-problems">(.*?)</table>', response.get_data(as_text=True), re.S).group(1)
    assert "processes/review.bpmn" in problems and "lane_dt" in problems and "Astronaut" in problems
    with council() as s:
        assert s.scalars(select(Deployment.version)).all() == [1]
        assert s.scalar(select(Deployment)).file("processes/review.bpmn").content == REVIEW


def test_an_upload_must_be_a_bpmn_file(deployed_app, owner):
    response = upload(owner, "review.exe", b"<x/>")
    assert response.status_code == 422 and "is not a diagram" in unescape(response.get_data(as_text=True))


def test_the_versions_and_the_diff_say_when_a_process_was_retired(deployed_app, council, clock, owner):
    clock.set("2026-03-04T11:00:00+00:00")
    with clocks.using(clock), council.begin() as s:
        deploy_changes(s, {}, actor=OWNER, note="Views move into the review", retire=["test_views"])
    owner.sign_in(OWNER)  # two days on, the session has timed out
    page = owner.get("/processes/test_views/versions").get_data(as_text=True)
    retired = re.search(r'<tr class="govuk-table__row" id="retired-2">(.*?)</tr>', page, re.S).group(1)
    assert "Retired" in retired and "Views move into the review" in retired and OWNER in retired
    assert 'href="/processes/test_views/diff?a=1&amp;b=2"' in retired

    diff = owner.get("/processes/test_views/diff").get_data(as_text=True)
    said = re.search(r'id="diff-retired">(.*?)</div>', diff, re.S).group(1)
    assert (
        "Version 2 retired this process" in said
        and "4 March 2026" in said
        and "New PEPs can no longer start it" in said
    )
    assert "diff-markers" not in diff and owner.get("/processes/test_views/versions/2").status_code == 404
    assert 'id="diff-retired-since"' in owner.get("/processes/test_views/diff?a=1&b=1").get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "accepted"),
    [
        ("processes/review_v2.bpmn", True),
        ("processes/Review.v2.bpmn", True),
        ("processes/Review v2.bpmn", False),
        ("processes/-review.bpmn", False),
        ("forms/transport.schema.json", True),
        ("forms/transport.uischema.json", True),
        ("forms/transport.json", True),
        ("forms/Transport form.schema.json", False),
        ("forms/_transport.json", False),
    ],
)
def test_pep_deploy_the_upload_and_the_forms_editor_accept_the_same_file_names(
    deployed_app, owner, tmp_path, path, accepted
):
    folder, name = path.split("/")
    content = REVIEW if folder == "processes" else '{"type": "object", "properties": {}}'
    (tmp_path / "processes").mkdir()
    (tmp_path / "processes" / "views.bpmn").write_text((BASIC_BUNDLE / "processes" / "views.bpmn").read_text())
    (tmp_path / folder).mkdir(exist_ok=True)
    (tmp_path / folder / name).write_text(content, encoding="utf-8")
    try:
        by_cli = path in Bundle.from_dirs(tmp_path).files
    except DeploymentRejected as rejected:
        assert [e.message for e in rejected.errors] == [file_name_problem(path)]
        by_cli = False
    if folder == "processes":
        response = upload(owner, name, content.encode("utf-8"))
    else:
        response = owner.post(
            "/processes/forms/new", {"name": name, "content": content, "version": 1}, page_url="/processes/forms"
        )
    by_web = response.status_code == 302
    assert by_web or file_name_problem(path) in unescape(response.get_data(as_text=True))
    assert by_cli == by_web == accepted


def test_safe_peps_move_and_unsafe_ones_stay_with_the_reason(deployed_app, council, clock, owner):
    waiting_to_arrange = start_review(deployed_app, council, "C002")
    at_the_pep = start_review(deployed_app, council, "C001")
    arrange_meeting(deployed_app, council, "C001")
    deploy_edit(council, clock, REVIEW.replace('name="Complete the PEP"', 'name="Complete and submit the PEP"'))

    page = owner.get("/processes/test_review/migrate").get_data(as_text=True)
    safe_row = re.search(rf'id="pep-{waiting_to_arrange}">(.*?)</tr>', page, re.S).group(1)
    unsafe_row = re.search(rf'id="pep-{at_the_pep}">(.*?)</tr>', page, re.S).group(1)
    assert "Can move safely" in safe_row and "Arrange the PEP meeting" in safe_row
    assert "Cannot move" in unsafe_row and "Complete the PEP" in unsafe_row
    assert "(complete_pep) is in progress and its name changed" in unsafe_row

    refused = owner.post(
        "/processes/test_review/migrate",
        {"instance": at_the_pep},
        page_url="/processes/test_review/migrate",
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "its name changed" in refused and version_of(council, at_the_pep) == 1

    moved = owner.post(
        "/processes/test_review/migrate", {}, page_url="/processes/test_review/migrate", follow_redirects=True
    ).get_data(as_text=True)
    assert f"Moved 1 PEP(s) to version 2: PEP {waiting_to_arrange}." in moved
    assert "C001" not in page + moved and "C002" not in page + moved  # a process owner sees no case number
    assert (version_of(council, waiting_to_arrange), version_of(council, at_the_pep)) == (2, 1)


def test_one_pep_moves_with_its_own_button(deployed_app, council, clock, owner):
    instance_id = start_review(deployed_app, council)
    deploy_edit(council, clock, with_filing_step(REVIEW))
    owner.post("/processes/test_review/migrate", {"instance": instance_id}, page_url="/processes/test_review/migrate")
    assert version_of(council, instance_id) == 2
    page = owner.get("/processes/test_review/migrate").get_data(as_text=True)
    assert "No running PEP of this process is on an older version." in page


@pytest.mark.parametrize(
    "url",
    [
        "/processes/test_review/versions",
        "/processes/test_review/versions/1",
        "/processes/test_review/versions/1/download",
        "/processes/test_review/diff",
        "/processes/upload",
        "/processes/test_review/migrate",
    ],
)
def test_only_process_owners_reach_the_versions_pages(deployed_app, browser, url):
    assert browser("sw@demo.test").get(url).status_code == 403
    assert browser("admin@demo.test").get(url).status_code == 403


def test_someone_else_cannot_upload_or_migrate(deployed_app, council, browser):
    social_worker = browser("sw@demo.test")
    response = social_worker.post(
        "/processes/upload",
        {"diagram": (io.BytesIO(REVIEW.encode()), "review.bpmn")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 403
    assert social_worker.post("/processes/test_review/migrate", {}).status_code == 403
    with council() as s:
        assert s.scalars(select(Deployment.version)).all() == [1]


# ---- acceptance: every shipped diagram round-trips through upload and download -----------------


def moved_a_little(xml: str) -> str:
    """The same diagram with its first shape drawn 10 units to the right: a layout-only change."""
    return re.sub(r'(<dc:Bounds x=")([0-9.]+)"', lambda m: f'{m.group(1)}{float(m.group(2)) + 10:g}"', xml, count=1)


def spiff_extensions(xml: str) -> list[bytes]:
    root = etree.fromstring(xml.encode("utf-8"))
    return [etree.tostring(node, method="c14n") for node in root.iter(f"{{{SPIFF}}}*")]


def parsed_specs(files: dict[str, str]) -> dict[str, dict]:
    """Every process of the diagrams, parsed as deployment parses them, as serialized specs."""
    parser, serializer = SpiffBpmnParser(validator=VALIDATOR), Serializer()
    for path, xml in files.items():
        if path.endswith(".bpmn"):
            parser.add_bpmn_xml(etree.fromstring(xml.encode("utf-8")), filename=path)
    return {
        pid: serializer.spec_to_dict(parser.get_spec(pid), parser.get_subprocess_specs(pid))
        for pid in parser.get_process_ids()
    }


@pytest.fixture
def shipped_app(app, council, clock):
    with clocks.using(clock), council.begin() as s:
        deploy(s, Bundle.from_dirs(ROOT), actor="setup@demo.test")
    return app


def test_every_shipped_diagram_round_trips_through_upload_and_download_unchanged_in_meaning(
    shipped_app, council, owner
):
    original = Bundle.from_dirs(ROOT)
    original_specs = parsed_specs(original.files)
    for path in original.bpmn_files():
        name = path.removeprefix("processes/")
        xml = original.files[path]
        response = upload(owner, name, moved_a_little(xml).encode("utf-8"), note=f"Moved a shape in {name}")
        assert response.status_code == 302, response.get_data(as_text=True)
        with council() as s:
            newest = s.scalar(select(Deployment).order_by(Deployment.version.desc()).limit(1))
            process_id = next(d.process_id for d in newest.definitions if d.file_path == path)
        downloaded = owner.get(f"/processes/{process_id}/versions/{newest.version}/download").data.decode("utf-8")

        assert parsed_specs({**original.files, path: downloaded}) == original_specs, name
        assert spiff_extensions(downloaded) == spiff_extensions(xml), name
        changes = diff_diagrams(xml, downloaded, path)
        assert changes.same_meaning and len(changes.moved) == 1, name
